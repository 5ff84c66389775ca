"""`BenchmarkDataset`: the pattern every CoOp-style dataset reader follows.

1. DATASET.ROOT/<dataset_dir> must exist (else an error naming the path and the expected layout);
2. read the split (the split JSON if present, else the reader's own `make_split`, then saved);
3. few-shot subsets of train/val through the validated cache (vlprompt.data.fewshot);
4. base/new class subsampling (vlprompt.data.subsample);
5. DatasetBase(train_x=train, val=val, test=test).

A reader sets `dataset_dir`, `image_folder`, `split_file`, `layout` (shown in errors) and, when a
split can be made from the raw files, `make_split()`. Readers with other sources override `read_splits()`;
test-only readers derive from `TestOnlyDataset` and implement `read_data()`.

Every missing or malformed file raises one `DatasetLayoutError` whose message names the path, says
where the file comes from (vlprompt.data.catalog) and shows the reader's expected layout.
`read_full(cfg)` reads the whole split without writing anything (the data checker uses it).
"""
import contextlib
import os

from vlprompt.engine import DatasetBase

from . import index_reuse
from .catalog import where_from
from .errors import DatasetFormatError, DatasetLayoutError
from .fewshot import fewshot_subsets
from .splits import read_split, save_split
from .subsample import subsample_classes

__all__ = ["BenchmarkDataset", "TestOnlyDataset", "DatasetLayoutError", "DatasetFormatError", "data_root"]


def data_root(cfg):
    root = cfg.DATASET.ROOT
    if not root:
        raise DatasetLayoutError("DATASET.ROOT is empty: pass --root (the scripts use $DATA) pointing at the folder "
                                 "that holds the datasets")
    root = os.path.abspath(os.path.expanduser(root))
    if not os.path.isdir(root):
        raise DatasetLayoutError(f"Data root not found: {root} (from DATASET.ROOT / --root / $DATA)", path=root)
    return root


