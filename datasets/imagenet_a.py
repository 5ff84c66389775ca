"""ImageNet-A (Hendrycks et al., 2021), test only and 200-way: labels 0..199 by sorted wnid folder, names
from classnames.txt, so the classifier scores only these 200 classes. README.txt is ignored.
NUM_SHOTS and SUBSAMPLE_CLASSES are ignored."""
import os

from vlprompt.data import TestOnlyDataset
from vlprompt.data.imagenet import read_classnames, read_wnid_folders
from vlprompt.engine import DATASET_REGISTRY

TO_BE_IGNORED = ["README.txt"]


@DATASET_REGISTRY.register()
class ImageNetA(TestOnlyDataset):
    dataset_dir = "imagenet-adversarial"
    image_folder = "imagenet-a"
    layout = """\
imagenet-adversarial/
    imagenet-a/       200 wnid folders (n01498041/, ...) and README.txt
    classnames.txt    a copy of imagenet/classnames.txt
"""

    def read_data(self):
        classnames_file = self.require(os.path.join(self.dataset_dir, "classnames.txt"), "class-name file")
        return read_wnid_folders(self.image_dir, read_classnames(classnames_file), classnames_file, TO_BE_IGNORED)
