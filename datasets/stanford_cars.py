"""Stanford Cars (Krause et al., 2013) as CoOp reads it: 196 models, split from split_zhou_StanfordCars.json
whose paths are relative to the dataset folder ("cars_train/00001.jpg").

Without the split file: devkit/cars_train_annos.mat (train+val) and cars_test_annos_withlabels.mat (test),
label = class - 1, class name from devkit/cars_meta.mat with the trailing year moved to the front
("AM General Hummer SUV 2000" -> "2000 AM General Hummer SUV"); train/val = per-class 80/20 of train.
"""
import os

from vlprompt.data import BenchmarkDataset, split_trainval
from vlprompt.data.splits import make_datums
from vlprompt.engine import DATASET_REGISTRY


def year_first(name):
    words = name.split(" ")
    return " ".join([words[-1]] + words[:-1])


@DATASET_REGISTRY.register()
class StanfordCars(BenchmarkDataset):
    dataset_dir = "stanford_cars"
    image_folder = ""  # split paths are relative to the dataset folder
    split_file = "split_zhou_StanfordCars.json"
    layout = """\
stanford_cars/
    cars_train/                       00001.jpg, ...
    cars_test/                        00001.jpg, ...
    devkit/cars_train_annos.mat       (only needed without the split file)
    devkit/cars_meta.mat              (only needed without the split file)
    cars_test_annos_withlabels.mat    (only needed without the split file)
    split_zhou_StanfordCars.json      CoOp's split
"""

    def make_split(self):
        meta = os.path.join(self.dataset_dir, "devkit", "cars_meta.mat")
        trainval = self.read_annotations("cars_train", os.path.join(self.dataset_dir, "devkit", "cars_train_annos.mat"),
                                         meta)
        test = self.read_annotations("cars_test", os.path.join(self.dataset_dir, "cars_test_annos_withlabels.mat"),
                                     meta)
        train, val = split_trainval(trainval)
        return train, val, test

    def load_mat(self, path, key, what):
        try:
            from scipy.io import loadmat
        except ImportError:
            raise ImportError("Reading StanfordCars' .mat annotations (used when the split file is absent) needs "
                              'scipy, part of the data extra: pip install "vlprompt[data]"') from None

        self.require(path, what)
        try:
            return loadmat(path)[key][0]
        except Exception as e:  # not a MATLAB file, or no such variable
            raise self.format_error(path, f"cannot read the MATLAB variable {key!r} "
                                    f"({type(e).__name__}: {e})") from None

    def read_annotations(self, image_folder, anno_file, meta_file):
        annotations = self.load_mat(anno_file, "annotations", "annotation file")
        class_names = self.load_mat(meta_file, "class_names", "class-name file")
        entries = []
        for record in annotations:
            imname = str(record["fname"][0])
            label = int(record["class"][0, 0]) - 1
            if not 0 <= label < len(class_names):
                raise self.format_error(anno_file, f"{imname} has class {label + 1}, but cars_meta.mat names "
                                        f"{len(class_names)} classes")
            classname = year_first(str(class_names[label][0]))
            entries.append((os.path.join(self.dataset_dir, image_folder, imname), label, classname))
        return make_datums(entries, anno_file)
