"""`FewShotDGDataset`: few-shot leave-one-domain-out domain generalization (MetaPrompt's protocol),
the base of the DG readers (datasets/pacs.py, vlcs.py, office_home.py, domainnet.py).

The protocol (MetaPrompt's PACSFS / VLCSFS / OfficeHomeFS / DomainNetFS readers, on Dassl's layouts):
- one or more target domains are held out: --target-domains X (DATASET.TARGET_DOMAINS), with the source
  domains given by --source-domains or by default all other domains in the canonical order; or
  DATASET.ID i >= 0 (the MetaPrompt code's key, which its dg.sh passes): target = domains[i], sources =
  all the others, whatever SOURCE_DOMAINS / TARGET_DOMAINS say (its configs/datasets/dg/*.yaml carry
  lists that disagree with most IDs; the original ignores them, and so does this reader, saying so);
- train = the source domains' training split, K shots per class *per source domain*; val = the source
  domains' validation split, min(K, 4) shots per class per domain (unused for model selection);
- test = the held-out domain, all of it (PACS, OfficeHome: train + val splits) or its test split (VLCS,
  DomainNet), every image;
- Datum.domain is the position of the image's domain in the source (or target) list, as in Dassl.

Few-shot picks use Python's global `random` exactly as the original: for each source domain in order,
for each label in first-appearance order within that domain, random.sample(items, K) (all items if
fewer); first the train list, then the val list. They are cached in
<dataset>/split_fewshot/<ID>_shot_<K>-seed_<S>.pkl (the original's name; ID is the target's index), in
the validated cache format of vlprompt.data.fewshot.
"""
import os

from vlprompt.engine import Datum

from .benchmark import BenchmarkDataset, data_root
from ..errors import ConfigValueError
from .errors import DatasetLayoutError, MissingImagesError
from .fewshot import fewshot_subsets


