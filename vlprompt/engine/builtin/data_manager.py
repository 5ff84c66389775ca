"""dassl.data: DataManager, DatasetWrapper and build_data_loader."""

import torch
import torchvision.transforms as T
from PIL import Image
from tabulate import tabulate
from torch.utils.data import Dataset as TorchDataset

from ...errors import ImageReadError
from ..loaders import fit_num_workers
from .datasets import build_dataset
from .samplers import build_sampler
from .transforms import INTERPOLATION_MODES, build_transform


def read_image(path):
    """Open an image as RGB; a missing or corrupt file raises a user error that names it (and the command that
    finds all such files), in a loader worker too."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise ImageReadError(f"Image file not found: {path}. `vlprompt data check` lists every missing or "
                             "unreadable image of a dataset") from None
    except Exception as e:  # noqa: BLE001 (PIL raises many kinds for a corrupt file)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ImageReadError(f"Cannot read image file {path} ({type(e).__name__}: {first}). `vlprompt data check "
                             "--images decode` lists every unreadable image of a dataset") from None


def build_data_loader(cfg, sampler_type="SequentialSampler", data_source=None, batch_size=64, n_domain=0,
                      n_ins=2, tfm=None, is_train=True, dataset_wrapper=None, persistent_workers=None):
    """Dassl's build_data_loader. Evaluation loaders get min(NUM_WORKERS, CPUs) workers, and a validation
    set evaluated every epoch keeps them (`persistent_workers`). Training loaders keep Dassl's behaviour:
    the configured number of workers, started afresh every epoch, because each worker draws the random
    augmentation of the images it loads from a stream seeded when the epoch starts: another number of
    workers, or workers that persist across epochs, would train another model than the original code (and
    a resumed run another model than an uninterrupted one)."""
    sampler = build_sampler(sampler_type, cfg=cfg, data_source=data_source, batch_size=batch_size,
                            n_domain=n_domain, n_ins=n_ins)
    if dataset_wrapper is None:
        dataset_wrapper = DatasetWrapper
    num_workers = cfg.DATALOADER.NUM_WORKERS if is_train else fit_num_workers(cfg.DATALOADER.NUM_WORKERS)
    if is_train:
        persistent_workers = False
    loader = torch.utils.data.DataLoader(
        dataset_wrapper(cfg, data_source, transform=tfm, is_train=is_train),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        # Since Dassl 2021-09: never drop the only (incomplete) batch of a tiny few-shot set.
        drop_last=is_train and len(data_source) >= batch_size,
        pin_memory=(torch.cuda.is_available() and cfg.USE_CUDA),
        persistent_workers=bool(persistent_workers) and num_workers > 0,
    )
    if len(loader) == 0:
        raise ValueError(
            f"The {'training' if is_train else 'evaluation'} data loader is empty "
            f"({len(data_source)} samples, batch size {batch_size})"
        )
    return loader


class DataManager:
    def __init__(self, cfg, custom_tfm_train=None, custom_tfm_test=None, dataset_wrapper=None):
        dataset = build_dataset(cfg)
        if custom_tfm_train is None:
            tfm_train = build_transform(cfg, is_train=True)
        else:
            print("* Using custom transform for training")
            tfm_train = custom_tfm_train
        if custom_tfm_test is None:
            tfm_test = build_transform(cfg, is_train=False)
        else:
            print("* Using custom transform for testing")
            tfm_test = custom_tfm_test

        self.train_loader_x = build_data_loader(
            cfg, sampler_type=cfg.DATALOADER.TRAIN_X.SAMPLER, data_source=dataset.train_x,
            batch_size=cfg.DATALOADER.TRAIN_X.BATCH_SIZE, n_domain=cfg.DATALOADER.TRAIN_X.N_DOMAIN,
            n_ins=cfg.DATALOADER.TRAIN_X.N_INS, tfm=tfm_train, is_train=True, dataset_wrapper=dataset_wrapper)

        self.train_loader_u = None
        if dataset.train_u:
            u = cfg.DATALOADER.TRAIN_U
            sampler_type, batch_size, n_domain, n_ins = u.SAMPLER, u.BATCH_SIZE, u.N_DOMAIN, u.N_INS
            if u.SAME_AS_X:
                x = cfg.DATALOADER.TRAIN_X
                sampler_type, batch_size, n_domain, n_ins = x.SAMPLER, x.BATCH_SIZE, x.N_DOMAIN, x.N_INS
            self.train_loader_u = build_data_loader(
                cfg, sampler_type=sampler_type, data_source=dataset.train_u, batch_size=batch_size,
                n_domain=n_domain, n_ins=n_ins, tfm=tfm_train, is_train=True, dataset_wrapper=dataset_wrapper)

        self.val_loader = None
        if dataset.val:
            self.val_loader = build_data_loader(
                cfg, sampler_type=cfg.DATALOADER.TEST.SAMPLER, data_source=dataset.val,
                batch_size=cfg.DATALOADER.TEST.BATCH_SIZE, tfm=tfm_test, is_train=False,
                dataset_wrapper=dataset_wrapper, persistent_workers=cfg.TEST.FINAL_MODEL == "best_val")

        self.test_loader = build_data_loader(
            cfg, sampler_type=cfg.DATALOADER.TEST.SAMPLER, data_source=dataset.test,
            batch_size=cfg.DATALOADER.TEST.BATCH_SIZE, tfm=tfm_test, is_train=False,
            dataset_wrapper=dataset_wrapper)

        self._num_classes = dataset.num_classes
        self._num_source_domains = len(cfg.DATASET.SOURCE_DOMAINS)
        self._lab2cname = dataset.lab2cname
        self.dataset = dataset
        self.tfm_train = tfm_train
        self.tfm_test = tfm_test
        if cfg.VERBOSE:
            self.show_dataset_summary(cfg)

    @property
    def num_classes(self):
        return self._num_classes

    @property
    def num_source_domains(self):
        return self._num_source_domains

    @property
    def lab2cname(self):
        return self._lab2cname

    def show_dataset_summary(self, cfg):
        table = [["Dataset", cfg.DATASET.NAME]]
        if cfg.DATASET.SOURCE_DOMAINS:
            table.append(["Source", cfg.DATASET.SOURCE_DOMAINS])
        if cfg.DATASET.TARGET_DOMAINS:
            table.append(["Target", cfg.DATASET.TARGET_DOMAINS])
        table.append(["# classes", f"{self.num_classes:,}"])
        table.append(["# train_x", f"{len(self.dataset.train_x):,}"])
        if self.dataset.train_u:
            table.append(["# train_u", f"{len(self.dataset.train_u):,}"])
        if self.dataset.val:
            table.append(["# val", f"{len(self.dataset.val):,}"])
        table.append(["# test", f"{len(self.dataset.test):,}"])
        print(tabulate(table))


class DatasetWrapper(TorchDataset):
    def __init__(self, cfg, data_source, transform=None, is_train=False):
        self.cfg = cfg
        self.data_source = data_source
        self.transform = transform
        self.is_train = is_train
        self.k_tfm = cfg.DATALOADER.K_TRANSFORMS if is_train else 1
        self.return_img0 = cfg.DATALOADER.RETURN_IMG0
        if self.k_tfm > 1 and transform is None:
            raise ValueError(f"Cannot augment the image {self.k_tfm} times because transform is None")
        interp = INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]
        to_tensor = [T.Resize(tuple(cfg.INPUT.SIZE), interpolation=interp), T.ToTensor()]
        if "normalize" in cfg.INPUT.TRANSFORMS:
            to_tensor.append(T.Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD))
        self.to_tensor = T.Compose(to_tensor)

    def __len__(self):
        return len(self.data_source)

    def __getitem__(self, idx):
        item = self.data_source[idx]
        output = {"label": item.label, "domain": item.domain, "impath": item.impath, "index": idx}
        img0 = read_image(item.impath)
        if self.transform is not None:
            if isinstance(self.transform, (list, tuple)):
                for i, tfm in enumerate(self.transform):
                    img = self._transform_image(tfm, img0)
                    output["img" if i == 0 else f"img{i + 1}"] = img
            else:
                output["img"] = self._transform_image(self.transform, img0)
        else:
            output["img"] = img0
        if self.return_img0:
            output["img0"] = self.to_tensor(img0)
        return output

    def _transform_image(self, tfm, img0):
        imgs = [tfm(img0) for _ in range(self.k_tfm)]
        return imgs[0] if len(imgs) == 1 else imgs
