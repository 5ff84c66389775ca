"""ImageNet (ILSVRC-2012) as CoOp reads it: labels = positions in the sorted wnid folder list, class names
from classnames.txt (CLIP's names), the official validation set as the test set and as val.

The lists are cached in imagenet/preprocessed.pkl, validated before use (vlprompt.data.imagenet). The
few-shot cache holds only the train list; base/new subsampling applies to train and test.
"""
import os

from vlprompt.data import BenchmarkDataset, fewshot_subsets, subsample_classes
from vlprompt.data.imagenet import folder_items, load_preprocessed, read_classnames, save_preprocessed
from vlprompt.data.splits import list_class_folders, make_datums
from vlprompt.engine import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class ImageNet(BenchmarkDataset):
    dataset_dir = "imagenet"
    image_folder = "images"
    layout = """\
imagenet/
    images/train/      one folder per wnid (n01440764/, ...), 1.28M images
    images/val/        the 50,000 validation images, sorted into the same wnid folders
    classnames.txt     lines "n01440764 tench" (CLIP's class names)
    preprocessed.pkl   written on first use (validated cache of the image lists)
"""

    def read_splits(self):
        classnames_file = self.require(os.path.join(self.dataset_dir, "classnames.txt"), "class-name file")
        classnames = read_classnames(classnames_file)
        split_dirs = {"train": os.path.join(self.image_dir, "train"), "test": os.path.join(self.image_dir, "val")}
        for key, path in split_dirs.items():
            self.require(path, f"{'training' if key == 'train' else 'validation'} image folder")
        folders = {key: list_class_folders(path) for key, path in split_dirs.items()}
        preprocessed = os.path.join(self.dataset_dir, "preprocessed.pkl")

        data = load_preprocessed(preprocessed, self.dataset_dir, split_dirs, folders, classnames, classnames_file)
        if data is not None:
            train, test = data["train"], data["test"]
        else:
            train, test = (make_datums(folder_items(split_dirs[key], folders[key], classnames, classnames_file),
                                       split_dirs[key]) for key in ("train", "test"))
            if self.save_files:
                save_preprocessed(preprocessed, train, test, self.dataset_dir, folders, classnames_file)
        # "Follow standard practice to perform evaluation on the val set": val = test.
        return train, test, test

    def select(self, cfg, train, val, test):
        train, _ = fewshot_subsets(self, cfg.DATASET.NUM_SHOTS, cfg.SEED, self.split_fewshot_dir, train)
        train, test = subsample_classes(train, test, subsample=cfg.DATASET.get("SUBSAMPLE_CLASSES", "all"))
        return train, test, test
