"""Users' own data: an image-folder tree or a CSV file, with the benchmarks' few-shot and base/new options.

    DATASET.NAME CustomDataset  DATASET.CUSTOM.DIR my_data  [DATASET.CUSTOM.CSV labels.csv]

Image folders (DATASET.CUSTOM.CSV empty), under DATASET.ROOT/DIR:
- train/<class>/*.jpg [+ val/<class>/ and/or test/<class>/]: the given splits. Without test/, val/ is the
  test set (and val), as for ImageNet; without val/, P_VAL of each training class is held out for val.
- <class>/*.jpg (no train/ folder): every class is split P_TRAIN / P_VAL / rest into train/val/test.
Labels follow the sorted class-folder names of train (or of DIR); the folder name is the class name.

CSV (DATASET.CUSTOM.CSV = a file under DIR, or an absolute path): rows "path,label[,classname]", paths
relative to DIR, an optional header row ("path,label,classname"). Labels are integers 0..N-1, or class
names (labels then follow their sorted order). A "{split}" in the file name ("{split}.csv") reads
train.csv / val.csv / test.csv with the same rules as the folders; a single file is split like a folder
of classes. Class names come from the third column, else from DATASET.CUSTOM.CLASSNAMES (one name per
line, line i = label i).

Generated splits use their own random generator seeded with DATASET.CUSTOM.SPLIT_SEED, so every run
(whatever its SEED) evaluates on the same test images; nothing is written except the few-shot cache
(DIR/split_fewshot/).
"""
import csv
import os
import random
from collections import OrderedDict

from vlprompt.data import BenchmarkDataset, DatasetFormatError, DatasetLayoutError, make_datums, split_trainval
from vlprompt.data.benchmark import data_root
from vlprompt.data.splits import list_class_folders, split_per_class
from vlprompt.engine import CN, DATASET_REGISTRY

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
HEADER_NAMES = {"path", "image", "impath", "img", "file", "filename", "filepath", "image_path"}
SPLITS = ("train", "val", "test")


