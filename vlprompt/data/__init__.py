"""Shared dataset machinery: split files, few-shot caches, base/new subsampling, the reader base classes
(few-shot domain generalization: dg), the table of standard datasets (catalog), the data checker (check)
and the download helper (download)."""
import importlib

from .errors import DatasetFormatError, DatasetLayoutError, MissingImagesError

# Imported on first use (PEP 562): the readers' base classes bring in the engine and torch, which the
# catalog, the checker of absent datasets and `vlprompt data list` never need.
_LAZY = {"BenchmarkDataset": "benchmark", "TestOnlyDataset": "benchmark", "data_root": "benchmark",
         "FewShotDGDataset": "dg", "fewshot_subsets": "fewshot", "load_datums": "fewshot", "make_datums": "splits",
         "read_and_split_data": "splits", "read_split": "splits", "save_split": "splits",
         "split_trainval": "splits", "subsample_classes": "subsample"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BenchmarkDataset", "TestOnlyDataset", "FewShotDGDataset", "DatasetLayoutError", "DatasetFormatError", "MissingImagesError",
           "data_root", "fewshot_subsets", "load_datums", "make_datums", "read_and_split_data", "read_split",
           "save_split", "split_trainval", "subsample_classes"]
