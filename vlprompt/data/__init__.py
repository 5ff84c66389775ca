"""Shared dataset machinery: split files, few-shot caches, base/new subsampling, the reader base class."""
from .benchmark import BenchmarkDataset, DatasetLayoutError, data_root
from .fewshot import fewshot_subsets, load_datums
from .splits import read_and_split_data, read_split, save_split, split_trainval
from .subsample import subsample_classes

__all__ = ["BenchmarkDataset", "DatasetLayoutError", "data_root", "fewshot_subsets", "load_datums",
           "read_and_split_data", "read_split", "save_split", "split_trainval", "subsample_classes"]
