"""`BenchmarkDataset`: the pattern every CoOp-style dataset reader follows.

1. DATASET.ROOT/<dataset_dir> must exist (else an error naming the path and the expected layout);
2. read the split (the split JSON if present, else the reader's own `make_split`, then saved);
3. few-shot subsets of train/val through the validated cache (vlprompt.data.fewshot);
4. base/new class subsampling (vlprompt.data.subsample);
5. DatasetBase(train_x=train, val=val, test=test).

A reader sets `dataset_dir`, `image_folder`, `split_file`, `layout` (shown in errors) and, when a
split can be made from the raw files, `make_split()`. Readers with other sources override `read_splits()`.
"""
import os

from vlprompt.engine import DatasetBase

from .fewshot import fewshot_subsets
from .splits import read_split, save_split
from .subsample import subsample_classes


class DatasetLayoutError(FileNotFoundError):
    """A dataset file or folder is missing; the message names it and shows the expected layout."""


def data_root(cfg):
    root = cfg.DATASET.ROOT
    if not root:
        raise DatasetLayoutError("DATASET.ROOT is empty: pass --root (the scripts use $DATA) pointing at the folder "
                                 "that holds the datasets")
    root = os.path.abspath(os.path.expanduser(root))
    if not os.path.isdir(root):
        raise DatasetLayoutError(f"Data root not found: {root} (from DATASET.ROOT / --root / $DATA)")
    return root


class BenchmarkDataset(DatasetBase):
    dataset_dir = ""  # folder under DATASET.ROOT
    image_folder = ""  # image folder inside dataset_dir; split paths are relative to it
    split_file = None  # e.g. "split_zhou_Caltech101.json"
    layout = ""  # the expected tree, shown in errors

    def __init__(self, cfg):
        self.root = data_root(cfg)
        self.dataset_dir = os.path.join(self.root, type(self).dataset_dir)
        self.image_dir = os.path.join(self.dataset_dir, type(self).image_folder)
        self.split_fewshot_dir = os.path.join(self.dataset_dir, "split_fewshot")
        self.require(self.dataset_dir, "dataset folder")
        train, val, test = self.read_splits()
        train, val = fewshot_subsets(self, cfg.DATASET.NUM_SHOTS, cfg.SEED, self.split_fewshot_dir, train, val)
        train, val, test = subsample_classes(train, val, test, subsample=cfg.DATASET.get("SUBSAMPLE_CLASSES", "all"))
        super().__init__(train_x=train, val=val, test=test)

    @property
    def split_path(self):
        return os.path.join(self.dataset_dir, self.split_file) if self.split_file else None

    def read_splits(self):
        if self.split_path and os.path.exists(self.split_path):
            return read_split(self.split_path, self.image_dir)
        self.require(self.image_dir, "image folder")
        train, val, test = self.make_split()
        if self.split_path:
            save_split(train, val, test, self.split_path, self.image_dir)
        return train, val, test

    def make_split(self):
        raise DatasetLayoutError(self.missing_message(self.split_path, "split file"))

    def require(self, path, what):
        if not os.path.exists(path):
            raise DatasetLayoutError(self.missing_message(path, what))
        return path

    def missing_message(self, path, what):
        name = type(self).__name__
        message = f"{name}: {what} not found: {path}"
        if self.layout:
            message += f"\nExpected layout under the data root {self.root}:\n{self.layout.rstrip()}"
        return message + "\n(`vlprompt data check --root <root> " + name + "` reports what is missing.)"
