"""Oxford Flowers 102 (Nilsback & Zisserman, 2008) as CoOp reads it: split from split_zhou_OxfordFlowers.json.

Without the split file: imagelabels.mat ("labels", 1-based) gives the label of jpg/image_{i:05d}.jpg;
class names come from cat_to_name.json (keys "1".."102"); per class, in the order the labels first
appear in imagelabels.mat, shuffle and take 50% train / 20% val / 30% test.
"""
import json
import os
from collections import defaultdict

from vlprompt.data import BenchmarkDataset
from vlprompt.data.splits import make_datums, split_per_class
from vlprompt.engine import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class OxfordFlowers(BenchmarkDataset):
    dataset_dir = "oxford_flowers"
    image_folder = "jpg"
    split_file = "split_zhou_OxfordFlowers.json"
    layout = """\
oxford_flowers/
    jpg/                             image_00001.jpg, ...
    imagelabels.mat                  (only needed without the split file)
    cat_to_name.json                 (only needed without the split file)
    split_zhou_OxfordFlowers.json    CoOp's split
"""

    def make_split(self):
        try:
            from scipy.io import loadmat
        except ImportError:
            raise ImportError("Reading OxfordFlowers' imagelabels.mat (used when the split file is absent) needs "
                              'scipy, part of the data extra: pip install "vlprompt[data]"') from None

        label_file = self.require(os.path.join(self.dataset_dir, "imagelabels.mat"), "label file")
        names_file = self.require(os.path.join(self.dataset_dir, "cat_to_name.json"), "class-name file")
        try:
            labels = loadmat(label_file)["labels"][0]
        except Exception as e:
            raise self.format_error(label_file, f"cannot read the MATLAB variable 'labels' ({e})") from None
        try:
            with open(names_file, encoding="utf-8") as f:
                lab2cname = json.load(f)
        except json.JSONDecodeError as e:
            raise self.format_error(names_file, f"not valid JSON ({e})") from None

        tracker = defaultdict(list)  # label -> images, labels in first-appearance order
        for i, label in enumerate(labels):
            tracker[int(label)].append(os.path.join(self.image_dir, f"image_{i + 1:05d}.jpg"))
        groups = []
        for label, impaths in tracker.items():
            if str(label) not in lab2cname:
                raise self.format_error(names_file, f"no name for class {label}")
            groups.append((label - 1, lab2cname[str(label)], impaths))
        print("Splitting data into 50% train, 20% val, and 30% test")
        train, val, test = split_per_class(groups, 0.5, 0.2)
        return tuple(make_datums(part, label_file) for part in (train, val, test))