class BenchmarkDataset(DatasetBase):
    dataset_dir = ""  # folder under DATASET.ROOT
    image_folder = ""  # image folder inside dataset_dir; split paths are relative to it
    split_file = None  # e.g. "split_zhou_Caltech101.json"
    layout = ""  # the expected tree, shown in errors
    test_only = False
    save_files = True  # False while the data checker reads (nothing is written)

    def __init__(self, cfg):
        with self.explained_errors():
            self.setup(cfg)
            train, val, test = index_reuse.read_splits(self, cfg)  # self.read_splits(), or an earlier run's
            train, val, test = self.select(cfg, train, val, test)
        super().__init__(train_x=train, val=val, test=test)

    @classmethod
    def read_full(cls, cfg):
        """(train, val, test) as on disk: no few-shot selection, no subsampling, nothing written."""
        self = cls.__new__(cls)
        self.save_files = False
        with self.explained_errors():
            self.setup(cfg)
            return self.read_splits()

    def setup(self, cfg):
        """Absolute paths from the config; the dataset folder must exist."""
        self.cfg = cfg
        self.root = data_root(cfg)
        self.dataset_dir = os.path.join(self.root, type(self).dataset_dir)
        self.image_dir = os.path.join(self.dataset_dir, type(self).image_folder)
        self.split_fewshot_dir = os.path.join(self.dataset_dir, "split_fewshot")
        self.require(self.dataset_dir, "dataset folder")

    # -- the steps a reader may override -------------------------------------------------------------

    @property
    def split_path(self):
        return os.path.join(self.dataset_dir, self.split_file) if self.split_file else None

    def read_splits(self):
        if self.split_path and os.path.exists(self.split_path):
            return read_split(self.split_path, self.image_dir)
        self.require(self.image_dir, "image folder")
        try:
            train, val, test = self.make_split()
        except DatasetLayoutError as e:
            if self.split_path:  # say that the official split file would have avoided this
                official = where_from(type(self).__name__, self.split_file)
                e.args = (f"{e.args[0]}\n(needed to generate a split because the split file {self.split_path} is "
                          f"absent{'; the official one: ' + official if official else ''})",)
                e.detail = e.args[0]
            raise
        if self.split_path and self.save_files:
            try:
                save_split(train, val, test, self.split_path, self.image_dir)
            except OSError as e:  # a read-only data root: the split is still the right one for this seed
                print(f"Note: could not save the generated split to {self.split_path} ({e})")
        return train, val, test

    def make_split(self):
        raise DatasetLayoutError(f"{type(self).__name__}: split file not found: {self.split_path}",
                                 path=self.split_path)

    def select(self, cfg, train, val, test):
        """Few-shot subsets of train and val (cached), then base/new subsampling of all three."""
        train, val = fewshot_subsets(self, cfg.DATASET.NUM_SHOTS, cfg.SEED, self.split_fewshot_dir, train, val)
        return subsample_classes(train, val, test, subsample=cfg.DATASET.get("SUBSAMPLE_CLASSES", "all"))

    # -- helpers for readers --------------------------------------------------------------------------

    def require(self, path, what):
        if not os.path.exists(path):
            raise DatasetLayoutError(f"{type(self).__name__}: {what} not found: {path}", path=path)
        return path

    def read_lines(self, path, what):
        """The non-empty lines of a text file, stripped (the file must exist)."""
        self.require(path, what)
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]

    def format_error(self, path, message):
        return DatasetFormatError(f"{type(self).__name__}: {path}: {message}", path=path)

    def missing_message(self, path, what):
        """The full message for a missing path (kept for readers written against the first version)."""
        error = DatasetLayoutError(f"{type(self).__name__}: {what} not found: {path}", path=path)
        return str(self.explain(error))

    def explain(self, error):
        """Add where the missing file comes from and the expected layout to a DatasetLayoutError."""
        name = type(self).__name__
        lines = []
        dataset_dir = getattr(self, "dataset_dir", "")
        if error.path and dataset_dir and os.path.isabs(dataset_dir):
            rel = os.path.relpath(error.path, dataset_dir)
            if not rel.startswith(".."):
                source = where_from(name, rel)
                if source:
                    lines.append(f"Where it comes from: {source}")
        root = getattr(self, "root", "<root>")
        if self.layout:
            lines.append(f"Expected layout under the data root {root}:\n{self.layout.rstrip()}")
        lines.append(f"(`vlprompt data check --root {root} {name}` reports everything that is missing; "
                     "docs/DATASETS.md says where each file comes from.)")
        return error.add_context("\n".join(lines))

    @contextlib.contextmanager
    def explained_errors(self):
        try:
            yield
        except DatasetLayoutError as e:
            raise self.explain(e)


class TestOnlyDataset(BenchmarkDataset):
    """An evaluation-only dataset (the ImageNet variants): train_x = test = the data, no val.

    NUM_SHOTS and SUBSAMPLE_CLASSES are ignored, as in the original code: class names come from train_x,
    which is the whole test set, so the classifier covers every class of the variant.
    """

    test_only = True

    def read_splits(self):
        self.require(self.image_dir, "image folder")
        data = self.read_data()
        return data, None, data

    def read_data(self):
        raise NotImplementedError

    def select(self, cfg, train, val, test):
        ignored = []
        if cfg.DATASET.NUM_SHOTS >= 1:
            ignored.append(f"DATASET.NUM_SHOTS={cfg.DATASET.NUM_SHOTS}")
        if cfg.DATASET.get("SUBSAMPLE_CLASSES", "all") != "all":
            ignored.append(f"DATASET.SUBSAMPLE_CLASSES={cfg.DATASET.SUBSAMPLE_CLASSES}")
        if ignored:
            print(f"{type(self).__name__} is a test-only dataset: {' and '.join(ignored)} ignored "
                  f"(all {len(test)} images are evaluated)")
        return train, val, test
