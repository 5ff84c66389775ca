"""ImageNet-Sketch (Wang et al., 2019), test only: sorted wnid folders -> labels 0..999, names from
classnames.txt (a copy of imagenet/classnames.txt). NUM_SHOTS and SUBSAMPLE_CLASSES are ignored."""
import os

from vlprompt.data import TestOnlyDataset
from vlprompt.data.imagenet import read_classnames, read_wnid_folders
from vlprompt.engine import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class ImageNetSketch(TestOnlyDataset):
    dataset_dir = "imagenet-sketch"
    image_folder = "images"
    layout = """\
imagenet-sketch/
    images/           one folder per wnid (n01440764/, ...)
    classnames.txt    a copy of imagenet/classnames.txt
"""

    def read_data(self):
        classnames_file = self.require(os.path.join(self.dataset_dir, "classnames.txt"), "class-name file")
        return read_wnid_folders(self.image_dir, read_classnames(classnames_file), classnames_file)
