"""Tiny datasets in the exact on-disk layouts the readers expect, with real JPEG files.

Each class gets its own colour (plus per-image noise), so a model can learn to tell classes apart:
the "easy synthetic task" the learning tests and the offline demo train on.

Every generator writes one dataset under a data root and returns a `FakeDataset`: the class names in
label order and the exact (image path, label, class name) lists the reader must produce, stated here
from the reference facts (class-name rules, label order, split files) independently of the readers.
Names are chosen to exercise each class-name rule (Caltech's ignored/renamed folders, Pets' names from
image names, Cars' year, SUN397's reversed segments, UCF101's CamelCase, ...).

`GENERATORS` maps registry names to generators (`make_dataset(name, root)`); register more with
`@register_generator("Name")`, so registry-parametrised tests cover a new dataset.
"""
import colorsys
import csv
import json
import os
import random
from dataclasses import dataclass, field

import numpy as np
from PIL import Image


def class_colour(index, n_classes):
    r, g, b = colorsys.hsv_to_rgb((index / max(1, n_classes)) % 1.0, 0.9, 0.9)
    return int(r * 255), int(g * 255), int(b * 255)


def write_jpeg(path, colour, size=(40, 30), noise=12, seed=0):
    """A JPEG of one colour with a little uniform noise (size is width x height)."""
    rng = np.random.default_rng(seed)
    w, h = size
    pixels = np.empty((h, w, 3), dtype=np.int16)
    pixels[:] = colour
    pixels += rng.integers(-noise, noise + 1, size=pixels.shape, dtype=np.int16)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, format="JPEG", quality=90)
    return path


CALTECH_FOLDERS = ["BACKGROUND_Google", "Faces", "Faces_easy", "Leopards", "Motorbikes", "accordion", "airplanes",
                   "anchor", "ant", "barrel", "bass", "beaver"]


def make_caltech101(root, folders=CALTECH_FOLDERS, images_per_class=12, with_split=True, seed=0):
    """<root>/caltech-101/101_ObjectCategories/<folder>/image_%04d.jpg (+ split_zhou_Caltech101.json).

    The split mimics CoOp's: per class (sorted folders, the two ignored ones left out, four renamed)
    50% train / 20% val / 30% test. Returns (dataset_dir, class names in label order).
    """
    # Stated here independently of the reader (reference facts), so tests compare two statements.
    ignored = {"BACKGROUND_Google", "Faces_easy"}
    renamed = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}
    dataset_dir = os.path.join(root, "caltech-101")
    image_dir = os.path.join(dataset_dir, "101_ObjectCategories")
    for i, folder in enumerate(sorted(folders)):
        for j in range(images_per_class):
            write_jpeg(os.path.join(image_dir, folder, f"image_{j + 1:04d}.jpg"), class_colour(i, len(folders)),
                       seed=seed * 100003 + i * 1009 + j)
    classes = [f for f in sorted(folders) if f not in ignored]
    names = [renamed.get(f, f) for f in classes]
    if with_split:
        rng = random.Random(seed)
        split = {"train": [], "val": [], "test": []}
        for label, (folder, name) in enumerate(zip(classes, names)):
            files = [f"{folder}/image_{j + 1:04d}.jpg" for j in range(images_per_class)]
            rng.shuffle(files)
            n_train, n_val = round(len(files) * 0.5), round(len(files) * 0.2)
            for key, part in (("train", files[:n_train]), ("val", files[n_train:n_train + n_val]),
                              ("test", files[n_train + n_val:])):
                split[key].extend([f, label, name] for f in part)
        with open(os.path.join(dataset_dir, "split_zhou_Caltech101.json"), "w") as f:
            json.dump(split, f, indent=4)
    return dataset_dir, names


# ----------------------------------------------------------------------------------------------------
# The generator registry and what a generator returns
# ----------------------------------------------------------------------------------------------------

@dataclass
class FakeDataset:
    """What a generated dataset must read as.

    expected: {"train"/"val"/"test": [(absolute image path, label, class name), ...]} in the reader's
    order (split-file order, or the reader's listing order), for DATASET.NUM_SHOTS 0 and all classes.
    For test-only datasets train == test == the data and val is None.
    """

    name: str
    root: str
    dataset_dir: str
    classnames: list
    expected: dict
    test_only: bool = False
    split_file: str = ""  # absolute path of the split JSON the generator wrote ("" if none)
    opts: dict = field(default_factory=dict)  # extra config keys the reader needs ("DATASET.CUSTOM.DIR": ...)
    image_dir: str = ""  # the folder split paths are relative to
    listed_images: bool = False  # images come from a list (split/annotation file), not a folder listing
    raw: dict = field(default_factory=dict)  # the annotation lists in file order ("trainval", "test", "images")


