"""`PromptTrainer`: what every CLIP prompt-learning trainer shares, on Dassl's TrainerX.

A method's trainer says only what is specific to it:
- `CONFIG_NODE` / `CONFIG_DEFAULTS`: its keys under cfg.TRAINER.<NODE> and their defaults, stated once
  (`add_config` adds them; train.py collects every registered trainer's);
- `build_custom_model(clip_model, classnames)`: the model (a `vlprompt.classifier.PromptedCLIP`)
  with its trainable tensors in `model.prompt_learner`;
- `compute_loss(image, label)` if the loss is not cross-entropy on the logits;
- `adapt_checkpoint_state(state)` to read the original repositories' checkpoints.

Shared here: precision (vlprompt.precision), freezing CLIP, optimizer/scheduler on the trainable
module only, the NaN/Inf guard, per-epoch resume points, checkpoint loading with clear errors,
evaluation with image-independent inputs computed once, `result.json` for every test, and on a GPU
the training forward/backward replayed from CUDA graphs (`train_forward`).
"""
import contextlib
import datetime
import json
import os
import os.path as osp
import platform
import time

import torch
import torch.nn.functional as F

from .version import __version__
from .clip_loader import load_clip
from .cuda_graphs import GraphedForward
from .data import image_cache
from .engine import ENGINE, TrainerX, build_lr_scheduler, build_optimizer, compute_accuracy
from .config import ensure_node, set_default
from .engine import load_pretrained_weights
from .engine.loaders import fit_evaluation_workers
from .errors import ConfigValueError, MissingFileError, NonFiniteError, UserError
from .fileio import atomic_write, load_torch_file, torch_save_atomic, write_json_atomic
from .precision import PRECISIONS, apply_to_clip, resolve_precision
from .resume import capture_rng_state, checkpoint_epochs, kill_point, restore_rng_state
from .run_identity import flatten
from .validation import RUN_WARNINGS, check_choice

CHECKPOINT_EXTRA_KEYS = ("token_prefix", "token_suffix")


class CheckpointMismatch(UserError, RuntimeError):
    pass


class ResultKeepingEvaluator:
    """The engine's evaluator (Dassl's reset/process/evaluate API), also keeping its last results and the
    number of samples it evaluated, for result.json."""

    def __init__(self, evaluator):
        self.evaluator = evaluator
        self.last_results = None
        self.num_samples = 0

    def reset(self):
        self.num_samples = 0
        self.evaluator.reset()

    def process(self, output, label):
        self.num_samples += len(label)
        self.evaluator.process(output, label)

    def evaluate(self):
        self.last_results = self.evaluator.evaluate()
        return self.last_results


def load_checkpoint(path):
    """A checkpoint through vlprompt's safe loader (vlprompt.fileio.load_torch_file), on either engine: the
    real Dassl's own loader fails on torch >= 2.6 (weights_only) for every checkpoint it writes."""
    return load_torch_file(path, map_location=None if torch.cuda.is_available() else "cpu")


def load_scheduler_state(sched, state):
    """sched.load_state_dict(state), with the scheduler still driving the live optimizer. Dassl's warmup
    schedulers pickle their successor (the cosine schedule), which refers to a pickled copy of the
    optimizer; loaded as it is (what Dassl's own resume does), the successor steps that copy and the
    resumed epochs keep the learning rate of the checkpoint's epoch instead of following the schedule.
    The built-in engine's warmup state holds the successor's state dict instead, which Dassl's scheduler
    would take for the successor itself."""
    live = getattr(sched, "successor", None)
    sched.load_state_dict(state)
    loaded = getattr(sched, "successor", None)
    if live is not None and loaded is not None and loaded is not live:
        live.load_state_dict(loaded if isinstance(loaded, dict) else loaded.state_dict())
        sched.successor = live


