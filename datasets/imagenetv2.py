"""ImageNetV2 matched-frequency (Recht et al., 2019), test only: folder "<i>" holds class i, named by
line i of classnames.txt (a copy of imagenet/classnames.txt). NUM_SHOTS and SUBSAMPLE_CLASSES are ignored."""
import os

from vlprompt.data import TestOnlyDataset
from vlprompt.data.imagenet import read_classnames
from vlprompt.data.splits import list_images, make_datums
from vlprompt.engine import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class ImageNetV2(TestOnlyDataset):
    dataset_dir = "imagenetv2"
    image_folder = "imagenetv2-matched-frequency-format-val"
    layout = """\
imagenetv2/
    imagenetv2-matched-frequency-format-val/    folders 0/ ... 999/ (folder i = ImageNet class i)
    classnames.txt                              a copy of imagenet/classnames.txt
"""

    def read_data(self):
        classnames_file = self.require(os.path.join(self.dataset_dir, "classnames.txt"), "class-name file")
        names = list(read_classnames(classnames_file).values())
        entries = []
        # Folders are integers: class i is folder "i" (not the i-th folder in sorted order, where "10" < "2").
        for label, classname in enumerate(names):
            class_dir = self.require(os.path.join(self.image_dir, str(label)), f"folder of class {label}")
            entries.extend((os.path.join(class_dir, im), label, classname) for im in list_images(class_dir))
        return make_datums(entries, self.image_dir)
