"""Tiny domain-generalization datasets in the exact on-disk layouts of Dassl's PACS, VLCS, OfficeHomeDG and
DomainNet (which MetaPrompt's few-shot readers use), with real image files.

Every class has its own colour in every domain; a domain changes only the amount of pixel noise and a
small brightness shift, so a model can learn the classes from some domains and recognise them in another.

Each generator returns a `FakeDG` that states, independently of the readers, what is on disk: for every
domain and split the images in the order the reader lists them (split-file order; for folder layouts,
class folders sorted and images sorted by name), with their label and class name.
"""
import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .fake_data import class_colour, write_jpeg

PACS_DOMAINS = ["art_painting", "cartoon", "photo", "sketch"]
PACS_CLASSES = ["dog", "elephant", "giraffe", "guitar", "horse", "house", "person"]
PACS_ERROR_PATH = "sketch/dog/n02103406_4068-1.png"  # listed in the split files, unreadable
VLCS_DOMAINS = ["caltech", "labelme", "pascal", "sun"]
VLCS_CLASSES = ["bird", "car", "chair", "dog", "person"]
OFFICE_HOME_DOMAINS = ["art", "clipart", "product", "real_world"]
DOMAINNET_DOMAINS = ["clipart", "infograph", "painting", "quickdraw", "real", "sketch"]


@dataclass
class FakeDG:
    name: str  # the registered reader
    dataset_dir: str
    domains: list
    classnames: list  # by label
    # files[domain][split] = [(absolute image path, label, class name)] in the reader's listing order
    files: dict = field(default_factory=dict)

    def items(self, domain, *splits):
        return [item for split in splits for item in self.files[domain][split]]


def _domain_style(domain_index):
    return {"noise": 6 + 6 * domain_index, "shift": (-1) ** domain_index * 8 * domain_index}


def _write_image(path, label, n_classes, domain_index, seed, fmt="JPEG"):
    style = _domain_style(domain_index)
    colour = tuple(int(np.clip(c + style["shift"], 0, 255)) for c in class_colour(label, n_classes))
    if fmt == "JPEG":
        return write_jpeg(path, colour, noise=style["noise"], seed=seed)
    rng = np.random.default_rng(seed)
    pixels = np.empty((30, 40, 3), dtype=np.int16)
    pixels[:] = colour
    pixels += rng.integers(-style["noise"], style["noise"] + 1, size=pixels.shape, dtype=np.int16)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, format=fmt)
    return path


def make_pacs(root, n_classes=3, counts=(("train", 3), ("crossval", 1), ("test", 1)), error_path=True, seed=0):
    """<root>/pacs/images/<domain>/<class>/<file> and splits/<domain>_<split>_kfold.txt.

    The first `n_classes` of the 7 PACS classes, `counts` images per class per domain and split. Sketch
    images are PNG files (as in PACS), the others JPEG. With `error_path`, the image Dassl skips is
    listed in sketch's train split and written as an unreadable file.
    """
    dataset_dir = os.path.join(root, "pacs")
    classes = PACS_CLASSES[:n_classes]
    fake = FakeDG("PACSFS", dataset_dir, list(PACS_DOMAINS), list(classes))
    for d, domain in enumerate(PACS_DOMAINS):
        fake.files[domain] = {}
        index = 0
        for split, count in counts:
            lines, items = [], []
            # split files list the images class by class, as PACS's do
            for label, cname in enumerate(classes):
                for _ in range(count):
                    index += 1
                    if domain == "sketch":
                        rel, fmt = f"{domain}/{cname}/n{label:08d}_{index}-1.png", "PNG"
                    else:
                        rel, fmt = f"{domain}/{cname}/pic_{index:03d}.jpg", "JPEG"
                    path = os.path.join(dataset_dir, "images", rel)
                    _write_image(path, label, n_classes, d, seed * 100003 + d * 1009 + index, fmt)
                    lines.append(f"{rel} {label + 1}")
                    items.append((path, label, cname))
            if error_path and domain == "sketch" and split == "train" and "dog" in classes:
                bad = os.path.join(dataset_dir, "images", PACS_ERROR_PATH)
                with open(bad, "wb") as f:
                    f.write(b"not an image")
                lines.insert(1, f"{PACS_ERROR_PATH} {classes.index('dog') + 1}")
            fake.files[domain][split] = items
            split_file = os.path.join(dataset_dir, "splits", f"{domain}_{split}_kfold.txt")
            os.makedirs(os.path.dirname(split_file), exist_ok=True)
            with open(split_file, "w") as f:
                f.write("\n".join(lines) + "\n")
    return fake