GENERATORS = {}


def register_generator(name):
    def wrap(fn):
        GENERATORS[name] = fn
        return fn

    return wrap


def make_dataset(name, root, **kwargs):
    if name not in GENERATORS:
        raise KeyError(f"No fake-data generator for {name!r}; register one with "
                       "vlprompt.testing.fake_data.register_generator")
    return GENERATORS[name](str(root), **kwargs)


def make_all(root, names=None):
    """Every registered generator (or `names`) under one data root; {name: FakeDataset}."""
    return {name: make_dataset(name, root) for name in (names or GENERATORS)}


class _Painter:
    """Writes one JPEG per call, coloured by class, with distinct noise per image."""

    def __init__(self, n_classes, seed=0):
        self.n_classes = n_classes
        self.seed = seed
        self.count = 0

    def __call__(self, path, class_index):
        self.count += 1
        return write_jpeg(path, class_colour(class_index, self.n_classes), seed=self.seed * 100003 + self.count)


def _rel_split(rng, files, p_trn=0.5, p_val=0.2):
    files = list(files)
    rng.shuffle(files)
    n_trn, n_val = round(len(files) * p_trn), round(len(files) * p_val)
    return files[:n_trn], files[n_trn:n_trn + n_val], files[n_trn + n_val:]


def _trainval_test_split(files, names, trainval_per_class, rng):
    """A split as CoOp made SUN397's and UCF101's: per class, the first files are train+val (shuffled,
    20% val), the rest test. files[label] lists relative paths."""
    split = {"train": [], "val": [], "test": []}
    for label, name in enumerate(names):
        trainval = files[label][:trainval_per_class]
        rng.shuffle(trainval)
        n_val = round(len(trainval) * 0.2)
        split["val"].extend([f, label, name] for f in trainval[:n_val])
        split["train"].extend([f, label, name] for f in trainval[n_val:])
        split["test"].extend([f, label, name] for f in files[label][trainval_per_class:])
    return split


def _write_split(dataset_dir, filename, split, image_dir):
    """Write a CoOp split JSON ({key: [[relative path, label, name], ...]}); expected absolute lists."""
    path = os.path.join(dataset_dir, filename)
    with open(path, "w") as f:
        json.dump(split, f, indent=4)
    expected = {k: [(os.path.join(image_dir, rel), label, name) for rel, label, name in v] for k, v in split.items()}
    return path, expected


def _spec(name, root, dataset_dir, classnames, expected, **kw):
    kw.setdefault("listed_images", bool(kw.get("split_file")))
    return FakeDataset(name=name, root=root, dataset_dir=dataset_dir, classnames=list(classnames), expected=expected,
                       **kw)


def _split_from_groups(groups, seed, p_trn=0.5, p_val=0.2):
    """The generator's own "official" split: groups = [(label, name, [relative paths])]."""
    rng = random.Random(seed)
    split = {"train": [], "val": [], "test": []}
    for label, name, files in groups:
        for key, part in zip(("train", "val", "test"), _rel_split(rng, files, p_trn, p_val)):
            split[key].extend([f, label, name] for f in part)
    return split


# ----------------------------------------------------------------------------------------------------
# The 11 base-to-new datasets
# ----------------------------------------------------------------------------------------------------

@register_generator("Caltech101")
def fake_caltech101(root, images_per_class=8, with_split=True, seed=0):
    dataset_dir, names = make_caltech101(root, images_per_class=images_per_class, with_split=with_split, seed=seed)
    image_dir = os.path.join(dataset_dir, "101_ObjectCategories")
    split_file = os.path.join(dataset_dir, "split_zhou_Caltech101.json")
    expected = {}
    if with_split:
        with open(split_file) as f:
            split = json.load(f)
        expected = {k: [(os.path.join(image_dir, p), y, c) for p, y, c in v] for k, v in split.items()}
    return _spec("Caltech101", root, dataset_dir, names, expected, split_file=split_file if with_split else "",
                 image_dir=image_dir)


# (image-name prefix, classid): class name = prefix lower-cased. Real ids; uppercase = cats.
PETS_BREEDS = [("Abyssinian", 1), ("american_bulldog", 2), ("american_pit_bull_terrier", 3), ("Bengal", 4),
               ("staffordshire_bull_terrier", 5)]


