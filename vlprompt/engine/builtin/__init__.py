"""The built-in engine: the part of Dassl's API that CLIP prompt-learning code uses, with Dassl's names,
defaults, printed lines and file layouts, running on current PyTorch without Dassl installed."""
from .config import CfgNode, get_cfg_default
from .data_manager import DataManager, DatasetWrapper, build_data_loader, read_image
from .datasets import DATASET_REGISTRY, DatasetBase, Datum, build_dataset
from .evaluation import EVALUATOR_REGISTRY, Classification, build_evaluator, compute_accuracy
from .optim import build_lr_scheduler, build_optimizer
from .samplers import build_sampler
from .trainer import TRAINER_REGISTRY, SimpleTrainer, TrainerBase, TrainerX, build_trainer
from .transforms import build_transform
from .utils import (AverageMeter, MetricMeter, check_isfile, close_logger, collect_env_info, count_num_param,
                    listdir_nohidden, load_checkpoint, load_pretrained_weights, mkdir_if_missing, read_json,
                    resume_from_checkpoint, save_checkpoint, set_random_seed, setup_logger, write_json)