def _make_folder_layout(name, dataset_dir, domains, folder_of_domain, splits, folders, classnames, counts, seed):
    """<dataset_dir>/<domain folder>/<split>/<class folder>/<file>.jpg; listing order = sorted folders,
    sorted files."""
    fake = FakeDG(name, dataset_dir, list(domains), list(classnames))
    n_classes = len(folders)
    sorted_folders = sorted(folders)
    for d, domain in enumerate(domains):
        fake.files[domain] = {}
        for split in splits:
            items = []
            for label, folder in enumerate(sorted_folders):
                colour_index = folders.index(folder)
                names = [f"{split}_{counts[split] - j:04d}.jpg" for j in range(counts[split])]
                for j, file_name in enumerate(names):
                    path = os.path.join(dataset_dir, folder_of_domain(domain), split, folder, file_name)
                    _write_image(path, colour_index, n_classes, d, seed * 100003 + d * 1009 + label * 101 + j)
                items.extend((os.path.join(dataset_dir, folder_of_domain(domain), split, folder, f), label,
                              classnames[label]) for f in sorted(names))
            fake.files[domain][split] = items
    return fake


def make_vlcs(root, dirname="VLCS", counts=None, folders=("0", "1", "2", "3", "4"), seed=0):
    """<root>/VLCS/<DOMAIN>/{train,crossval,test}/<class folder>/*.jpg (the 5 classes in folder order)."""
    counts = counts or {"train": 2, "crossval": 1, "test": 1}
    return _make_folder_layout("VLCSFS", os.path.join(root, dirname), VLCS_DOMAINS, str.upper,
                               ["train", "crossval", "test"], list(folders), list(VLCS_CLASSES), counts, seed)


def make_office_home(root, dirname="office_home_dg", folders=("TV", "Alarm_Clock", "ToothBrush"), counts=None,
                     seed=0):
    """<root>/office_home_dg/<domain>/{train,val}/<Class_Folder>/*.jpg.

    The default folders sort (case-sensitively, as Dassl) to Alarm_Clock, TV, ToothBrush, so labels and
    lower-cased class names follow that order.
    """
    counts = counts or {"train": 2, "val": 1}
    classnames = [f.lower() for f in sorted(folders)]
    return _make_folder_layout("OfficeHomeFS", os.path.join(root, dirname), OFFICE_HOME_DOMAINS, lambda d: d,
                               ["train", "val"], list(folders), classnames, counts, seed)


def make_domainnet(root, classes=("aircraft_carrier", "airplane", "alarm_clock"), counts=(("train", 2), ("test", 1)),
                   seed=0):
    """<root>/domainnet/<domain>/<class>/<domain>_<class id>_<n>.jpg and splits/<domain>_{train,test}.txt
    ("<domain>/<class>/<file> <label>", 0-based labels)."""
    dataset_dir = os.path.join(root, "domainnet")
    fake = FakeDG("DomainNetFS", dataset_dir, list(DOMAINNET_DOMAINS), list(classes))
    n_classes = len(classes)
    for d, domain in enumerate(DOMAINNET_DOMAINS):
        fake.files[domain] = {}
        index = 0
        for split, count in counts:
            lines, items = [], []
            # interleave the classes, so first-appearance order matters to the few-shot picks
            for j in range(count):
                for label in reversed(range(n_classes)):
                    index += 1
                    cname = classes[label]
                    rel = f"{domain}/{cname}/{domain}_{label + 1:03d}_{index:06d}.jpg"
                    path = os.path.join(dataset_dir, rel)
                    _write_image(path, label, n_classes, d, seed * 100003 + d * 1009 + index)
                    lines.append(f"{rel} {label}")
                    items.append((path, label, cname))
            fake.files[domain][split] = items
            split_file = os.path.join(dataset_dir, "splits", f"{domain}_{split}.txt")
            os.makedirs(os.path.dirname(split_file), exist_ok=True)
            with open(split_file, "w") as f:
                f.write("\n".join(lines) + "\n")
    return fake


MAKERS = {"pacs": make_pacs, "vlcs": make_vlcs, "office_home": make_office_home, "domainnet": make_domainnet}