@register_generator("OxfordPets")
def fake_oxford_pets(root, trainval_per_class=8, test_per_class=3, with_split=True, seed=0):
    """oxford_pets/images/<Breed>_<n>.jpg, annotations/trainval.txt + test.txt (+ the split JSON).

    The annotation lists are sorted by image name as in the real files, so the labels first appear in
    the order 1, 4, 2, 3, 5 (capitalised cat breeds sort first)."""
    dataset_dir = os.path.join(root, "oxford_pets")
    image_dir = os.path.join(dataset_dir, "images")
    paint = _Painter(len(PETS_BREEDS), seed)
    names = [prefix.lower() for prefix, _ in PETS_BREEDS]
    lists = {"trainval": [], "test": []}
    for i, (prefix, classid) in enumerate(PETS_BREEDS):
        species = 1 if prefix[0].isupper() else 2
        for j in range(1, trainval_per_class + test_per_class + 1):
            imname = f"{prefix}_{j}"
            paint(os.path.join(image_dir, imname + ".jpg"), i)
            lists["trainval" if j <= trainval_per_class else "test"].append(f"{imname} {classid} {species} {j}")
    os.makedirs(os.path.join(dataset_dir, "annotations"), exist_ok=True)
    raw = {}
    for key, lines in lists.items():
        with open(os.path.join(dataset_dir, "annotations", f"{key}.txt"), "w") as f:
            f.write("\n".join(sorted(lines)) + "\n")
        raw[key] = [(os.path.join(image_dir, line.split(" ")[0] + ".jpg"), int(line.split(" ")[1]) - 1,
                     line.split(" ")[0].rsplit("_", 1)[0].lower()) for line in sorted(lines)]
    split_file, expected = "", {}
    if with_split:
        rng = random.Random(seed)
        split = {"train": [], "val": [], "test": []}
        for i, (prefix, classid) in enumerate(PETS_BREEDS):
            files = [f"{prefix}_{j}.jpg" for j in range(1, trainval_per_class + 1)]
            rng.shuffle(files)
            n_val = round(len(files) * 0.2)
            split["val"].extend([f, classid - 1, names[i]] for f in files[:n_val])
            split["train"].extend([f, classid - 1, names[i]] for f in files[n_val:])
            split["test"].extend([f"{prefix}_{j}.jpg", classid - 1, names[i]]
                                 for j in range(trainval_per_class + 1, trainval_per_class + test_per_class + 1))
        split_file, expected = _write_split(dataset_dir, "split_zhou_OxfordPets.json", split, image_dir)
    return _spec("OxfordPets", root, dataset_dir, names, expected, split_file=split_file, image_dir=image_dir,
                 raw=raw, listed_images=True)


# cars_meta.mat names (label order) -> CoOp's names (the year moved to the front).
CARS_CLASSES = [("AM General Hummer SUV 2000", "2000 AM General Hummer SUV"),
                ("Acura RL Sedan 2012", "2012 Acura RL Sedan"),
                ("Ram C/V Cargo Van Minivan 2012", "2012 Ram C/V Cargo Van Minivan"),
                ("smart fortwo Convertible 2012", "2012 smart fortwo Convertible")]


