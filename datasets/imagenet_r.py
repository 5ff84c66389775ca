"""ImageNet-R (Hendrycks et al., 2021), test only and 200-way: labels 0..199 by sorted wnid folder, names
from classnames.txt, so the classifier scores only these 200 classes. README.txt is ignored.
NUM_SHOTS and SUBSAMPLE_CLASSES are ignored."""
from vlprompt.data import TestOnlyDataset
from vlprompt.data.imagenet import WnidFolderTestSet
from vlprompt.engine import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class ImageNetR(WnidFolderTestSet, TestOnlyDataset):
    dataset_dir = "imagenet-rendition"
    image_folder = "imagenet-r"
    ignored = ("README.txt",)
    layout = """\
imagenet-rendition/
    imagenet-r/       200 wnid folders (n01443537/, ...) and README.txt
    classnames.txt    a copy of imagenet/classnames.txt
"""
