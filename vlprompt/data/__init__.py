"""Shared dataset machinery: split files, few-shot caches, base/new subsampling, the reader base classes,
the table of standard datasets (catalog), the data checker (check) and the download helper (download)."""
from .errors import DatasetFormatError, DatasetLayoutError, MissingImagesError
from .benchmark import BenchmarkDataset, TestOnlyDataset, data_root
from .fewshot import fewshot_subsets, load_datums
from .splits import make_datums, read_and_split_data, read_split, save_split, split_trainval
from .subsample import subsample_classes

__all__ = ["BenchmarkDataset", "TestOnlyDataset", "DatasetLayoutError", "DatasetFormatError", "MissingImagesError",
           "data_root", "fewshot_subsets", "load_datums", "make_datums", "read_and_split_data", "read_split",
           "save_split", "split_trainval", "subsample_classes"]
