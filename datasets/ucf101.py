"""UCF101 (Soomro et al., 2012) as CoOp reads it: the middle frame of each video, split from
split_zhou_UCF101.json.

Without the split file: ucfTrainTestlist/classInd.txt ("1 ApplyEyeMakeup", label = index - 1),
trainlist01.txt (train+val) and testlist01.txt (test). The CamelCase action becomes words joined by "_"
("ApplyEyeMakeup" -> "Apply_Eye_Makeup"), which is also the frame folder's name; the frame is
<Renamed>/<video file name with .avi -> .jpg>. Train/val = per-class 80/20 of trainlist01.
"""
import os
import re

from vlprompt.data import BenchmarkDataset, split_trainval
from vlprompt.data.splits import make_datums
from vlprompt.engine import DATASET_REGISTRY


def split_camel_case(action):
    """'ApplyEyeMakeup' -> 'Apply_Eye_Makeup' (words start at capitals, as in CoOp)."""
    return "_".join(re.findall("[A-Z][^A-Z]*", action))


@DATASET_REGISTRY.register()
class UCF101(BenchmarkDataset):
    dataset_dir = "ucf101"
    image_folder = "UCF-101-midframes"
    split_file = "split_zhou_UCF101.json"
    layout = """\
ucf101/
    UCF-101-midframes/                  Apply_Eye_Makeup/v_ApplyEyeMakeup_g01_c01.jpg, ...
    ucfTrainTestlist/classInd.txt       (only needed without the split file)
    ucfTrainTestlist/trainlist01.txt
    ucfTrainTestlist/testlist01.txt
    split_zhou_UCF101.json              CoOp's split
"""

    def make_split(self):
        path = os.path.join(self.dataset_dir, "ucfTrainTestlist", "classInd.txt")
        cname2lab = {}
        for line in self.read_lines(path, "class index"):
            fields = line.split(" ")
            if len(fields) != 2 or not fields[0].isdigit():
                raise self.format_error(path, f"expected lines '<index> <Action>', got {line!r}")
            cname2lab[fields[1]] = int(fields[0]) - 1
        trainval = self.read_data(cname2lab, "trainlist01.txt")
        test = self.read_data(cname2lab, "testlist01.txt")
        train, val = split_trainval(trainval)
        return train, val, test

    def read_data(self, cname2lab, text_file):
        path = os.path.join(self.dataset_dir, "ucfTrainTestlist", text_file)
        entries = []
        for line in self.read_lines(path, "split list"):
            video = line.split(" ")[0]  # trainlist lines also carry the class index
            action, _, filename = video.partition("/")
            if action not in cname2lab:
                raise self.format_error(path, f"line {line!r}: action {action!r} is not in classInd.txt")
            renamed = split_camel_case(action)
            entries.append((os.path.join(self.image_dir, renamed, filename.replace(".avi", ".jpg")),
                            cname2lab[action], renamed))
        return make_datums(entries, path)