@DATASET_REGISTRY.register()
class CustomDataset(BenchmarkDataset):
    layout = """\
<DATASET.CUSTOM.DIR>/                 under DATASET.ROOT (or an absolute path)
    train/<class>/*.jpg               the given splits (val/ and/or test/ optional, see docs/DATASETS.md)
    val/<class>/*.jpg
    test/<class>/*.jpg
  or
    <class>/*.jpg                     one folder per class, split P_TRAIN / P_VAL / rest
  or
    labels.csv                        rows "path,label[,classname]" (DATASET.CUSTOM.CSV labels.csv)
"""

    @classmethod
    def add_config(cls, cfg):
        if "CUSTOM" in cfg.DATASET:
            return
        cfg.DATASET.CUSTOM = CN()
        cfg.DATASET.CUSTOM.DIR = ""  # the dataset folder, relative to DATASET.ROOT (or absolute)
        cfg.DATASET.CUSTOM.CSV = ""  # "" = image folders; "labels.csv"; "{split}.csv" = train/val/test.csv
        cfg.DATASET.CUSTOM.CLASSNAMES = ""  # optional text file, line i = name of label i
        cfg.DATASET.CUSTOM.P_TRAIN = 0.5  # fractions used when a split has to be made
        cfg.DATASET.CUSTOM.P_VAL = 0.2
        cfg.DATASET.CUSTOM.SPLIT_SEED = 0  # generated splits do not depend on SEED

    def setup(self, cfg):
        self.cfg = cfg
        self.options = cfg.DATASET.CUSTOM
        self.root = data_root(cfg)
        if not self.options.DIR:
            raise DatasetLayoutError("CustomDataset: DATASET.CUSTOM.DIR is empty: set it to the folder holding your "
                                     "images (relative to DATASET.ROOT), e.g. DATASET.CUSTOM.DIR my_data")
        self.dataset_dir = os.path.join(self.root, os.path.expanduser(self.options.DIR))
        self.image_dir = self.dataset_dir
        self.split_fewshot_dir = os.path.join(self.dataset_dir, "split_fewshot")
        self.require(self.dataset_dir, "dataset folder (DATASET.CUSTOM.DIR)")
        self.rng = random.Random(self.options.SPLIT_SEED)

    def read_splits(self):
        if self.options.CSV:
            splits = self.read_csv_splits()
        else:
            splits = self.read_folder_splits()
        return self.complete(splits)

    # -- image folders ---------------------------------------------------------------------------------

    def read_folder_splits(self):
        split_dirs = {s: os.path.join(self.dataset_dir, s) for s in SPLITS}
        if os.path.isdir(split_dirs["train"]):
            classes = list_class_folders(split_dirs["train"])
            if not classes:
                raise DatasetLayoutError(f"CustomDataset: no class folders in {split_dirs['train']}",
                                         path=split_dirs["train"])
            label_of = {c: i for i, c in enumerate(classes)}
            splits = {}
            for split, path in split_dirs.items():
                if not os.path.isdir(path):
                    continue
                entries = []
                for folder in list_class_folders(path):
                    if folder not in label_of:
                        raise DatasetFormatError(f"CustomDataset: class folder {os.path.join(path, folder)} has no "
                                                 f"counterpart in {split_dirs['train']}",
                                                 path=os.path.join(path, folder))
                    entries.extend((im, label_of[folder], folder) for im in self.images_in(os.path.join(path, folder)))
                splits[split] = entries
            return splits
        classes = list_class_folders(self.dataset_dir, ignored=("split_fewshot",))
        if not classes:
            raise DatasetLayoutError(f"CustomDataset: no class folders (and no train/ folder) in {self.dataset_dir}",
                                     path=self.dataset_dir)
        return {"pool": [(im, label, c) for label, c in enumerate(classes)
                         for im in self.images_in(os.path.join(self.dataset_dir, c))]}

    @staticmethod
    def images_in(folder):
        return [os.path.join(folder, f) for f in sorted(os.listdir(folder))
                if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]

    # -- CSV -------------------------------------------------------------------------------------------

    def read_csv_splits(self):
        pattern = os.path.join(self.dataset_dir, os.path.expanduser(self.options.CSV))
        if "{split}" in pattern:
            files = {s: pattern.format(split=s) for s in SPLITS}
            self.require(files["train"], "training CSV")
            rows = {s: self.read_csv(path) for s, path in files.items() if os.path.isfile(path)}
        else:
            rows = {"pool": self.read_csv(self.require(pattern, "CSV file"))}
        return self.label_rows(rows)

    def read_csv(self, path):
        rows = []
        with open(path, newline="", encoding="utf-8-sig") as f:
            for n, row in enumerate(csv.reader(f), 1):
                row = [cell.strip() for cell in row]
                if not row or not any(row) or row[0].startswith("#"):
                    continue
                if n == 1 and row[0].lower() in HEADER_NAMES:
                    continue
                if len(row) not in (2, 3) or not row[0] or not row[1]:
                    raise DatasetFormatError(f"CustomDataset: {path}, line {n}: expected 'path,label[,classname]', "
                                             f"got {','.join(row)!r}", path=path)
                impath = row[0] if os.path.isabs(row[0]) else os.path.join(self.dataset_dir, row[0])
                rows.append((impath, row[1], row[2] if len(row) == 3 else None, f"{path}, line {n}"))
        if not rows:
            raise DatasetFormatError(f"CustomDataset: {path} is empty: expected rows 'path,label[,classname]' (one "
                                     "per image, an optional header line)", path=path)
        return rows

    def label_rows(self, rows):
        """Integer labels (0..N-1) or class-name labels -> (path, label, class name) entries per split."""
        first = rows.get("train", rows.get("pool"))
        is_number = [(label.lstrip("-").isdigit(), label, where) for part in rows.values() for _, label, _, where in part]
        numeric = all(n for n, _, _ in is_number)
        if not numeric and any(n for n, _, _ in is_number):
            number = next((label, where) for n, label, where in is_number if n)
            name = next((label, where) for n, label, where in is_number if not n)
            raise DatasetFormatError(f"CustomDataset: {name[1]}: the label {name[0]!r} is a class name, but "
                                     f"{number[1]} has the integer label {number[0]}: use integers (0..N-1) or class "
                                     "names throughout")
        if numeric:
            names = self.read_classnames_file()
            label_names = {}
            for part in rows.values():
                for _, label, name, where in part:
                    label = int(label)
                    if name is None:
                        name = names[label] if names and 0 <= label < len(names) else None
                    if name is not None and label_names.setdefault(label, name) != name:
                        raise DatasetFormatError(f"CustomDataset: {where}: label {label} is named {name!r} here but "
                                                 f"{label_names[label]!r} elsewhere")
            labels = sorted({int(label) for _, label, _, _ in first})
            if labels != list(range(len(labels))):
                missing = sorted(set(range(max(labels) + 1)) - set(labels))
                raise DatasetFormatError(f"CustomDataset: the labels of the training data must be 0..N-1; missing "
                                         f"{missing[:10]} (or use class names as labels)")
            unnamed = [y for y in labels if y not in label_names]
            if unnamed:
                print(f"CustomDataset: no class name for labels {unnamed[:10]} (add a classname column or "
                      "DATASET.CUSTOM.CLASSNAMES); using the label numbers as names")

            def convert(impath, label, _name, where):
                label = int(label)
                if label not in labels:
                    raise DatasetFormatError(f"CustomDataset: {where}: label {label} does not occur in the training "
                                             "data")
                return impath, label, label_names.get(label, str(label))
        else:
            classes = sorted({label for _, label, _, _ in first})
            label_of = {c: i for i, c in enumerate(classes)}

            def convert(impath, label, _name, where):
                if label not in label_of:
                    raise DatasetFormatError(f"CustomDataset: {where}: class {label!r} does not occur in the "
                                             "training data")
                return impath, label_of[label], label
        return {split: [convert(*row) for row in part] for split, part in rows.items()}

    def read_classnames_file(self):
        if not self.options.CLASSNAMES:
            return None
        path = os.path.join(self.dataset_dir, os.path.expanduser(self.options.CLASSNAMES))
        return self.read_lines(path, "class-name file (DATASET.CUSTOM.CLASSNAMES)")

    # -- the missing splits ----------------------------------------------------------------------------

    def complete(self, splits):
        """Datum lists (train, val, test) from what was given; missing splits made as documented."""
        p_trn, p_val = float(self.options.P_TRAIN), float(self.options.P_VAL)
        source = self.options.CSV or self.dataset_dir
        if "pool" in splits:
            groups = OrderedDict()
            for impath, label, name in splits["pool"]:
                groups.setdefault((label, name), []).append(impath)
            ordered = sorted(groups.items(), key=lambda kv: kv[0][0])
            print(f"CustomDataset: splitting each class into {p_trn:.0%} train, {p_val:.0%} val and "
                  f"{1 - p_trn - p_val:.0%} test")
            parts = split_per_class([(label, name, ims) for (label, name), ims in ordered], p_trn, p_val, self.rng)
            return tuple(make_datums(part, source) for part in parts)
        train = make_datums(splits["train"], source)
        if "val" not in splits and "test" not in splits:
            raise DatasetLayoutError(f"CustomDataset: only training data in {self.dataset_dir}: add val/ or test/ "
                                     "(or val.csv / test.csv), or put the class folders directly under the dataset "
                                     "folder to have a split made", path=os.path.join(self.dataset_dir, "test"))
        if "test" not in splits:
            print("CustomDataset: no test split; the val split is used as the test set (and val)")
            val = make_datums(splits["val"], source)
            return train, val, val
        test = make_datums(splits["test"], source)
        if "val" in splits:
            return train, make_datums(splits["val"], source), test
        train, val = split_trainval(train, p_val, rng=self.rng)
        return train, val, test
