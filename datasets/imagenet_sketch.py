"""ImageNet-Sketch (Wang et al., 2019), test only: sorted wnid folders -> labels 0..999, names from
classnames.txt (a copy of imagenet/classnames.txt). NUM_SHOTS and SUBSAMPLE_CLASSES are ignored."""
from vlprompt.data import TestOnlyDataset
from vlprompt.data.imagenet import WnidFolderTestSet
from vlprompt.engine import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class ImageNetSketch(WnidFolderTestSet, TestOnlyDataset):
    dataset_dir = "imagenet-sketch"
    image_folder = "images"
    layout = """\
imagenet-sketch/
    images/           one folder per wnid (n01440764/, ...)
    classnames.txt    a copy of imagenet/classnames.txt
"""
