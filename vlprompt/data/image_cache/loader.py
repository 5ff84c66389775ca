"""The trainer's side of the test-image cache: `attach` puts a CachedEvalLoader in place of the evaluation
loaders, which reads the cache (vlprompt.data.image_cache.build opens or builds it on the first iteration)."""
import hashlib
import json
import os
import os.path as osp
import re

import torch
from torch.utils.data import DataLoader

from ...resume import capture_rng_state, restore_rng_state
from ...validation import check_choice
from .build import prepare_cache
from .files import DECODERS


def attach(trainer):
    """Called once the trainer's loaders exist: unless TEST.IMAGE_CACHE is False, make the validation and test
    loaders read the image cache."""
    cfg = trainer.cfg
    if not cfg.TEST.get("IMAGE_CACHE", True):
        return
    decoder = cfg.TEST.get("IMAGE_CACHE_DECODER", "pil")
    check_choice("TEST.IMAGE_CACHE_DECODER", decoder, DECODERS)
    for name, split in (("val_loader", "val"), ("test_loader", "test")):
        loader = getattr(trainer, name, None)
        if isinstance(loader, DataLoader):
            setattr(trainer, name, CachedEvalLoader(loader, cache_dir(cfg), slot_name(cfg, split, decoder),
                                                    decoder=decoder, device=trainer.device))


def cache_dir(cfg=None):
    configured = cfg.TEST.get("IMAGE_CACHE_DIR", "") if cfg is not None else ""
    if configured:
        return osp.abspath(osp.expanduser(configured))
    root = os.environ.get("VLPROMPT_CACHE") or osp.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "vlprompt")
    return osp.abspath(osp.expanduser(osp.join(root, "test_images")))


def slot_name(cfg, split, decoder="pil"):
    """The file name for one dataset split: a new image list for the same split replaces the old file."""
    data = cfg.DATASET
    what = {"dataset": data.NAME, "root": osp.abspath(osp.expanduser(data.ROOT)), "split": split,
            "subsample": data.get("SUBSAMPLE_CLASSES", "all"), "source": list(data.SOURCE_DOMAINS),
            "target": list(data.TARGET_DOMAINS), "size": list(cfg.INPUT.SIZE), "interp": cfg.INPUT.INTERPOLATION,
            "decoder": decoder}
    slot = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]
    return f"{re.sub(r'[^A-Za-z0-9.-]+', '-', data.NAME)}_{split}_{slot}"


class CachedEvalLoader:
    """Stands in for an evaluation DataLoader: the same batches (same keys, order and values), read from
    the image cache; the cache is opened or built on the first iteration. Falls back to the wrapped
    loader, with a one-line note, when the cache cannot be used."""

    def __init__(self, loader, directory, name, decoder="pil", device="cpu"):
        self.loader = loader
        self.directory, self.name, self.decoder, self.device = directory, name, decoder, torch.device(device)
        self.cache = None
        self._prepared = False

    def __len__(self):
        return len(self.loader)

    def __getattr__(self, name):  # dataset, batch_size, sampler, ... of the wrapped loader
        if name == "loader":
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __iter__(self):
        if not self._prepared:
            self._prepared = True
            # Building or checking the cache must not move the random streams that training draws from.
            rng = capture_rng_state()
            try:
                self.cache, reason = prepare_cache(self.loader, self.directory, self.name, decoder=self.decoder,
                                                   device=self.device)
            finally:
                restore_rng_state(rng)
            if self.cache is None:
                print(f"Note: evaluation reads the image files (no test-image cache): {reason}")
        if self.cache is None:
            return iter(self.loader)
        # A DataLoader iterator draws its base seed from torch's generator: draw it too, so that a run that
        # evaluates between epochs (TEST.FINAL_MODEL best_val) trains the same model with or without the cache.
        torch.empty((), dtype=torch.int64).random_(generator=self.loader.generator)
        return self.cache.batches(self.loader.batch_size, self.device)
