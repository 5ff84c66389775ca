"""What each standard dataset needs on disk, where every file comes from, and its published sizes.

The one table behind the data checker (`vlprompt data check`), the download helper
(`vlprompt data download`) and the hints in the readers' error messages. Sizes are those published
in the CoOp paper (reference §B.7.5); the test-only ImageNet variants' sizes are those of their own
releases. Base/new class counts follow from ceil(n/2).

Each `Entry` is a path inside the dataset folder with its role:
- "required": the reader always needs it;
- "split": CoOp's fixed split file; without it the reader generates a split (with Python's `random`)
  that differs from the published one, so few-shot subsets and numbers differ too;
- "fallback": only used to generate a split when the split file is absent.
"""
import math
from dataclasses import dataclass, field

GDRIVE_VIEW = "https://drive.google.com/file/d/{}/view"


@dataclass(frozen=True)
class Resource:
    """A file to fetch: a direct URL or a Google Drive id (fetched with gdown), and its MD5 when known."""

    filename: str
    url: str = ""
    gdrive_id: str = ""
    md5: str = ""

    @property
    def where(self):
        return self.url or GDRIVE_VIEW.format(self.gdrive_id)

    @property
    def is_archive(self):
        return self.filename.endswith((".zip", ".tar", ".tar.gz", ".tgz"))


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the dataset folder
    role: str  # "required", "split" or "fallback"
    what: str  # shown to the user
    resource: Resource = None  # None: must be fetched by hand (see `manual`)
    extract: tuple = ()  # archive member(s) that become `path`; a chain through nested archives
    copy_from: str = ""  # a file under the data root to copy instead of downloading (if present)
    manual: str = ""  # what to fetch by hand when it cannot be downloaded automatically


@dataclass(frozen=True)
class DatasetInfo:
    name: str  # registry name
    folder: str  # under the data root
    classes: int
    sizes: tuple  # published (train, val, test) image counts; None where there is none
    entries: tuple = field(default_factory=tuple)
    test_only: bool = False
    note: str = ""

    @property
    def base(self):
        return math.ceil(self.classes / 2)

    @property
    def new(self):
        return self.classes - self.base

    def entry(self, path):
        for e in self.entries:
            if e.path == path:
                return e
        return None


def _gdrive(filename, file_id):
    return Resource(filename, gdrive_id=file_id)


def _split(name, file_id):
    filename = f"split_zhou_{name}.json"
    return Entry(filename, "split", f"CoOp's fixed split ({filename})", _gdrive(filename, file_id))


IMAGENET_CLASSNAMES = _gdrive("classnames.txt", "1-61f_ol79pViBFDG_IDlUQSwoLcn2XXF")


def _variant_classnames():
    return Entry("classnames.txt", "required", "ImageNet class names (a copy of imagenet/classnames.txt)",
                 IMAGENET_CLASSNAMES, copy_from="imagenet/classnames.txt")


_PETS_IMAGES = Resource("images.tar.gz", "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
                        md5="5c4f3ee8e5d25df40f4fd59a7f44e54c")
_PETS_ANNOTATIONS = Resource("annotations.tar.gz",
                             "https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",
                             md5="95a8c909bbe2e81eed6a22bccdf3f68f")
_CARS_MANUAL = ("The original Stanford Cars site (ai.stanford.edu/~jkrause/cars) is offline and the files cannot "
                "be downloaded automatically. Get {} from a copy of the dataset (e.g. the Stanford Cars copy on "
                "Kaggle) and put it at {}.")
_AIRCRAFT = Resource("fgvc-aircraft-2013b.tar.gz",
                     "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz")
_UCF_SPLITS = Resource("UCF101TrainTestSplits-RecognitionTask.zip",
                       "https://www.crcv.ucf.edu/data/UCF101/UCF101TrainTestSplits-RecognitionTask.zip")
_SUN_PARTITIONS = Resource("Partitions.zip", "https://vision.princeton.edu/projects/2010/SUN/download/Partitions.zip")

