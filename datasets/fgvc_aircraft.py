"""FGVC-Aircraft (Maji et al., 2013) as CoOp reads it: the 100 variants of variants.txt (line index =
label, e.g. "707-320", "Cessna 172"), split by the dataset's own images_variant_{train,val,test}.txt
(lines "<image id> <variant name, may contain spaces>", image images/<image id>.jpg). No split JSON."""
import os

from vlprompt.data import BenchmarkDataset
from vlprompt.data.splits import make_datums
from vlprompt.engine import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class FGVCAircraft(BenchmarkDataset):
    dataset_dir = "fgvc_aircraft"
    image_folder = "images"
    layout = """\
fgvc_aircraft/                      the data/ folder of fgvc-aircraft-2013b.tar.gz, renamed
    images/                         1025794.jpg, ...
    variants.txt                    one variant name per line (line index = label)
    images_variant_train.txt        lines "1025794 707-320"
    images_variant_val.txt
    images_variant_test.txt
"""

    def read_splits(self):
        self.require(self.image_dir, "image folder")
        classnames = self.read_lines(os.path.join(self.dataset_dir, "variants.txt"), "variant list")
        cname2lab = {c: i for i, c in enumerate(classnames)}
        parts = [self.read_data(cname2lab, f"images_variant_{split}.txt") for split in ("train", "val", "test")]
        # One existence check over the three lists: every missing image is counted in one error.
        datums = iter(make_datums([e for part in parts for e in part],
                                  os.path.join(self.dataset_dir, "images_variant_{train,val,test}.txt")))
        return tuple([next(datums) for _ in part] for part in parts)

    def read_data(self, cname2lab, split_file):
        path = os.path.join(self.dataset_dir, split_file)
        entries = []
        for line in self.read_lines(path, "split list"):
            fields = line.split(" ")
            classname = " ".join(fields[1:])
            if classname not in cname2lab:
                raise self.format_error(path, f"line {line!r}: variant {classname!r} is not in variants.txt")
            entries.append((os.path.join(self.image_dir, fields[0] + ".jpg"), cname2lab[classname], classname))
        return entries
