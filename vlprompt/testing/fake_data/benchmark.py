"""The 11 base-to-new datasets, each in its reader's exact layout and class-name rules."""
import json
import os
import random

import numpy as np

from .images import make_caltech101
from .common import _Painter, _spec, _split_from_groups, _trainval_test_split, _write_split, register_generator


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