DATASETS = (
    DatasetInfo(
        "ImageNet", "imagenet", 1000, (1281167, None, 50000), note="The validation set is the test set (and val).",
        entries=(
            Entry("images/train", "required", "ILSVRC-2012 training images, one folder per wnid (n01440764/, ...)",
                  manual="ImageNet's licence does not allow automatic downloads. Download ILSVRC2012_img_train.tar "
                  "from https://image-net.org (after accepting the terms) and extract it so that every wnid has its "
                  "own folder: {dest}/n01440764/*.JPEG, ..."),
            Entry("images/val", "required", "ILSVRC-2012 validation images, sorted into one folder per wnid",
                  manual="Download ILSVRC2012_img_val.tar from https://image-net.org and sort its 50,000 images into "
                  "one folder per wnid, like train/ (e.g. with the widely used valprep.sh): {dest}/n01440764/*.JPEG"),
            Entry("classnames.txt", "required", "class names, lines 'n01440764 tench'", IMAGENET_CLASSNAMES),
        )),
    DatasetInfo(
        "Caltech101", "caltech-101", 100, (4128, 1649, 2465),
        entries=(
            Entry("101_ObjectCategories", "required", "images, one folder per category",
                  Resource("caltech-101.zip", "https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip",
                           md5="3138e1922a9193bfa496528edbbc45d0"),
                  extract=("101_ObjectCategories.tar.gz", "101_ObjectCategories")),
            _split("Caltech101", "1hyarUivQE36mY6jSomru6Fjd-JzwcCzN"),
        )),
    DatasetInfo(
        "OxfordPets", "oxford_pets", 37, (2944, 736, 3669),
        entries=(
            Entry("images", "required", "images (Abyssinian_1.jpg, ...)", _PETS_IMAGES, extract=("images",)),
            Entry("annotations/trainval.txt", "fallback", "train+val list", _PETS_ANNOTATIONS,
                  extract=("annotations/trainval.txt",)),
            Entry("annotations/test.txt", "fallback", "test list", _PETS_ANNOTATIONS,
                  extract=("annotations/test.txt",)),
            _split("OxfordPets", "1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs"),
        )),
    DatasetInfo(
        "StanfordCars", "stanford_cars", 196, (6509, 1635, 8041),
        entries=(
            Entry("cars_train", "required", "training images (00001.jpg, ...)",
                  manual=_CARS_MANUAL.format("cars_train.tgz", "{dest} (extracted)")),
            Entry("cars_test", "required", "test images (00001.jpg, ...)",
                  manual=_CARS_MANUAL.format("cars_test.tgz", "{dest} (extracted)")),
            Entry("devkit/cars_train_annos.mat", "fallback", "training labels",
                  manual=_CARS_MANUAL.format("car_devkit.tgz", "{dest} (extracted from it)")),
            Entry("devkit/cars_meta.mat", "fallback", "class names",
                  manual=_CARS_MANUAL.format("car_devkit.tgz", "{dest} (extracted from it)")),
            Entry("cars_test_annos_withlabels.mat", "fallback", "test labels",
                  manual=_CARS_MANUAL.format("cars_test_annos_withlabels.mat", "{dest}")),
            _split("StanfordCars", "1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT"),
        )),
    DatasetInfo(
        "OxfordFlowers", "oxford_flowers", 102, (4093, 1633, 2463),
        entries=(
            Entry("jpg", "required", "images (image_00001.jpg, ...)",
                  Resource("102flowers.tgz", "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz",
                           md5="52808999861908f626f3c1f4e79d11fa"), extract=("jpg",)),
            Entry("imagelabels.mat", "fallback", "image labels",
                  Resource("imagelabels.mat", "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/imagelabels.mat",
                           md5="e0620be6f572b9609742df49c70aed4d")),
            Entry("cat_to_name.json", "fallback", "class names ({'1': 'pink primrose', ...})",
                  _gdrive("cat_to_name.json", "1AkcxCXeK_RCGCEC_GvmWxjcjaNhu-at0")),
            _split("OxfordFlowers", "1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT"),
        )),
    DatasetInfo(
        "Food101", "food-101", 101, (50500, 20200, 30300),
        entries=(
            Entry("images", "required", "images, one folder per dish (apple_pie/, ...)",
                  Resource("food-101.tar.gz", "http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz",
                           md5="85eeb15f3717b99a5da872d97d918f87"), extract=("food-101/images",)),
            _split("Food101", "1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl"),
        )),
    DatasetInfo(
        "FGVCAircraft", "fgvc_aircraft", 100, (3334, 3333, 3333),
        note="No split file: the dataset's own images_variant_{train,val,test}.txt are the split.",
        entries=tuple(
            Entry(path, "required", what, _AIRCRAFT, extract=(f"fgvc-aircraft-2013b/data/{path}",))
            for path, what in (("images", "images (<image id>.jpg)"), ("variants.txt", "the 100 variant names"),
                               ("images_variant_train.txt", "train list"), ("images_variant_val.txt", "val list"),
                               ("images_variant_test.txt", "test list")))),
    DatasetInfo(
        "SUN397", "sun397", 397, (15880, 3970, 19850),
        entries=(
            Entry("SUN397", "required", "images (SUN397/a/abbey/*.jpg, ...)",
                  Resource("SUN397.tar.gz", "http://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz",
                           md5="8ca2778205c41d23104230ba66911c7a"), extract=("SUN397",)),
            Entry("ClassName.txt", "fallback", "class list ('/a/abbey', ...)", _SUN_PARTITIONS,
                  extract=("ClassName.txt",)),
            Entry("Training_01.txt", "fallback", "partition 1, training images", _SUN_PARTITIONS,
                  extract=("Training_01.txt",)),
            Entry("Testing_01.txt", "fallback", "partition 1, test images", _SUN_PARTITIONS,
                  extract=("Testing_01.txt",)),
            _split("SUN397", "1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq"),
        )),
    DatasetInfo(
        "DescribableTextures", "dtd", 47, (2820, 1128, 1692),
        entries=(
            Entry("images", "required", "images, one folder per texture (banded/, ...)",
                  Resource("dtd-r1.0.1.tar.gz", "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz",
                           md5="fff73e5086ae6bdbea199a49dfb8a4c1"), extract=("dtd/images",)),
            _split("DescribableTextures", "1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x"),
        )),
    DatasetInfo(
        "EuroSAT", "eurosat", 10, (13500, 5400, 8100),
        entries=(
            Entry("2750", "required", "RGB images, one folder per class (AnnualCrop/, ...)",
                  Resource("EuroSAT.zip", "https://huggingface.co/datasets/torchgeo/eurosat/resolve/"
                           "c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip",
                           md5="c8fa014336c82ac7804f0398fcb19387"), extract=("2750",)),
            _split("EuroSAT", "1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o"),
        )),
    DatasetInfo(
        "UCF101", "ucf101", 101, (7639, 1898, 3783),
        entries=(
            Entry("UCF-101-midframes", "required", "the middle frame of every video (CoOp's UCF-101-midframes.zip)",
                  _gdrive("UCF-101-midframes.zip", "10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O"),
                  extract=("UCF-101-midframes",)),
            *(Entry(f"ucfTrainTestlist/{f}", "fallback", what, _UCF_SPLITS, extract=(f"ucfTrainTestlist/{f}",))
              for f, what in (("classInd.txt", "class index"), ("trainlist01.txt", "split 1, training videos"),
                              ("testlist01.txt", "split 1, test videos"))),
            _split("UCF101", "1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y"),
        )),
    DatasetInfo(
        "ImageNetV2", "imagenetv2", 1000, (None, None, 10000), test_only=True,
        entries=(
            Entry("imagenetv2-matched-frequency-format-val", "required",
                  "folders 0 ... 999 (the matched-frequency set)",
                  Resource("imagenetv2-matched-frequency.tar.gz", "https://huggingface.co/datasets/vaishaal/"
                           "ImageNetV2/resolve/main/imagenetv2-matched-frequency.tar.gz"),
                  extract=("imagenetv2-matched-frequency-format-val",)),
            _variant_classnames(),
        )),
    DatasetInfo(
        "ImageNetSketch", "imagenet-sketch", 1000, (None, None, 50889), test_only=True,
        entries=(
            Entry("images", "required", "sketches, one folder per wnid",
                  _gdrive("ImageNet-Sketch.zip", "1Mj0i5HBthqH1p_yeXzsg22gZduvgoNeA"), extract=("sketch",)),
            _variant_classnames(),
        )),
    DatasetInfo(
        "ImageNetA", "imagenet-adversarial", 200, (None, None, 7500), test_only=True,
        entries=(
            Entry("imagenet-a", "required", "200 wnid folders",
                  Resource("imagenet-a.tar", "https://people.eecs.berkeley.edu/~hendrycks/imagenet-a.tar"),
                  extract=("imagenet-a",)),
            _variant_classnames(),
        )),
    DatasetInfo(
        "ImageNetR", "imagenet-rendition", 200, (None, None, 30000), test_only=True,
        entries=(
            Entry("imagenet-r", "required", "200 wnid folders",
                  Resource("imagenet-r.tar", "https://people.eecs.berkeley.edu/~hendrycks/imagenet-r.tar"),
                  extract=("imagenet-r",)),
            _variant_classnames(),
        )),
)

CATALOG = {info.name: info for info in DATASETS}
STANDARD_NAMES = tuple(CATALOG)


def where_from(name, relpath):
    """'<what>; from <source>' for a path inside dataset `name`'s folder, or '' if the table has no entry."""
    info = CATALOG.get(name)
    if info is None:
        return ""
    parts = relpath.replace("\\", "/").split("/")
    for n in range(len(parts), 0, -1):  # the entry for the path itself or for the folder holding it
        entry = info.entry("/".join(parts[:n]))
        if entry is not None:
            return describe_source(info, entry)
    return ""


def describe_source(info, entry):
    if entry.resource is None:
        return f"{entry.what}; fetch by hand: {entry.manual.format(dest=info.folder + '/' + entry.path)}"
    source = entry.resource.where
    if entry.extract:
        source = f"{entry.resource.filename} ({source}), extract {' -> '.join(entry.extract)}"
    if entry.copy_from:
        source = f"copy {entry.copy_from}, or download {source}"
    return f"{entry.what}; from {source}"