class PromptTrainer(TrainerX):
    CONFIG_NODE = None  # cfg.TRAINER.<CONFIG_NODE> holds the method's keys
    # The method's keys under cfg.TRAINER.<CONFIG_NODE> and their defaults, stated once: add_config adds them
    # to a config, method_option falls back on them. The originals' keys keep their names and values.
    CONFIG_DEFAULTS = {}
    # The method's enumerated keys -> their allowed values, checked before a run starts (vlprompt.validation)
    CONFIG_CHOICES = {"PREC": PRECISIONS}
    CHECKPOINT_NAME = "prompt_learner"  # folder of the checkpoints in the output dir (the originals' name)
    HAS_TRAINABLE_PROMPTS = True  # False: nothing to train or load (zero-shot CLIP)
    # Raised by a release that changes what this method computes from unchanged settings: its earlier runs are
    # then other runs (vlprompt.run_identity). 0 is left out of the fingerprint.
    RESULTS_REVISION = 0

    # ------------------------------------------------------------------------------ method hooks
    @classmethod
    def add_config(cls, cfg):
        """Add CONFIG_DEFAULTS under cfg.TRAINER.<CONFIG_NODE> (only the keys not present yet)."""
        if cls.CONFIG_NODE is None:
            return
        node = ensure_node(cfg, cls.CONFIG_NODE)
        for key, value in cls.CONFIG_DEFAULTS.items():
            set_default(node, key, value)

    def build_custom_model(self, clip_model, classnames):
        raise NotImplementedError

    def trainable_module(self):
        return getattr(self.model, "prompt_learner", None)

    def compute_loss(self, image, label):
        """(loss, logits) for one training batch; logits may be None."""
        logits = self.train_forward(image)
        return F.cross_entropy(logits, label), logits

    def method_resume_state(self):
        """What the method carries from epoch to epoch besides its trainable tensors, optimizer and schedule
        (e.g. PromptSRC's running average of the prompts), saved with every checkpoint for an exact resume."""
        return None

    def restore_method_resume_state(self, state):
        """Take back what method_resume_state returned (None: the checkpoint holds none)."""

    def adapt_checkpoint_state(self, state_dict):
        """Map a loaded state dict onto the trainable module's keys (default: drop CoOp's prompt buffers)."""
        return {k: v for k, v in state_dict.items() if k.rsplit(".", 1)[-1] not in CHECKPOINT_EXTRA_KEYS}

    # ------------------------------------------------------------------------------------ set-up
    def __init__(self, cfg):
        self._start_time = time.time()
        self.run_info = {}  # train.py records how it was called (and the run's identity); written to result.json
        self.resumed_from = None  # the epoch a resumed run continued from
        self.registered = {}  # name -> (module, optimizer, scheduler), as given to register_model
        super().__init__(cfg)
        self.evaluator = ResultKeepingEvaluator(self.evaluator)

    def register_model(self, name="model", model=None, optim=None, sched=None):
        super().register_model(name, model, optim, sched)
        self.registered[name] = (model, optim, sched)

    @property
    def last_results(self):
        """The metrics of the last evaluation (the engine evaluator's dict), or None."""
        return self.evaluator.last_results

    @property
    def method_cfg(self):
        return self.cfg.TRAINER[self.CONFIG_NODE]

    def method_option(self, key):
        """A method key; its CONFIG_DEFAULTS value where a Dassl codebase's own train.py did not add it."""
        return self.config_option(self.cfg, key)

    @classmethod
    def config_option(cls, cfg, key):
        """method_option for a config, before a trainer exists."""
        node = cfg.TRAINER.get(cls.CONFIG_NODE, None) if cls.CONFIG_NODE else None
        return (node or {}).get(key, cls.CONFIG_DEFAULTS[key])

    def check_cfg(self, cfg):
        if self.CONFIG_NODE is None:
            return
        if self.CONFIG_NODE not in cfg.TRAINER:
            raise KeyError(
                f"cfg.TRAINER.{self.CONFIG_NODE} is missing: add the trainers' config keys before merging config "
                "files (vlprompt.config.extend_cfg(cfg) does it; train.py calls it).")
        for key, allowed in self.CONFIG_CHOICES.items():  # also where a codebase's own train.py builds us
            check_choice(f"TRAINER.{self.CONFIG_NODE}.{key}", self.config_option(cfg, key), allowed)

    def build_data_loader(self):
        super().build_data_loader()
        fit_evaluation_workers(self)
        image_cache.environment_switch()  # a bad VLPROMPT_IMAGE_CACHE is refused before any work

    def attach_image_cache(self):
        """Evaluation reads preprocessed test images (vlprompt/data/image_cache), decided at the first evaluation:
        by then vlprompt's entry point has given the trainer its run_info, which a codebase's own train.py does
        not, and there the cache stays off unless asked for."""
        if not getattr(self, "_image_cache_attached", False):
            self._image_cache_attached = True
            image_cache.attach(self, through_vlprompt=bool(self.run_info))

    @classmethod
    def run_precision(cls, cfg, device, verbose=True):
        """The Precision a run of this trainer computes with for PREC on `device` (a trainer may adjust it,
        e.g. VPT's fp16 that the original ran in fp32). Also what the run's identity records, before the
        trainer is built."""
        prec = cls.config_option(cfg, "PREC") if cls.CONFIG_NODE else "fp16"
        return resolve_precision(prec, device, verbose=verbose)

    def build_precision(self):
        return self.run_precision(self.cfg, self.device)

    def build_model(self):
        cfg = self.cfg
        self.precision = self.build_precision()
        print(f"Loading CLIP (backbone: {cfg.MODEL.BACKBONE.NAME})")
        clip_model = load_clip(cfg.MODEL.BACKBONE.NAME)
        apply_to_clip(clip_model, self.precision)
        resolution = clip_model.visual.input_resolution
        if cfg.INPUT.SIZE[0] != resolution or cfg.INPUT.SIZE[1] != resolution:
            raise ConfigValueError(f"INPUT.SIZE {tuple(cfg.INPUT.SIZE)} does not match the CLIP backbone's input "
                             f"resolution {resolution}; set INPUT.SIZE ({resolution}, {resolution})")

        print("Building custom CLIP")
        self.model = self.build_custom_model(clip_model, self.dm.dataset.classnames)
        trainable = self.trainable_module()
        trainable_ids = {id(p) for p in trainable.parameters()} if trainable is not None else set()
        for param in self.model.parameters():
            param.requires_grad_(id(param) in trainable_ids)
        names = [n for n, p in self.model.named_parameters() if p.requires_grad]
        if names:
            print(f"Parameters to be updated: {sorted(names)}")
            print(f"# trainable parameters: {sum(p.numel() for p in self.model.parameters() if p.requires_grad):,}")
        if cfg.MODEL.INIT_WEIGHTS:
            load_pretrained_weights(trainable, cfg.MODEL.INIT_WEIGHTS)
        self.model.to(self.device)
        if torch.cuda.device_count() > 1 and self.device.type == "cuda":
            print("Note: training on one GPU; run several jobs at once to use the others")

        self.scaler = self.precision.grad_scaler()
        self.graphed_forward = GraphedForward(self.model, self.precision,
                                              enabled=cfg.TRAIN.get("CUDA_GRAPHS", True))
        if trainable is not None and names:
            self.optim = self.make_optimizer(trainable)
            self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
            self.register_model(self.CHECKPOINT_NAME, trainable, self.optim, self.sched)

    def make_optimizer(self, trainable):
        """OPTIM's optimizer over the trainable module (a method may group its parameters, e.g. DePT)."""
        return build_optimizer(trainable, self.cfg.OPTIM)

    # ---------------------------------------------------------------------------------- training
    def train(self):
        if not self.get_model_names():
            raise RuntimeError(f"{type(self).__name__} has nothing to train; run it with --eval-only")
        self.trained = True  # result.json's mode where train.py is a codebase's own (no run_info)
        super().train()

    def parse_batch_train(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def forward_backward(self, batch):
        kill_point(f"train-batch-{self.epoch + 1}-{self.batch_idx + 1}")
        image, label = self.parse_batch_train(batch)
        with self.precision.autocast():
            loss, logits = self.compute_loss(image, label)
        self.backward_and_update(loss)
        summary = {"loss": loss.item()}
        if logits is not None:
            summary["acc"] = compute_accuracy(logits, label)[0].item()
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    def train_forward(self, image):
        """self.model(image) for a training step; on a GPU replayed from CUDA graphs (vlprompt.cuda_graphs).
        TRAIN.CUDA_GRAPHS False turns that off."""
        return self.graphed_forward(image)

    def check_finite(self, loss):
        if not torch.isfinite(loss).all():
            raise NonFiniteError(
                f"Loss is {loss.detach().float().item()} at epoch {self.epoch + 1}, batch {self.batch_idx + 1} "
                f"{self._nan_advice()}")

    def _nan_advice(self):
        return (f"(PREC {self.precision.requested}, running as {self.precision.name}). Half precision is the usual "
                f"cause: try TRAINER.{self.CONFIG_NODE}.PREC amp or fp32, or a lower OPTIM.LR.")

    def check_parameters_finite(self, when):
        """The trainable tensors, before a checkpoint or a result is written: a loss can stay finite while the
        prompts are not (an infinite learning rate step), and such a model must not be saved or reported."""
        for name in self.get_model_names():
            module = self.registered[name][0]
            bad = [n for n, p in module.named_parameters() if not torch.isfinite(p.detach()).all()]
            if bad:
                raise NonFiniteError(f"Trained parameters {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''} are "
                                     f"NaN or infinite {when} {self._nan_advice()} Nothing was saved.")

    def backward_and_update(self, loss, names=None):
        """zero_grad -> backward (loss-scaled under amp) -> optimizer step, after the NaN/Inf check."""
        self.check_finite(loss)
        self.model_zero_grad(names)
        if self.scaler is None:
            loss.backward()
            self.model_update(names)
            return
        self.scaler.scale(loss).backward()
        for name in self.get_model_names(names):
            optim = self.registered[name][1]
            if optim is not None:
                self.scaler.step(optim)
        self.scaler.update()

    def after_epoch(self):
        super().after_epoch()
        # Dassl saves only every CHECKPOINT_FREQ epochs and the last one, so an interrupted run starts
        # over. Keep a resume point for every epoch, replacing the previous one, so that the final tree
        # is the same as Dassl's.
        epoch_no = self.epoch + 1
        if not self._is_kept_checkpoint(epoch_no):
            self.save_model(self.epoch, self.output_dir)
        self.remove_old_resume_points(self.output_dir, epoch_no)

    def remove_old_resume_points(self, directory, epoch_no):
        """Remove the resume points of epochs before `epoch_no` that Dassl would not keep (also one that a run
        killed between writing a checkpoint and this clean-up left behind: the resumed run calls it too)."""
        for name in self.get_model_names():
            folder = osp.join(directory, name)
            for old in checkpoint_epochs(folder):
                if old < epoch_no and not self._is_kept_checkpoint(old):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(osp.join(folder, f"model.pth.tar-{old}"))

    def save_model(self, epoch, directory, is_best=False, val_result=None, model_name=""):
        """Dassl's checkpoint (state_dict, epoch, optimizer, scheduler, val_result) plus what an exact
        resume needs (`resume`: random states, GradScaler, best validation result, the method's own state).
        The file is written atomically before the `checkpoint` pointer, so no kill loses a completed epoch."""
        self.check_parameters_finite(f"at epoch {epoch + 1}")
        resume = {"rng": capture_rng_state(), "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                  "best_result": self.best_result}
        method_state = self.method_resume_state()
        if method_state is not None:
            resume["method"] = method_state
        for name in self.get_model_names():
            module, optim, sched = self.registered[name]
            state = {"state_dict": module.state_dict(), "epoch": epoch + 1,
                     "optimizer": optim.state_dict() if optim is not None else None,
                     "scheduler": sched.state_dict() if sched is not None else None,
                     "val_result": val_result, "resume": resume}
            folder = osp.join(directory, name)
            fpath = osp.join(folder, model_name or f"model.pth.tar-{epoch + 1}")
            torch_save_atomic(state, fpath)
            print(f"Checkpoint saved to {fpath}")
            kill_point(f"checkpoint-written-{epoch + 1}")
            with atomic_write(osp.join(folder, "checkpoint"), "w") as f:
                f.write(f"{osp.basename(fpath)}\n")
            if is_best:
                torch_save_atomic(state, osp.join(folder, "model-best.pth.tar"))

    def resume_model_if_exist(self, directory):
        """Continue from the latest complete epoch on disk (every model's `model.pth.tar-N`), restoring the
        optimizer, scheduler, random states and GradScaler, so the run ends as if never interrupted."""
        names = self.get_model_names()
        common = set.intersection(*(checkpoint_epochs(osp.join(directory, n)) for n in names)) if names else set()
        if not common:
            print("No checkpoint found, train from scratch")
            return 0
        epoch = max(common)
        print(f"Found checkpoint at {directory} (will resume training)")
        resume = None
        for name in names:
            fpath = osp.join(directory, name, f"model.pth.tar-{epoch}")
            print(f'Loading checkpoint from "{fpath}"')
            checkpoint = load_checkpoint(fpath)
            module, optim, sched = self.registered[name]
            module.load_state_dict(checkpoint["state_dict"])
            if optim is not None and checkpoint.get("optimizer") is not None:
                optim.load_state_dict(checkpoint["optimizer"])
            if sched is not None and checkpoint.get("scheduler") is not None:
                load_scheduler_state(sched, checkpoint["scheduler"])
            resume = checkpoint.get("resume")
            with atomic_write(osp.join(directory, name, "checkpoint"), "w") as f:
                f.write(f"model.pth.tar-{epoch}\n")
        self.restore_method_resume_state(resume.get("method") if resume is not None else None)
        if resume is not None:
            restore_rng_state(resume["rng"])
            if self.scaler is not None and resume.get("scaler"):
                self.scaler.load_state_dict(resume["scaler"])
            if resume.get("best_result") is not None:
                self.best_result = resume["best_result"]
        else:
            print("Note: this checkpoint holds no random state (written by another codebase or an older vlprompt): "
                  "the resumed run will not be bit-identical to an uninterrupted one")
        print(f"Previous epoch: {epoch}")
        self.resumed_from = epoch
        self.remove_old_resume_points(directory, epoch)
        return epoch

    def _is_kept_checkpoint(self, epoch_no):
        freq = self.cfg.TRAIN.CHECKPOINT_FREQ
        return epoch_no == self.max_epoch or (freq > 0 and epoch_no % freq == 0)

    # -------------------------------------------------------------------------------- evaluation
    def model_inference(self, input):
        kill_point("final-test")
        return self.model(input)

    def test(self, split=None):
        self.attach_image_cache()
        cache = getattr(self.model, "cached_static_inputs", None)
        with self.precision.autocast(), (cache() if cache is not None else contextlib.nullcontext()):
            result = super().test(split)
        tested = split or self.cfg.TEST.SPLIT
        results = self.evaluator.last_results
        if results is not None and (tested != "val" or self.val_loader is None):
            self.write_result(dict(results))
        return result

    # ------------------------------------------------------------------------------- checkpoints
    def load_model(self, directory, epoch=None):
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given "
                  "(ignore this if it's done on purpose)")
            return
        model_file = "model-best.pth.tar" if epoch is None else f"model.pth.tar-{epoch}"
        for name in self.get_model_names():
            path = osp.join(directory, name, model_file)
            if not osp.exists(path):
                raise MissingFileError(self._missing_checkpoint_message(directory, name, path))
            checkpoint = load_checkpoint(path)
            state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else checkpoint
            state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
            self.load_trainable_state(self.registered[name][0], self.adapt_checkpoint_state(state), path)
            ckpt_epoch = checkpoint.get("epoch") if isinstance(checkpoint, dict) else None
            self.loaded_checkpoint = {"path": path, "epoch": ckpt_epoch}
            print(f'Loading weights to {name} from "{path}" (epoch = {ckpt_epoch})')

    @staticmethod
    def _missing_checkpoint_message(directory, name, path):
        if not osp.isdir(directory):
            return f"No model directory {directory} (from --model-dir)"
        folder = osp.join(directory, name)
        if not osp.isdir(folder):
            found = sorted(os.listdir(directory))
            return (f"No checkpoint folder {folder}: --model-dir must be the run directory that holds "
                    f"{name}/model.pth.tar-N (it holds {found})")
        files = sorted(f for f in os.listdir(folder) if f.startswith("model"))
        return f"No checkpoint {path} (that folder holds {files}); check --load-epoch against the config's MAX_EPOCH"

    @staticmethod
    def load_trainable_state(module, state, path):
        """Load `state` into `module`, failing loudly on any missing, unexpected or misshapen tensor."""
        expected = module.state_dict()
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        wrong_shape = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                       for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
        problems = []
        if missing:
            problems.append(f"missing {missing}")
        if unexpected:
            problems.append(f"unexpected {unexpected}")
        if wrong_shape:
            problems.append(f"shape mismatch {wrong_shape}")
        if problems:
            raise CheckpointMismatch(
                f"Checkpoint {path} does not fit the model built from this config: {'; '.join(problems)}. "
                "Check that the trainer, its config (e.g. N_CTX, PROMPT_DEPTH, CSC) and the backbone match "
                "the ones the checkpoint was trained with.")
        module.load_state_dict(state, strict=True)

    # ------------------------------------------------------------------------------------ results
    def write_result(self, metrics):
        """Write `<OUTPUT_DIR>/result.json`: what ran, on what, and the metrics (tables read these)."""
        self.check_parameters_finite("before the result is written")
        cfg = self.cfg
        info = dict(self.run_info)
        loaded = getattr(self, "loaded_checkpoint", None)
        config_file = info.get("config_file") or ""
        eval_only = info.get("eval_only", not getattr(self, "trained", False))
        result = {
            "method": cfg.TRAINER.NAME,
            "dataset": cfg.DATASET.NAME,
            "subsample": cfg.DATASET.get("SUBSAMPLE_CLASSES", "all"),
            "shots": cfg.DATASET.NUM_SHOTS,
            "seed": cfg.SEED if cfg.SEED >= 0 else None,
            "backbone": cfg.MODEL.BACKBONE.NAME,
            "config": osp.splitext(osp.basename(config_file))[0] if config_file else None,
            "config_file": config_file or None,
            "dataset_config_file": info.get("dataset_config_file"),
            "source_domains": list(cfg.DATASET.SOURCE_DOMAINS),
            "target_domains": list(cfg.DATASET.TARGET_DOMAINS),
            "precision": {"requested": self.precision.requested, "used": self.precision.name},
            "mode": "eval-only" if eval_only else "train",
            "epochs_trained": self.max_epoch if not eval_only else None,
            "model_dir": info.get("model_dir"),
            "load_epoch": info.get("load_epoch"),
            "checkpoint": loaded,
            "num_classes": self.num_classes,
            "num_test_images": self.evaluator.num_samples,
            "metrics": {k: float(v) for k, v in metrics.items()},
            "output_dir": osp.abspath(cfg.OUTPUT_DIR),
            "versions": {"vlprompt": __version__, "torch": torch.__version__, "engine": ENGINE,
                         "python": platform.python_version()},
            "device": torch.cuda.get_device_name(0) if self.device.type == "cuda" else "cpu",
            "wall_time_s": round(time.time() - info.get("start_time", self._start_time), 2),
            "finished_at": datetime.datetime.now().isoformat(timespec="seconds"),
            "resumed_from_epoch": self.resumed_from,
            "warnings": list(RUN_WARNINGS),
            "identity": info.get("identity"),
        }
        if result["identity"] is None:  # a codebase's own train.py: what the tables can group it by (vlprompt.results)
            result["config_values"] = flatten(cfg)
        path = osp.join(cfg.OUTPUT_DIR, "result.json")
        write_json_atomic(result, path)
        print(f"Result written to {path}: {json.dumps(result['metrics'])}")
        return path
