"""Oxford-IIIT Pets (Parkhi et al., 2012) as CoOp reads it: 37 breeds, split from split_zhou_OxfordPets.json.

Without the split file: annotations/trainval.txt and test.txt (lines "imname classid species breedid"),
label = classid - 1, class name = the image name without its final "_<number>", lower-cased
("Abyssinian_100" -> "abyssinian", "american_bulldog_10" -> "american_bulldog"); train/val = a per-class
80/20 split of trainval (Python's `random`, seeded by SEED).

The class also keeps the original's public static helpers, which the original repositories' other
readers call (`OxfordPets.read_split(path, image_dir)`, `OxfordPets.save_split(train, val, test, path,
image_dir)`, `OxfordPets.subsample_classes(train, val, test, subsample=...)`,
`OxfordPets.split_trainval(trainval, p_val=0.2)`), so this file can replace theirs.
"""
import os

from vlprompt.data import BenchmarkDataset, read_split, save_split, split_trainval, subsample_classes
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
    # The original's static helpers (same signatures), for the originals' other readers.
    read_split = staticmethod(read_split)
    save_split = staticmethod(save_split)
    split_trainval = staticmethod(split_trainval)
    subsample_classes = staticmethod(subsample_classes)

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
