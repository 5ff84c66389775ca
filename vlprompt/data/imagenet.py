"""What the ImageNet readers share: classnames.txt, wnid-folder listings, and ImageNet's preprocessed.pkl.

preprocessed.pkl keeps the original format ({"train": [Datum], "test": [Datum]}, absolute paths, Datum
pickled as Dassl's class, via vlprompt.data.fewshot's pickling helpers), so the originals' file loads
here and ours there. Ours adds a "vlprompt" entry (dataset folder, classnames.txt digest, wnid folders).
Either is used only if it fits the data at hand:
- every item lies under images/train/ (train) or images/val/ (test) of this dataset folder, in a wnid
  folder whose position in the current sorted folder list is the item's label, with the class name that
  classnames.txt gives that wnid;
- ours also records the folder lists and classnames.txt digest, which must match.
Otherwise it is rebuilt from the folders (moving the data root, or editing classnames.txt, rebuilds it).
Adding or removing images inside existing class folders is not detected: delete the file then.
"""
import hashlib
import os
from collections import OrderedDict

from .errors import DatasetFormatError, DatasetLayoutError
from .fewshot import dump_datums, load_datums
from .splits import list_class_folders, list_images, make_datums

PREPROCESSED_FORMAT = 1


def read_classnames(path):
    """classnames.txt -> OrderedDict wnid -> class name (lines 'n01440764 tench'; names may contain spaces)."""
    if not os.path.isfile(path):
        raise DatasetLayoutError(f"class-name file not found: {path}", path=path)
    classnames = OrderedDict()
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.strip().split(" ")
            if fields == [""]:
                continue
            classnames[fields[0]] = " ".join(fields[1:])
    return classnames


def file_digest(path):
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def folder_items(image_dir, folders, classnames, classnames_file):
    """(path, label, class name) for every image of each folder, label = the folder's index in `folders`."""
    from vlprompt.progress import progress

    entries = []
    for label, folder in enumerate(progress(folders, desc=f"indexing {os.path.basename(image_dir)}", unit="class",
                                            min_items=100)):
        if folder not in classnames:
            raise DatasetFormatError(f"{classnames_file} has no line for the folder {folder} "
                                     f"(in {image_dir}); it must name every class folder", path=classnames_file)
        folder_dir = os.path.join(image_dir, folder)
        classname = classnames[folder]
        entries.extend((os.path.join(folder_dir, im), label, classname) for im in list_images(folder_dir))
    return entries


def _fits(items, split_dir, folders, classnames):
    """Each item is <split_dir>/<folder>/<file> with label = index of folder and its classnames.txt name."""
    prefix = split_dir + os.sep
    index = {folder: i for i, folder in enumerate(folders)}
    for item in items:
        impath = item.impath
        if not impath.startswith(prefix):
            return False
        folder = impath[len(prefix):].split(os.sep, 1)[0]
        if index.get(folder) != item.label or classnames.get(folder) != item.classname:
            return False
    return True


def load_preprocessed(path, dataset_dir, split_dirs, folders, classnames, classnames_file):
    """{"train": [...], "test": [...]} from preprocessed.pkl if it fits (see the module doc), else None."""
    if not os.path.exists(path):
        return None
    try:
        data = load_datums(path)
        cached = {key: list(data[key]) for key in ("train", "test")}
    except Exception as e:
        print(f"Ignoring unreadable {path} ({type(e).__name__}: {e}); rebuilding it")
        return None
    meta = data.get("vlprompt")
    if meta is not None and (meta.get("format") != PREPROCESSED_FORMAT
                             or meta.get("dataset_dir") != os.path.abspath(dataset_dir)
                             or meta.get("classnames_sha1") != file_digest(classnames_file)
                             or meta.get("folders") != folders):
        print(f"{path} was made from other data (data root, class folders or classnames.txt differ); rebuilding it")
        return None
    for key in ("train", "test"):
        if not _fits(cached[key], split_dirs[key], folders[key], classnames):
            print(f"{path} does not match this data root, its class folders or classnames.txt; rebuilding it")
            return None
    print(f"Loading preprocessed ImageNet lists from {path}")
    return cached


def save_preprocessed(path, train, test, dataset_dir, folders, classnames_file):
    data = {"train": train, "test": test,
            "vlprompt": {"format": PREPROCESSED_FORMAT, "dataset_dir": os.path.abspath(dataset_dir),
                         "classnames_sha1": file_digest(classnames_file), "folders": folders}}
    try:
        dump_datums(data, path)
        print(f"Saved preprocessed ImageNet lists to {path}")
    except OSError as e:  # a read-only data root: the lists are still right
        print(f"Note: could not write {path} ({e}); continuing without it")


def read_wnid_folders(image_dir, classnames, classnames_file, ignored=()):
    """Test-only variants: sorted wnid folders -> labels 0..n-1, names from classnames.txt."""
    folders = list_class_folders(image_dir, ignored)
    return make_datums(folder_items(image_dir, folders, classnames, classnames_file), image_dir)


class WnidFolderTestSet:
    """Mixin for the ImageNet variants read from wnid folders (Sketch, -A, -R): labels by sorted wnid
    folder, names from the variant's copy of classnames.txt; files listed in `ignored` are skipped."""

    ignored = ()

    def read_data(self):
        classnames_file = self.require(os.path.join(self.dataset_dir, "classnames.txt"), "class-name file")
        return read_wnid_folders(self.image_dir, read_classnames(classnames_file), classnames_file, self.ignored)