def _cars_annotations(labels):
    """A struct array like devkit/cars_train_annos.mat: bbox_x1..y2, class (1-based), fname."""
    dtype = [(k, "O") for k in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")]
    records = np.zeros((1, len(labels)), dtype=dtype)
    for i, label in enumerate(labels):
        records[0, i] = (np.array([[1]]), np.array([[1]]), np.array([[39]]), np.array([[29]]),
                         np.array([[label + 1]], dtype=np.uint8), f"{i + 1:05d}.jpg")
    return records


@register_generator("StanfordCars")
def fake_stanford_cars(root, train_per_class=6, test_per_class=3, with_split=True, seed=0):
    """stanford_cars/cars_train/00001.jpg ..., cars_test/..., devkit/*.mat, cars_test_annos_withlabels.mat."""
    from scipy.io import savemat

    dataset_dir = os.path.join(root, "stanford_cars")
    n = len(CARS_CLASSES)
    paint = _Painter(n, seed)
    # Interleaved labels, as in the real annotation files.
    train_labels = [i % n for i in range(train_per_class * n)]
    test_labels = [(i * 3 + 1) % n for i in range(test_per_class * n)]
    for folder, labels in (("cars_train", train_labels), ("cars_test", test_labels)):
        for i, label in enumerate(labels):
            paint(os.path.join(dataset_dir, folder, f"{i + 1:05d}.jpg"), label)
    os.makedirs(os.path.join(dataset_dir, "devkit"), exist_ok=True)
    savemat(os.path.join(dataset_dir, "devkit", "cars_train_annos.mat"),
            {"annotations": _cars_annotations(train_labels)})
    savemat(os.path.join(dataset_dir, "cars_test_annos_withlabels.mat"),
            {"annotations": _cars_annotations(test_labels)})
    class_names = np.empty((1, n), dtype=object)
    for i, (meta_name, _) in enumerate(CARS_CLASSES):
        class_names[0, i] = meta_name
    savemat(os.path.join(dataset_dir, "devkit", "cars_meta.mat"), {"class_names": class_names})
    names = [coop for _, coop in CARS_CLASSES]
    split_file, expected = "", {}
    if with_split:
        rng = random.Random(seed)
        split = {"train": [], "val": [], "test": []}
        for label in range(n):
            files = [f"cars_train/{i + 1:05d}.jpg" for i, y in enumerate(train_labels) if y == label]
            rng.shuffle(files)
            n_val = round(len(files) * 0.2)
            split["val"].extend([f, label, names[label]] for f in files[:n_val])
            split["train"].extend([f, label, names[label]] for f in files[n_val:])
        split["test"] = [[f"cars_test/{i + 1:05d}.jpg", y, names[y]] for i, y in enumerate(test_labels)]
        split_file, expected = _write_split(dataset_dir, "split_zhou_StanfordCars.json", split, dataset_dir)
    raw = {key: [(os.path.join(dataset_dir, folder, f"{i + 1:05d}.jpg"), y, names[y]) for i, y in enumerate(labels)]
           for key, folder, labels in (("trainval", "cars_train", train_labels), ("test", "cars_test", test_labels))}
    return _spec("StanfordCars", root, dataset_dir, names, expected, split_file=split_file, image_dir=dataset_dir,
                 raw=raw, listed_images=True)


FLOWERS_NAMES = {"1": "pink primrose", "2": "hard-leaved pocket orchid", "3": "canterbury bells", "4": "sweet pea"}


@register_generator("OxfordFlowers")
def fake_oxford_flowers(root, per_class=8, with_split=True, seed=0):
    """oxford_flowers/jpg/image_%05d.jpg, imagelabels.mat (1-based labels, first appearing 3, 1, 4, 2),
    cat_to_name.json (+ the split JSON)."""
    from scipy.io import savemat

    dataset_dir = os.path.join(root, "oxford_flowers")
    image_dir = os.path.join(dataset_dir, "jpg")
    order = [3, 1, 4, 2]
    labels = [order[i % 4] for i in range(per_class * 4)]
    paint = _Painter(4, seed)
    for i, label in enumerate(labels):
        paint(os.path.join(image_dir, f"image_{i + 1:05d}.jpg"), label - 1)
    savemat(os.path.join(dataset_dir, "imagelabels.mat"), {"labels": np.array([labels], dtype=np.uint8)})
    with open(os.path.join(dataset_dir, "cat_to_name.json"), "w") as f:
        json.dump(FLOWERS_NAMES, f)
    names = [FLOWERS_NAMES[str(i)] for i in range(1, 5)]
    split_file, expected = "", {}
    if with_split:
        groups = [(y - 1, FLOWERS_NAMES[str(y)], [f"image_{i + 1:05d}.jpg" for i, l in enumerate(labels) if l == y])
                  for y in order]
        split_file, expected = _write_split(dataset_dir, "split_zhou_OxfordFlowers.json",
                                            _split_from_groups(groups, seed), image_dir)
    raw = {"images": [(os.path.join(image_dir, f"image_{i + 1:05d}.jpg"), y - 1, FLOWERS_NAMES[str(y)])
                      for i, y in enumerate(labels)]}
    return _spec("OxfordFlowers", root, dataset_dir, names, expected, split_file=split_file, image_dir=image_dir,
                 raw=raw, listed_images=True)


def _folder_dataset(name, root, folder, image_folder, split_file, classes, per_class, with_split, seed,
                    new_cnames=None, image_name="{cls}_{j:04d}.jpg", extra_folders=()):
    """<folder>/<image_folder>/<class>/<image> for the folder-per-class datasets (+ the split JSON)."""
    dataset_dir = os.path.join(root, folder)
    image_dir = os.path.join(dataset_dir, image_folder)
    every = sorted(list(classes) + list(extra_folders))
    paint = _Painter(len(every), seed)
    files = {}
    for i, cls in enumerate(every):
        files[cls] = [f"{cls}/" + image_name.format(cls=cls, j=j, i=i) for j in range(1, per_class + 1)]
        for rel in files[cls]:
            paint(os.path.join(image_dir, rel), i)
    ordered = sorted(classes)
    names = [(new_cnames or {}).get(c, c) for c in ordered]
    split_path, expected = "", {}
    if with_split:
        groups = [(label, names[label], files[c]) for label, c in enumerate(ordered)]
        split_path, expected = _write_split(dataset_dir, split_file, _split_from_groups(groups, seed), image_dir)
    return _spec(name, root, dataset_dir, names, expected, split_file=split_path, image_dir=image_dir)


@register_generator("Food101")
def fake_food101(root, per_class=8, with_split=True, seed=0):
    classes = ["apple_pie", "baby_back_ribs", "beef_carpaccio", "chicken_curry", "eggs_benedict"]
    spec = _folder_dataset("Food101", root, "food-101", "images", "split_zhou_Food101.json", classes, per_class,
                           with_split, seed, image_name="{j}{i}0561.jpg")
    os.makedirs(os.path.join(spec.dataset_dir, "meta"), exist_ok=True)  # present in the real tree, unused
    with open(os.path.join(spec.dataset_dir, "meta", "classes.txt"), "w") as f:
        f.write("\n".join(reversed(classes)) + "\n")
    return spec


@register_generator("DescribableTextures")
def fake_dtd(root, per_class=8, with_split=True, seed=0):
    classes = ["banded", "blotchy", "braided", "bubbly", "zigzagged"]
    return _folder_dataset("DescribableTextures", root, "dtd", "images", "split_zhou_DescribableTextures.json",
                           classes, per_class, with_split, seed, image_name="{cls}_{j:04d}.jpg")


EUROSAT_NEW_CNAMES = {
    "AnnualCrop": "Annual Crop Land", "Forest": "Forest", "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road", "Industrial": "Industrial Buildings", "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land", "Residential": "Residential Buildings", "River": "River",
    "SeaLake": "Sea or Lake"}


@register_generator("EuroSAT")
def fake_eurosat(root, per_class=5, with_split=True, seed=0):
    return _folder_dataset("EuroSAT", root, "eurosat", "2750", "split_zhou_EuroSAT.json", list(EUROSAT_NEW_CNAMES),
                           per_class, with_split, seed, new_cnames=EUROSAT_NEW_CNAMES, image_name="{cls}_{j}.jpg")


AIRCRAFT_VARIANTS = ["707-320", "727-200", "A300B4", "Cessna 172", "F-16A/B"]


@register_generator("FGVCAircraft")
def fake_fgvc_aircraft(root, per_split=(3, 2, 2), seed=0):
    """fgvc_aircraft/images/<7-digit id>.jpg, variants.txt, images_variant_{train,val,test}.txt (sorted by id,
    so labels appear interleaved). No split JSON: these lists are the split."""
    dataset_dir = os.path.join(root, "fgvc_aircraft")
    image_dir = os.path.join(dataset_dir, "images")
    paint = _Painter(len(AIRCRAFT_VARIANTS), seed)
    os.makedirs(image_dir, exist_ok=True)
    with open(os.path.join(dataset_dir, "variants.txt"), "w") as f:
        f.write("\n".join(AIRCRAFT_VARIANTS) + "\n")
    with open(os.path.join(dataset_dir, "families.txt"), "w") as f:  # present in the real tree, unused
        f.write("Boeing 707\n")
    rng = random.Random(seed)
    ids = rng.sample(range(10 ** 6, 10 ** 7), len(AIRCRAFT_VARIANTS) * sum(per_split))
    expected, k = {}, 0
    for split, n in zip(("train", "val", "test"), per_split):
        rows = []
        for label, variant in enumerate(AIRCRAFT_VARIANTS):
            for _ in range(n):
                image_id = f"{ids[k]:07d}"
                k += 1
                paint(os.path.join(image_dir, image_id + ".jpg"), label)
                rows.append((image_id, label, variant))
        rows.sort()
        with open(os.path.join(dataset_dir, f"images_variant_{split}.txt"), "w") as f:
            f.write("".join(f"{image_id} {variant}\n" for image_id, _, variant in rows))
        expected[split] = [(os.path.join(image_dir, image_id + ".jpg"), label, variant)
                           for image_id, label, variant in rows]
    return _spec("FGVCAircraft", root, dataset_dir, AIRCRAFT_VARIANTS, expected, image_dir=image_dir,
                 listed_images=True)


# ClassName.txt lines -> CoOp's names (first-letter segment dropped, the rest reversed).
SUN_CLASSES = [("/a/abbey", "abbey"), ("/a/apartment_building/outdoor", "outdoor apartment_building"),
               ("/b/bakery/shop", "shop bakery"), ("/s/shoe_shop", "shoe_shop"),
               ("/t/temple/east_asia", "east_asia temple")]


@register_generator("SUN397")
def fake_sun397(root, trainval_per_class=5, test_per_class=3, with_split=True, seed=0):
    """sun397/SUN397/<a/abbey>/sun_*.jpg, ClassName.txt, Training_01.txt, Testing_01.txt (+ the split JSON)."""
    dataset_dir = os.path.join(root, "sun397")
    image_dir = os.path.join(dataset_dir, "SUN397")
    paint = _Painter(len(SUN_CLASSES), seed)
    lists = {"Training_01.txt": [], "Testing_01.txt": []}
    files = {}
    for label, (line, _) in enumerate(SUN_CLASSES):
        files[label] = []
        for j in range(trainval_per_class + test_per_class):
            rel = f"{line[1:]}/sun_{'abcdefgh'[label]}{j:03d}x.jpg"
            paint(os.path.join(image_dir, rel), label)
            lists["Training_01.txt" if j < trainval_per_class else "Testing_01.txt"].append("/" + rel)
            files[label].append(rel)
    with open(os.path.join(dataset_dir, "ClassName.txt"), "w") as f:
        f.write("".join(line + "\n" for line, _ in SUN_CLASSES))
    for filename, lines in lists.items():
        with open(os.path.join(dataset_dir, filename), "w") as f:
            f.write("\n".join(lines) + "\n")
    names = [name for _, name in SUN_CLASSES]
    label_of = {line[1:]: i for i, (line, _) in enumerate(SUN_CLASSES)}
    split_file, expected = "", {}
    if with_split:
        split = _trainval_test_split(files, names, trainval_per_class, random.Random(seed))
        split_file, expected = _write_split(dataset_dir, "split_zhou_SUN397.json", split, image_dir)
    raw = {key: [(os.path.join(image_dir, line[1:]), label_of[os.path.dirname(line[1:])],
                  names[label_of[os.path.dirname(line[1:])]]) for line in lists[filename]]
           for key, filename in (("trainval", "Training_01.txt"), ("test", "Testing_01.txt"))}
    return _spec("SUN397", root, dataset_dir, names, expected, split_file=split_file, image_dir=image_dir, raw=raw,
                 listed_images=True)


# classInd.txt actions -> CoOp's names (CamelCase split, joined by "_"); video-file stem (HandstandPushups'
# videos are named v_HandStandPushups_*, as in the real dataset).
UCF_CLASSES = [("ApplyEyeMakeup", "Apply_Eye_Makeup", "ApplyEyeMakeup"),
               ("Archery", "Archery", "Archery"),
               ("HandstandPushups", "Handstand_Pushups", "HandStandPushups"),
               ("PlayingDaf", "Playing_Daf", "PlayingDaf"),
               ("YoYo", "Yo_Yo", "YoYo")]


@register_generator("UCF101")
def fake_ucf101(root, trainval_per_class=5, test_per_class=3, with_split=True, seed=0):
    """ucf101/UCF-101-midframes/<Renamed>/<video>.jpg, ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt."""
    dataset_dir = os.path.join(root, "ucf101")
    image_dir = os.path.join(dataset_dir, "UCF-101-midframes")
    list_dir = os.path.join(dataset_dir, "ucfTrainTestlist")
    os.makedirs(list_dir, exist_ok=True)
    paint = _Painter(len(UCF_CLASSES), seed)
    trainlist, testlist, files = [], [], {}
    for label, (action, renamed, stem) in enumerate(UCF_CLASSES):
        files[label] = []
        for j in range(trainval_per_class + test_per_class):
            video = f"v_{stem}_g{j + 1:02d}_c01.avi"
            paint(os.path.join(image_dir, renamed, video.replace(".avi", ".jpg")), label)
            files[label].append(f"{renamed}/{video.replace('.avi', '.jpg')}")
            if j < trainval_per_class:
                trainlist.append(f"{action}/{video} {label + 1}")
            else:
                testlist.append(f"{action}/{video}")
    with open(os.path.join(list_dir, "classInd.txt"), "w") as f:
        f.write("".join(f"{i + 1} {action}\n" for i, (action, _, _) in enumerate(UCF_CLASSES)))
    for filename, lines in (("trainlist01.txt", trainlist), ("testlist01.txt", testlist)):
        with open(os.path.join(list_dir, filename), "w") as f:
            f.write("\r\n".join(lines) + "\r\n")  # the real lists have Windows line ends
    names = [renamed for _, renamed, _ in UCF_CLASSES]
    split_file, expected = "", {}
    if with_split:
        split = _trainval_test_split(files, names, trainval_per_class, random.Random(seed))
        split_file, expected = _write_split(dataset_dir, "split_zhou_UCF101.json", split, image_dir)
    frames = {action: (label, renamed) for label, (action, renamed, _) in enumerate(UCF_CLASSES)}
    raw = {key: [(os.path.join(image_dir, frames[v.split("/")[0]][1], v.split(" ")[0].split("/")[1][:-4] + ".jpg"),
                  frames[v.split("/")[0]][0], frames[v.split("/")[0]][1]) for v in lines]
           for key, lines in (("trainval", trainlist), ("test", testlist))}
    return _spec("UCF101", root, dataset_dir, names, expected, split_file=split_file, image_dir=image_dir, raw=raw,
                 listed_images=True)


# ----------------------------------------------------------------------------------------------------
# ImageNet and its test-only variants
# ----------------------------------------------------------------------------------------------------

# classnames.txt (wnid, name): written in this (unsorted) order; labels follow the sorted wnid folders.
IMAGENET_CLASSES = [("n02085620", "Chihuahua"), ("n01440764", "tench"), ("n04376876", "syringe"),
                    ("n01484850", "great white shark"), ("n01443537", "goldfish"), ("n02086240", "Shih-Tzu"),
                    ("n03000134", "chain-link fence"), ("n02988304", "CD player")]


def _write_classnames(dataset_dir, classes=IMAGENET_CLASSES):
    os.makedirs(dataset_dir, exist_ok=True)
    with open(os.path.join(dataset_dir, "classnames.txt"), "w") as f:
        f.write("".join(f"{wnid} {name}\n" for wnid, name in classes))


def _wnid_tree(image_dir, wnids, per_class, paint, pattern):
    """image_dir/<wnid>/<files>; returns the expected (path, label, name) list (sorted wnids and files)."""
    names = dict(IMAGENET_CLASSES)
    items = []
    for label, wnid in enumerate(sorted(wnids)):
        files = sorted(pattern.format(wnid=wnid, j=j) for j in range(per_class))
        for f in files:
            paint(os.path.join(image_dir, wnid, f), label)
            items.append((os.path.join(image_dir, wnid, f), label, names[wnid]))
    return items


@register_generator("ImageNet")
def fake_imagenet(root, wnids=None, train_per_class=6, val_per_class=3, seed=0):
    """imagenet/images/{train,val}/<wnid>/*.JPEG and classnames.txt (more lines than folders, unsorted)."""
    wnids = wnids or [w for w, _ in IMAGENET_CLASSES[:6]]
    dataset_dir = os.path.join(root, "imagenet")
    _write_classnames(dataset_dir)
    paint = _Painter(len(wnids), seed)
    train = _wnid_tree(os.path.join(dataset_dir, "images", "train"), wnids, train_per_class, paint,
                       "{wnid}_{j}0026.JPEG")
    test = _wnid_tree(os.path.join(dataset_dir, "images", "val"), wnids, val_per_class, paint,
                      "ILSVRC2012_val_{j}{wnid}.JPEG")
    names = dict(IMAGENET_CLASSES)
    return _spec("ImageNet", root, dataset_dir, [names[w] for w in sorted(wnids)],
                 {"train": train, "val": test, "test": test}, image_dir=os.path.join(dataset_dir, "images"))


@register_generator("ImageNetV2")
def fake_imagenetv2(root, per_class=2, seed=0):
    """imagenetv2/imagenetv2-matched-frequency-format-val/<0..N-1>/*.jpeg, N = the lines of classnames.txt
    (8 here; with 1000 lines, folders 0..999). Folder i is class i, whatever the sort order of "10" vs "2"."""
    classes = IMAGENET_CLASSES + [(f"n0999{i:04d}", f"extra class {i}") for i in range(4)]  # 12 lines
    dataset_dir = os.path.join(root, "imagenetv2")
    image_dir = os.path.join(dataset_dir, "imagenetv2-matched-frequency-format-val")
    _write_classnames(dataset_dir, classes)
    paint = _Painter(len(classes), seed)
    items = []
    for label, (_, name) in enumerate(classes):
        for f in sorted(f"{label:x}{j}e2b4c.jpeg" for j in range(per_class)):
            items.append((paint(os.path.join(image_dir, str(label), f), label), label, name))
    return _spec("ImageNetV2", root, dataset_dir, [n for _, n in classes], {"train": items, "val": None, "test": items},
                 test_only=True, image_dir=image_dir)


def _variant(name, root, folder, image_folder, wnids, per_class, seed, readme=False):
    dataset_dir = os.path.join(root, folder)
    image_dir = os.path.join(dataset_dir, image_folder)
    _write_classnames(dataset_dir)
    items = _wnid_tree(image_dir, wnids, per_class, _Painter(len(wnids), seed), "{wnid}_{j}.JPEG")
    if readme:
        with open(os.path.join(image_dir, "README.txt"), "w") as f:
            f.write("not a class\n")
    names = dict(IMAGENET_CLASSES)
    return _spec(name, root, dataset_dir, [names[w] for w in sorted(wnids)],
                 {"train": items, "val": None, "test": items}, test_only=True, image_dir=image_dir)


@register_generator("ImageNetSketch")
def fake_imagenet_sketch(root, per_class=2, seed=0):
    wnids = [w for w, _ in IMAGENET_CLASSES[:5]]
    return _variant("ImageNetSketch", root, "imagenet-sketch", "images", wnids, per_class, seed)


@register_generator("ImageNetA")
def fake_imagenet_a(root, per_class=2, seed=0):
    """A subset of the classes (like the real 200 of 1000), labels 0..n-1 by sorted wnid, plus README.txt."""
    wnids = ["n04376876", "n01484850", "n03000134", "n01443537"]
    return _variant("ImageNetA", root, "imagenet-adversarial", "imagenet-a", wnids, per_class, seed, readme=True)


@register_generator("ImageNetR")
def fake_imagenet_r(root, per_class=2, seed=0):
    wnids = ["n02085620", "n01440764", "n02086240", "n02988304", "n01443537"]
    return _variant("ImageNetR", root, "imagenet-rendition", "imagenet-r", wnids, per_class, seed, readme=True)


# ----------------------------------------------------------------------------------------------------
# Users' own data
# ----------------------------------------------------------------------------------------------------

CUSTOM_CLASSES = ["bolt", "nut", "screw", "washer", "wing_nut"]


@register_generator("CustomDataset")
def fake_custom(root, layout="splits", folder="my_parts", per_split=(4, 2, 3), seed=0):
    """Users' own data under <root>/<folder>, in one of the layouts CustomDataset reads:

    "splits": train/<class>/, val/<class>/, test/<class>/ image folders;
    "csv": images/<class>_<n>.jpg and labels.csv ("path,label,classname" with a header, integer labels);
    "pool": <class>/ folders only (expected lists left empty: the split is generated).
    """
    dataset_dir = os.path.join(root, folder)
    paint = _Painter(len(CUSTOM_CLASSES), seed)
    expected = {"train": [], "val": [], "test": []}
    opts = {"DATASET.CUSTOM.DIR": folder}
    if layout == "splits":
        for split, n in zip(("train", "val", "test"), per_split):
            for label, cls in enumerate(CUSTOM_CLASSES):
                for j in range(n):
                    path = paint(os.path.join(dataset_dir, split, cls, f"IMG_{j:03d}.jpg"), label)
                    expected[split].append((path, label, cls))
        with open(os.path.join(dataset_dir, "train", "notes.txt"), "w") as f:  # not an image: skipped
            f.write("collected in 2024\n")
    elif layout == "csv":
        rows = []
        for split, n in zip(("train", "val", "test"), per_split):
            for label, cls in enumerate(CUSTOM_CLASSES):
                for j in range(n):
                    rel = f"images/{split}_{cls}_{j}.jpg"
                    path = paint(os.path.join(dataset_dir, rel), label)
                    rows.append((split, rel, label, cls))
                    expected[split].append((path, label, cls.replace("_", " ")))
        for split in ("train", "val", "test"):
            with open(os.path.join(dataset_dir, f"{split}.csv"), "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["path", "label", "classname"])
                writer.writerows([rel, label, cls.replace("_", " ")] for s, rel, label, cls in rows if s == split)
        opts["DATASET.CUSTOM.CSV"] = "{split}.csv"
    elif layout == "pool":
        for label, cls in enumerate(CUSTOM_CLASSES):
            for j in range(sum(per_split)):
                paint(os.path.join(dataset_dir, cls, f"{cls}{j}.JPG" if j % 2 else f"{cls}{j}.jpg"), label)
        expected = {}
    else:
        raise ValueError(f"layout must be 'splits', 'csv' or 'pool', got {layout!r}")
    names = CUSTOM_CLASSES if layout != "csv" else [c.replace("_", " ") for c in CUSTOM_CLASSES]
    return _spec("CustomDataset", root, dataset_dir, names, expected, opts=opts, image_dir=dataset_dir,
                 listed_images=layout == "csv")
