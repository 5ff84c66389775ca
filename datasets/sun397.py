"""SUN397 (Xiao et al., 2010) as CoOp reads it: split from split_zhou_SUN397.json.

Without the split file: ClassName.txt ("/a/abbey", line index = label), Training_01.txt (train+val) and
Testing_01.txt (test), lines "/a/abbey/sun_xxx.jpg". The class name is the image's folder path without
the first-letter segment, segments reversed and space-joined ("a/apartment_building/outdoor" ->
"outdoor apartment_building"); train/val = per-class 80/20 of Training_01.
"""
import os

from vlprompt.data import BenchmarkDataset, split_trainval
from vlprompt.data.splits import make_datums
from vlprompt.engine import DATASET_REGISTRY


def scene_name(category):
    """'a/apartment_building/outdoor' -> 'outdoor apartment_building'."""
    return " ".join(category.split("/")[1:][::-1])


@DATASET_REGISTRY.register()
class SUN397(BenchmarkDataset):
    dataset_dir = "sun397"
    image_folder = "SUN397"
    split_file = "split_zhou_SUN397.json"
    layout = """\
sun397/
    SUN397/                 a/abbey/sun_*.jpg, ...
    ClassName.txt           (only needed without the split file; from Partitions.zip)
    Training_01.txt         (only needed without the split file)
    Testing_01.txt          (only needed without the split file)
    split_zhou_SUN397.json  CoOp's split
"""

    def make_split(self):
        classnames = [line[1:] for line in self.read_lines(os.path.join(self.dataset_dir, "ClassName.txt"),
                                                            "class list")]
        cname2lab = {c: i for i, c in enumerate(classnames)}
        trainval = self.read_data(cname2lab, "Training_01.txt")
        test = self.read_data(cname2lab, "Testing_01.txt")
        train, val = split_trainval(trainval)
        return train, val, test

    def read_data(self, cname2lab, text_file):
        path = os.path.join(self.dataset_dir, text_file)
        entries = []
        for line in self.read_lines(path, "partition file"):
            imname = line[1:]  # drop the leading "/"
            category = os.path.dirname(imname)
            if category not in cname2lab:
                raise self.format_error(path, f"line {line!r}: category {category!r} is not in ClassName.txt")
            entries.append((os.path.join(self.image_dir, imname), cname2lab[category], scene_name(category)))
        return make_datums(entries, path)
