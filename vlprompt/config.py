"""Assembling a run's config: Dassl's defaults + every registered trainer's and dataset's own keys.

Each trainer (and dataset) class that needs config keys defines `add_config(cfg)`; `extend_cfg`
calls it for everything registered, so a new method is configurable the moment its module is
imported. In an existing Dassl codebase, call `extend_cfg(cfg)` in its train.py (after importing the
vlprompt trainers) instead of listing their keys by hand.
"""
from .engine import DATASET_REGISTRY, TRAINER_REGISTRY, CN, get_cfg_default
from .engine.config_io import ConfigKeyError, merge_from_file_checked, merge_from_list_checked

__all__ = ["extend_cfg", "build_config", "merge_from_file_checked", "merge_from_list_checked", "ConfigKeyError"]


def _registered_classes(registry):
    return [registry.get(name) for name in registry.registered_names()]


def add_shared_keys(cfg):
    """The keys vlprompt adds for every run, whatever the method: DATASET.SUBSAMPLE_CLASSES,
    TRAIN.CUDA_GRAPHS and the test-image cache's TEST keys."""
    if "SUBSAMPLE_CLASSES" not in cfg.DATASET:
        cfg.DATASET.SUBSAMPLE_CLASSES = "all"  # all, base or new
    if "CUDA_GRAPHS" not in cfg.TRAIN:
        cfg.TRAIN.CUDA_GRAPHS = True  # replay training steps from CUDA graphs on a GPU (vlprompt.trainer)
    # Evaluation reads preprocessed test images (vlprompt.data.image_cache); read with cfg.TEST.get(...).
    for key, value in (("IMAGE_CACHE", True), ("IMAGE_CACHE_DIR", ""), ("IMAGE_CACHE_DECODER", "pil")):
        if key not in cfg.TEST:
            cfg.TEST[key] = value
    return cfg


def _config_adders():
    """(kind, registered name, add_config) of every registered trainer and dataset that declares its keys."""
    found = []
    for kind, registry in (("trainer", TRAINER_REGISTRY), ("dataset", DATASET_REGISTRY)):
        for name in registry.registered_names():
            add = getattr(registry.get(name), "add_config", None)
            if add is not None:
                found.append((kind, name, add))
    return found


def extend_cfg(cfg):
    """Add the shared keys (add_shared_keys) and the keys of every registered trainer and dataset."""
    add_shared_keys(cfg)
    seen = set()
    for _, _, add in _config_adders():
        if add not in seen:
            seen.add(add)
            add(cfg)
    return cfg


_SCOPE_CACHE = {}


def config_scope():
    """The ConfigScope of the registered trainers and datasets (vlprompt.run_identity): the defaults of the
    full config and the keys each class adds, so that a run's identity covers its own trainer's and
    dataset's keys and nothing of another."""
    from .run_identity import ConfigScope, flatten

    adders = _config_adders()
    key = tuple((kind, name, add) for kind, name, add in adders)
    if key not in _SCOPE_CACHE:
        base = add_shared_keys(get_cfg_default())
        base_keys = set(flatten(base))
        owners = {}
        for kind, name, add in adders:
            node = base.clone()
            add(node)
            owners[(kind, name)] = set(flatten(node)) - base_keys
        _SCOPE_CACHE.clear()
        _SCOPE_CACHE[key] = ConfigScope(flatten(extend_cfg(get_cfg_default())), owners)
    return _SCOPE_CACHE[key]


def ensure_node(cfg, name):
    """cfg.TRAINER.<name> as a CfgNode, created if missing."""
    if name not in cfg.TRAINER:
        cfg.TRAINER[name] = CN()
    return cfg.TRAINER[name]


def set_default(node, key, value):
    if key not in node:
        node[key] = value


def build_config(dataset_config_file="", config_file="", opts=(), overrides=None):
    """Defaults -> dataset YAML -> method YAML -> `overrides` (dict of keys) -> KEY VALUE opts."""
    cfg = extend_cfg(get_cfg_default())
    if dataset_config_file:
        merge_from_file_checked(cfg, dataset_config_file)
    if config_file:
        merge_from_file_checked(cfg, config_file)
    for key, value in (overrides or {}).items():
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    merge_from_list_checked(cfg, list(opts))
    return cfg
