"""Oxford-IIIT Pets (Parkhi et al., 2012) as CoOp reads it: 37 breeds, split from split_zhou_OxfordPets.json.

Without the split file: annotations/trainval.txt and test.txt (lines "imname classid species breedid"),
label = classid - 1, class name = the image name without its final "_<number>", lower-cased
("Abyssinian_100" -> "abyssinian", "american_bulldog_10" -> "american_bulldog"); train/val = a per-class
80/20 split of trainval (Python's `random`, seeded by SEED).
"""
import os

from vlprompt.data import BenchmarkDataset, split_trainval
from vlprompt.data.splits import make_datums
from vlprompt.engine import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class OxfordPets(BenchmarkDataset):
    dataset_dir = "oxford_pets"
    image_folder = "images"
    split_file = "split_zhou_OxfordPets.json"
    layout = """\
oxford_pets/
    images/                      Abyssinian_1.jpg, american_bulldog_10.jpg, ...
    annotations/trainval.txt     (only needed without the split file)
    annotations/test.txt
    split_zhou_OxfordPets.json   CoOp's split
"""

    def make_split(self):
        trainval = self.read_annotations("trainval.txt")
        test = self.read_annotations("test.txt")
        train, val = split_trainval(trainval)
        return train, val, test

    def read_annotations(self, filename):
        path = os.path.join(self.dataset_dir, "annotations", filename)
        entries = []
        for line in self.read_lines(path, "annotation file"):
            if line.startswith("#"):
                continue
            fields = line.split(" ")
            if len(fields) != 4 or not fields[1].isdigit():
                raise self.format_error(path, f"expected lines 'imname classid species breedid', got {line!r}")
            imname, classid = fields[0], int(fields[1])
            breed = "_".join(imname.split("_")[:-1]).lower()
            entries.append((os.path.join(self.image_dir, imname + ".jpg"), classid - 1, breed))
        return make_datums(entries, path)