class FewShotDGDataset(BenchmarkDataset):
    """The DG protocol above on vlprompt's reader base (errors that show the layout, `read_full` for
    `vlprompt data check`). A reader sets the class attributes and `read_data(domains, split)`."""

    dataset_dir = ""  # Dassl's folder name under DATASET.ROOT
    dataset_dir_aliases = ()  # other names of that folder (those the MetaPrompt code uses), tried in order
    domains = []  # canonical order: DATASET.ID indexes it
    val_split = "val"  # split of the source domains used for validation
    test_split = "test"  # split of the target domain(s) used for testing ("all": every image)
    layout = ""  # the expected tree, shown in errors

    @classmethod
    def add_config(cls, cfg):
        if "ID" not in cfg.DATASET:
            cfg.DATASET.ID = -1  # >= 0: the target domain is domains[ID] (the MetaPrompt code's key)

    @classmethod
    def read_full(cls, cfg):
        """Every domain's train / val / test images as on disk (the data checker); nothing written."""
        self = cls.__new__(cls)
        self.save_files = False
        with self.explained_errors():
            self.cfg, self.root = cfg, data_root(cfg)
            self.dataset_dir = self.find_dataset_dir()
            every = list(cls.domains)
            return (self.read_data(every, "train"), self.read_data(every, self.val_split),
                    self.read_data(every, self.test_split))

    def setup(self, cfg):
        self.cfg = cfg
        self.root = data_root(cfg)
        self.dataset_dir = self.find_dataset_dir()
        self.split_fewshot_dir = os.path.join(self.dataset_dir, "split_fewshot")
        self.source_domains, self.target_domains = self.resolve_domains(cfg)
        print(f"{type(self).__name__}: source domains {self.source_domains}, target domain(s) {self.target_domains}")

    def read_splits(self):
        return (self.read_data(self.source_domains, "train"), self.read_data(self.source_domains, self.val_split),
                self.read_data(self.target_domains, self.test_split))

    def select(self, cfg, train, val, test):
        """K shots per class per source domain (val: min(K, 4)), through the cache; test untouched."""
        self.validate_config(cfg)
        train, val = self.fewshot_subsets(cfg, train, val)
        return train, val, test

    # ------------------------------------------------------------------------------------- domains
    @classmethod
    def validate_config(cls, cfg):
        """The domain choice and the subsample, checked before a run starts (vlprompt.validation)."""
        subsample = cfg.DATASET.get("SUBSAMPLE_CLASSES", "all")
        if subsample != "all":
            raise ConfigValueError(f"{cls.__name__} is a domain-generalization dataset: DATASET.SUBSAMPLE_CLASSES "
                                   f"must be 'all', got {subsample!r}")
        cls.domains_for(cfg, quiet=True)

    def resolve_domains(self, cfg):
        return self.domains_for(cfg)

    @classmethod
    def domains_for(cls, cfg, quiet=False):
        """(source domains, target domains) from DATASET.TARGET_DOMAINS / SOURCE_DOMAINS / ID."""
        name = cls.__name__
        targets = list(cfg.DATASET.TARGET_DOMAINS)
        sources = list(cfg.DATASET.SOURCE_DOMAINS)
        domain_id = cfg.DATASET.get("ID", -1)
        if not isinstance(domain_id, int) or isinstance(domain_id, bool) or domain_id < -1 \
                or domain_id >= len(cls.domains):
            raise ConfigValueError(f"DATASET.ID {domain_id!r} is not allowed: expected the index of {name}'s target "
                                   f"domain, {' '.join(f'{i}={d}' for i, d in enumerate(cls.domains))} (or -1: "
                                   "--target-domains decides)")
        if domain_id >= 0:
            # As the MetaPrompt code: the ID alone decides; the lists its YAMLs carry are not read.
            chosen = [cls.domains[domain_id]]
            others = [d for d in cls.domains if d not in chosen]
            if not quiet and ((targets and targets != chosen) or (sources and sources != others)):
                print(f"{name}: DATASET.ID {domain_id} selects target {chosen} and sources {others}; it overrides "
                      f"DATASET.TARGET_DOMAINS {targets} and SOURCE_DOMAINS {sources} (as the MetaPrompt code does)")
            return others, chosen
        if not targets:
            raise ConfigValueError(f"{name}: choose the held-out domain with --target-domains (one of "
                                   f"{' '.join(cls.domains)}) or DATASET.ID (its index)")
        for what, chosen in (("--target-domains / DATASET.TARGET_DOMAINS", targets),
                             ("--source-domains / DATASET.SOURCE_DOMAINS", sources)):
            unknown = [d for d in chosen if d not in cls.domains]
            if unknown:
                raise ConfigValueError(f"{what} {' '.join(unknown)} is not a domain of {name}: expected some of "
                                       f"{' '.join(cls.domains)}")
        if not sources:
            sources = [d for d in cls.domains if d not in targets]
        overlap = sorted(set(sources) & set(targets))
        if overlap:
            raise ConfigValueError(f"{name}: {' '.join(overlap)} is both a source and a target domain: hold out a "
                                   "domain that is not among the sources")
        if not sources:
            raise ConfigValueError(f"{name}: every domain is a target; leave at least one to train on")
        return sources, targets

    # ------------------------------------------------------------------------------------ few-shot
    def cache_name(self, num_shots, seed):
        default_sources = [d for d in self.domains if d not in self.target_domains]
        if len(self.target_domains) == 1 and self.source_domains == default_sources:
            tag = str(self.domains.index(self.target_domains[0]))  # the original's DATASET.ID
        else:
            tag = f"{'+'.join(self.source_domains)}_to_{'+'.join(self.target_domains)}"
        return f"{tag}_shot_{num_shots}-seed_{seed}.pkl"

    def fewshot_per_domain(self, items, num_shots):
        """K per label within each domain (domains, then labels, in first-appearance order)."""
        output = []
        for domain_items in self.split_dataset_by_domain(items).values():
            output.extend(self.generate_fewshot_dataset(domain_items, num_shots=num_shots))
        return output

    def fewshot_subsets(self, cfg, train, val):
        """K shots per class per source domain (val: min(K, 4)), through the shared validated cache."""
        num_shots = cfg.DATASET.NUM_SHOTS
        return fewshot_subsets(self, num_shots, cfg.SEED, self.split_fewshot_dir, train, val,
                               cache_name=self.cache_name(num_shots, cfg.SEED), sample=self.fewshot_per_domain)

    # --------------------------------------------------------------------------------------- files
    def read_data(self, domains, split):
        """[Datum] of `split` ("train", the val split, the test split or "all") for `domains`."""
        raise NotImplementedError

    def find_dataset_dir(self):
        names = (type(self).dataset_dir,) + tuple(self.dataset_dir_aliases)
        for name in names:
            path = os.path.join(self.root, name)
            if os.path.isdir(path):
                return path
        tried = " or ".join(os.path.join(self.root, n) for n in names)
        raise DatasetLayoutError(f"{type(self).__name__}: dataset folder not found: {tried}",
                                 path=os.path.join(self.root, names[0]))

    def read_image_list(self, path):
        """(relative path, label) per line of a "<path> <label>" split file."""
        items = []
        for number, line in enumerate(self.read_lines(path, "split file"), 1):
            parts = line.split(" ")
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise self.format_error(path, f"line {number}: expected '<image path> <label>', got {line!r}")
            items.append((parts[0], int(parts[1])))
        return items

    def datums(self, entries, source):
        """Datum per (image path, label, domain, class name), after checking that every image exists."""
        missing = [e[0] for e in entries if not os.path.isfile(e[0])]
        if missing:
            raise MissingImagesError(missing, len(entries), source)
        return [Datum(impath=p, label=label, domain=domain, classname=cname) for p, label, domain, cname in entries]

    def read_class_folders(self, directory):
        """(image path, label, folder) for <directory>/<class folder>/*.jpg; label = index of the folder
        among the sorted folders (Dassl's rule); images sorted by name (Dassl takes glob's order, which
        depends on the file system)."""
        self.require(directory, "image folder")
        folders = sorted(f for f in os.listdir(directory) if not f.startswith("."))
        items = []
        for label, folder in enumerate(folders):
            folder_dir = os.path.join(directory, folder)
            names = sorted(f for f in os.listdir(folder_dir) if f.endswith(".jpg") and not f.startswith("."))
            items.extend((os.path.join(folder_dir, name), label, folder) for name in names)
        return items
