"""dassl.data.datasets: Datum, DatasetBase (with Dassl's exact few-shot sampling) and the registry."""
import os
import os.path as osp
import random
import tarfile
import zipfile
from collections import defaultdict

from .registry import Registry, check_availability

DATASET_REGISTRY = Registry("DATASET")


def build_dataset(cfg):
    available = DATASET_REGISTRY.registered_names()
    check_availability(cfg.DATASET.NAME, available)
    if cfg.VERBOSE:
        print(f"Loading dataset: {cfg.DATASET.NAME}")
    return DATASET_REGISTRY.get(cfg.DATASET.NAME)(cfg)


class Datum:
    """One sample: image path, label, domain and class name.

    The attribute names match Dassl's, so pickled Datum objects (few-shot caches) are interchangeable
    between the two engines (see vlprompt.data.fewshot).
    """

    def __init__(self, impath="", label=0, domain=0, classname=""):
        if not isinstance(impath, str):
            raise TypeError(f"Datum impath must be a str, got {type(impath).__name__}: {impath!r}")
        if not osp.isfile(impath):
            raise FileNotFoundError(f"Image file not found: {impath}")
        self._impath = impath
        self._label = label
        self._domain = domain
        self._classname = classname

    @property
    def impath(self):
        return self._impath

    @property
    def label(self):
        return self._label

    @property
    def domain(self):
        return self._domain

    @property
    def classname(self):
        return self._classname

    def __repr__(self):
        return f"Datum(impath={self._impath!r}, label={self._label}, domain={self._domain}, classname={self._classname!r})"


class DatasetBase:
    """Container of train_x / train_u / val / test lists of Datum."""

    dataset_dir = ""
    domains = []

    def __init__(self, train_x=None, train_u=None, val=None, test=None):
        self._train_x = train_x
        self._train_u = train_u
        self._val = val
        self._test = test
        self._num_classes = self.get_num_classes(train_x)
        self._lab2cname, self._classnames = self.get_lab2cname(train_x)

    @property
    def train_x(self):
        return self._train_x

    @property
    def train_u(self):
        return self._train_u

    @property
    def val(self):
        return self._val

    @property
    def test(self):
        return self._test

    @property
    def lab2cname(self):
        return self._lab2cname

    @property
    def classnames(self):
        return self._classnames

    @property
    def num_classes(self):
        return self._num_classes

    @staticmethod
    def get_num_classes(data_source):
        """max label + 1 (not the number of distinct labels), as in Dassl."""
        return max(item.label for item in data_source) + 1

    @staticmethod
    def get_lab2cname(data_source):
        mapping = {item.label: item.classname for item in data_source}
        labels = sorted(mapping)
        return mapping, [mapping[label] for label in labels]

    def check_input_domains(self, source_domains, target_domains):
        self.is_input_domain_valid(source_domains)
        self.is_input_domain_valid(target_domains)

    def is_input_domain_valid(self, input_domains):
        for domain in input_domains:
            if domain not in self.domains:
                raise ValueError(f"Input domain must belong to {self.domains}, but got [{domain}]")

    def download_data(self, url, dst, from_gdrive=True):
        if not osp.exists(osp.dirname(dst)):
            os.makedirs(osp.dirname(dst))
        if from_gdrive:
            import gdown

            gdown.download(url, dst, quiet=False)
        else:
            raise NotImplementedError
        print("Extracting file ...")
        if dst.endswith(".zip"):
            with zipfile.ZipFile(dst, "r") as zf:
                zf.extractall(osp.dirname(dst))
        elif dst.endswith(".tar"):
            with tarfile.open(dst, "r:") as tf:
                tf.extractall(osp.dirname(dst))
        elif dst.endswith(".tar.gz"):
            with tarfile.open(dst, "r:gz") as tf:
                tf.extractall(osp.dirname(dst))
        else:
            raise NotImplementedError
        print("File extracted to {}".format(osp.dirname(dst)))

    def generate_fewshot_dataset(self, *data_sources, num_shots=-1, repeat=False):
        """Per label (in first-appearance order) draw `num_shots` items with Python's global `random`.

        Labels with fewer items keep all of them (or draw with replacement if `repeat`). The RNG calls
        are exactly Dassl's, so a given seed selects the same images.
        """
        if num_shots < 1:
            if len(data_sources) == 1:
                return data_sources[0]
            return data_sources
        print(f"Creating a {num_shots}-shot dataset")
        output = []
        for data_source in data_sources:
            tracker = self.split_dataset_by_label(data_source)
            dataset = []
            for label, items in tracker.items():
                if len(items) >= num_shots:
                    sampled = random.sample(items, num_shots)
                elif repeat:
                    sampled = random.choices(items, k=num_shots)
                else:
                    sampled = items
                dataset.extend(sampled)
            output.append(dataset)
        if len(output) == 1:
            return output[0]
        return output

    @staticmethod
    def split_dataset_by_label(data_source):
        output = defaultdict(list)
        for item in data_source:
            output[item.label].append(item)
        return output

    @staticmethod
    def split_dataset_by_domain(data_source):
        output = defaultdict(list)
        for item in data_source:
            output[item.domain].append(item)
        return output
