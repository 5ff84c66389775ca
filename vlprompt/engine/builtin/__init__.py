"""The built-in engine: the part of Dassl's API that CLIP prompt-learning code uses, with Dassl's names,
defaults, printed lines and file layouts, running on current PyTorch without Dassl installed.

Names are imported from their modules on first use, so that the config, the registries and the dataset
base classes come without torch (`vlprompt data check` reads datasets without it)."""
import importlib

_WHERE = {
    "CfgNode": "config", "get_cfg_default": "config",
    "DataManager": "data_manager", "DatasetWrapper": "data_manager", "build_data_loader": "data_manager",
    "read_image": "data_manager",
    "DATASET_REGISTRY": "datasets", "DatasetBase": "datasets", "Datum": "datasets", "build_dataset": "datasets",
    "EVALUATOR_REGISTRY": "registry", "TRAINER_REGISTRY": "registry",
    "Classification": "evaluation", "build_evaluator": "evaluation", "compute_accuracy": "evaluation",
    "build_lr_scheduler": "optim", "build_optimizer": "optim",
    "build_sampler": "samplers",
    "SimpleTrainer": "trainer", "TrainerBase": "trainer", "TrainerX": "trainer", "build_trainer": "trainer",
    "build_transform": "transforms",
    **{name: "utils" for name in ("AverageMeter", "MetricMeter", "check_isfile", "close_logger", "collect_env_info",
                                  "count_num_param", "listdir_nohidden", "load_checkpoint", "load_pretrained_weights",
                                  "mkdir_if_missing", "read_json", "resume_from_checkpoint", "save_checkpoint",
                                  "set_random_seed", "setup_logger", "write_json")},
}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name in ("EVALUATOR_REGISTRY", "Classification", "build_evaluator"):
        importlib.import_module(".evaluation", __name__)  # registers Classification
    value = getattr(importlib.import_module("." + _WHERE[name], __name__), name)
    globals()[name] = value
    return value
