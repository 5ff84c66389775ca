"""The values Dassl's enumerated config keys accept: one list each, used by the built-in engine to build
what they name and by vlprompt.validation to refuse anything else before a run starts (Dassl itself
accepts the same values). Imports nothing, so a config can be checked without torch."""

OPTIMIZERS = ("adam", "amsgrad", "sgd", "rmsprop", "radam", "adamw")  # OPTIM.NAME
LR_SCHEDULERS = ("single_step", "multi_step", "cosine")  # OPTIM.LR_SCHEDULER
WARMUP_TYPES = ("constant", "linear")  # OPTIM.WARMUP_TYPE (used when OPTIM.WARMUP_EPOCH > 0)
SAMPLERS = ("RandomSampler", "SequentialSampler", "RandomDomainSampler", "SeqDomainSampler", "RandomClassSampler")
TRANSFORMS = (  # INPUT.TRANSFORMS entries
    "random_flip", "random_resized_crop", "normalize", "instance_norm", "random_crop", "random_translation",
    "center_crop", "cutout", "imagenet_policy", "cifar10_policy", "svhn_policy", "randaugment",
    "randaugment_fixmatch", "randaugment2", "gaussian_noise", "colorjitter", "randomgrayscale", "gaussian_blur",
)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")  # INPUT.INTERPOLATION
FINAL_MODELS = ("last_step", "best_val")  # TEST.FINAL_MODEL
TEST_SPLITS = ("test", "val")  # TEST.SPLIT

# key -> allowed values; a list-valued key (INPUT.TRANSFORMS) is checked entry by entry.
ENGINE_CHOICES = {
    "OPTIM.NAME": OPTIMIZERS,
    "OPTIM.LR_SCHEDULER": LR_SCHEDULERS,
    "OPTIM.WARMUP_TYPE": WARMUP_TYPES,
    "DATALOADER.TRAIN_X.SAMPLER": SAMPLERS,
    "DATALOADER.TEST.SAMPLER": SAMPLERS,
    "INPUT.TRANSFORMS": TRANSFORMS,
    "INPUT.INTERPOLATION": INTERPOLATIONS,
    "TEST.FINAL_MODEL": FINAL_MODELS,
    "TEST.SPLIT": TEST_SPLITS,
}
