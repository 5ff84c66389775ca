"""PromptSRC: prompts regulated by frozen CLIP (Khattak et al., "Self-regulating Prompts: Foundational Model
Adaptation without Forgetting", ICCV 2023).

Prompts: IVLP's independent deep prompts on CLIP's own towers (vlprompt.ivlp): N_CTX_TEXT language tokens after
SOT, initialised from CTX_INIT and replaced before text blocks 1..J_t-1, and N_CTX_VISION vision tokens appended
after the patch tokens and replaced before vision blocks 1..J_v-1. The prompted model's features and logits:

    f_p = f(x; V),  g_p,k = g(t_k; P),  z_p = exp(s) cos(f_p, g_p)

Self-regulation against frozen CLIP, which is the same towers run without prompts (nothing is copied):

    f~    frozen CLIP's image feature of the same augmented batch
    g~_k  frozen CLIP's text feature of class k averaged over the 60 ImageNet templates (textual diversity),
          computed once per class set, in float32 as the original
    z~    exp(s) cos(f~, g~)

    L_SCL-text   = TEXT_LOSS_WEIGHT (25)  * mean |g_p/|g_p| - g~/|g~||
    L_SCL-image  = IMAGE_LOSS_WEIGHT (10) * mean |f_p/|f_p| - f~/|f~||
    L_SCL-logits = sum over batch and classes of KL(softmax z~ || softmax z_p) / (B * C)
    L = CE(z_p, y) + (L_SCL-logits + L_SCL-text + L_SCL-image)

(the official code divides the logit term by B * C, the number of logits, not by B).

Gaussian prompt aggregation (GPA): epoch e in 1..E gets w_e = N(e; GPA_MEAN, GPA_STD) / sum_e' N(e'; ..). At
the end of every epoch the model times w_e is added to a running sum; after the last step of the last epoch
the sum replaces the model, before its checkpoint is written and the final test runs. As in the official
code the sum covers the whole model: frozen CLIP too, where sum_e (W * w_e) in the weight's dtype can differ
from W by an ulp when the weight is spread over several epochs. vlprompt keeps that (GPA_WHOLE_MODEL True)
and recomputes the same sums when its checkpoints are evaluated, which hold the prompts only;
GPA_WHOLE_MODEL False averages the prompts alone.

Precision: the official runs in fp16 only (its image teacher is never cast to float32, so PREC fp32 fails
at the first step); vlprompt runs fp16 as the original did on a GPU, and fp32 and amp as well.
"""
import copy

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from vlprompt.classifier import scaled_logits
from vlprompt.cuda_graphs import GraphedForward
from vlprompt.deep_prompts import clip_constructor_draws
from vlprompt.engine import TRAINER_REGISTRY
from vlprompt.errors import ConfigValueError
from vlprompt.ivlp import IVLPCLIP
from vlprompt.original_checkpoints import from_original_state, is_full_model_state, original_frozen_weights
from vlprompt.prompts import clean_classname, encode_texts
from vlprompt.templates import IMAGENET_TEMPLATES
from vlprompt.trainer import PromptTrainer


def normalized(x):
    return x / x.norm(dim=-1, keepdim=True)


class PromptSRCCLIP(IVLPCLIP):
    """IVLP's model plus frozen CLIP's features of the same inputs (the teacher)."""

    def __init__(self, clip_model, classnames, n_ctx_text=4, n_ctx_vision=4, ctx_init="a photo of a",
                 depth_text=9, depth_vision=9, rng_before_clip=None, round_fp16=False, full_context=False,
                 templates=IMAGENET_TEMPLATES):
        super().__init__(clip_model, classnames, n_ctx_text, n_ctx_vision, ctx_init, depth_text, depth_vision,
                         rng_before_clip, round_fp16, full_context)
        if rng_before_clip is not None:
            # The original builds two more CLIPs here, its text and image teachers; replaying their
            # constructors' draws keeps every later random number (data order, augmentation) the original's.
            for _ in range(2):
                clip_constructor_draws(clip_model, torch.get_rng_state())
        self.classnames = [clean_classname(name) for name in classnames]
        self.templates = list(templates)
        self._teacher_text = None

    @torch.no_grad()
    def teacher_text_features(self):
        """g~/|g~| [K, E] in float32: computed on first use, then kept (never per step)."""
        if self._teacher_text is None:
            encoder = self.text_encoder
            if encoder.dtype != torch.float32:  # the original encodes with a float32 copy of CLIP
                encoder = copy.deepcopy(encoder).float()
            device_type = encoder.text_projection.device.type
            with torch.autocast(device_type, enabled=False):
                per_template = [encode_texts(encoder, [t.replace("{}", name) for name in self.classnames],
                                             normalize=False) for t in self.templates]
            self._teacher_text = normalized(torch.stack(per_template, dim=1).mean(dim=1))
        return self._teacher_text

    def prompted(self, image):
        """(z_p, f_p/|f_p|, g_p/|g_p|) for a training batch."""
        image_features, text_features = self.features(image, self.static_inputs())
        image_features, text_features = normalized(image_features), normalized(text_features)
        return scaled_logits(image_features, text_features, self.logit_scale), image_features, text_features

    @torch.no_grad()
    def frozen(self, image):
        """(z~, f~/|f~|): frozen CLIP on the same batch (the image tower without prompts)."""
        image_features = normalized(self.image_encoder(image))
        text_features = self.teacher_text_features()
        return scaled_logits(image_features, text_features.to(image_features.dtype), self.logit_scale), image_features


class PromptedForward(nn.Module):
    """The prompted half of a training step as a module of its own (replayed from CUDA graphs on a GPU)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        return self.model.prompted(image)


def self_regulating_loss(logits, label, image_features, text_features, frozen_logits, frozen_image, frozen_text,
                         text_weight, image_weight):
    """CE(z_p, y) + (L_SCL-logits + L_SCL-text + L_SCL-image), summed in the official order."""
    loss_text = F.l1_loss(text_features, frozen_text, reduction="mean") * text_weight
    loss_image = F.l1_loss(image_features, frozen_image, reduction="mean") * image_weight
    loss_logits = F.kl_div(F.log_softmax(logits, dim=1), F.log_softmax(frozen_logits, dim=1), reduction="sum",
                           log_target=True) / logits.numel()
    return F.cross_entropy(logits, label) + (loss_logits + loss_text + loss_image)


# ------------------------------------------------------------------------------ Gaussian prompt aggregation
def gaussian_epoch_weights(max_epoch, mean, std):
    """w_e = N(e; mean, std) / sum for e = 1..max_epoch, float64, evaluated and summed as the official does."""
    density = [(1 / (std * np.sqrt(2 * np.pi))) * np.exp(-0.5 * ((e - mean) / std) ** 2)
               for e in range(1, max_epoch + 1)]
    weights = np.array(density)
    return weights / sum(weights)


def weighted_sum(tensor, weights):
    """sum_e tensor * w_e, accumulated epoch by epoch in the tensor's dtype: what averaging a tensor that never
    changes gives (frozen weights), to the bit."""
    total = tensor * weights[0]
    for w in weights[1:]:
        total = total + tensor * w
    return total


class GaussianPromptAggregation:
    """The running sum of w_e * (trainable tensors after epoch e); frozen tensors are summed at the end
    (`weighted_sum`), since they do not change."""

    def __init__(self, weights):
        self.weights = weights
        self.sums = None

    def add_epoch(self, epoch, tensors):
        """epoch: 0-based; tensors: {name: tensor} of the trainable state after it."""
        w = self.weights[epoch]
        weighted = {name: t.detach() * w for name, t in tensors.items()}
        self.sums = weighted if self.sums is None else {name: self.sums[name] + weighted[name] for name in weighted}

    def state(self):
        return None if self.sums is None else {name: t.clone() for name, t in self.sums.items()}

    def restore(self, sums):
        self.sums = sums


# ------------------------------------------------------------------------------------------------ trainer
@TRAINER_REGISTRY.register()
class PromptSRC(PromptTrainer):
    CONFIG_NODE = "PROMPTSRC"
    CHECKPOINT_NAME = "VLPromptLearner"  # the original's folder; it holds the whole model there, the prompts here

    CONFIG_DEFAULTS = {
        "N_CTX_VISION": 4,  # vision prompt tokens per layer
        "N_CTX_TEXT": 4,  # language prompt tokens per layer
        "CTX_INIT": "a photo of a",
        "PREC": "fp16",  # fp16 (the original's only working mode), fp32, amp (vlprompt adds bf16)
        "PROMPT_DEPTH_VISION": 9,
        "PROMPT_DEPTH_TEXT": 9,
        "TEXT_LOSS_WEIGHT": 25,  # lambda of L_SCL-text
        "IMAGE_LOSS_WEIGHT": 10,  # lambda of L_SCL-image
        "GPA_MEAN": 15,  # Gaussian prompt aggregation over epochs: mean and std (epochs, integers as the original)
        "GPA_STD": 1,
        # vlprompt: the original's fp16 rounding of the prompts where they enter CLIP's blocks, and its text tower
        # over all 77 positions, which together make a seed train the original's model (as IVLP's, whose
        # CONFIG_DEFAULTS say why; False: float32 prompts / the class prompts cut after their last EOT token).
        "ROUND_PROMPTS_FP16": True,
        "TEXT_FULL_CONTEXT": True,
        # vlprompt: True averages the whole model as the original (frozen CLIP may move by an ulp); False only
        # the prompts.
        "GPA_WHOLE_MODEL": True,
    }

    @classmethod
    def validate_config(cls, cfg):
        node = cfg.TRAINER[cls.CONFIG_NODE]
        std = node.get("GPA_STD", cls.CONFIG_DEFAULTS["GPA_STD"])
        if not isinstance(std, (int, float)) or std <= 0:
            raise ConfigValueError(f"TRAINER.PROMPTSRC.GPA_STD {std!r} is not allowed: expected a number > 0")
        for key in ("TEXT_LOSS_WEIGHT", "IMAGE_LOSS_WEIGHT"):
            value = node.get(key, cls.CONFIG_DEFAULTS[key])
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigValueError(f"TRAINER.PROMPTSRC.{key} {value!r} is not allowed: expected a number >= 0")

    def build_model(self):
        # The original draws its prompts while CLIP is built: keep the generator state from before.
        self.rng_before_clip = torch.get_rng_state()
        super().build_model()
        self.graphed_forward = GraphedForward(PromptedForward(self.model), self.precision,
                                              enabled=self.cfg.TRAIN.get("CUDA_GRAPHS", True))
        self.gpa = GaussianPromptAggregation(gaussian_epoch_weights(
            self.cfg.OPTIM.MAX_EPOCH, self.method_option("GPA_MEAN"), self.method_option("GPA_STD")))

    def build_custom_model(self, clip_model, classnames):
        c = self.method_cfg
        return PromptSRCCLIP(clip_model, classnames, c.N_CTX_TEXT, c.N_CTX_VISION, c.CTX_INIT, c.PROMPT_DEPTH_TEXT,
                             c.PROMPT_DEPTH_VISION, getattr(self, "rng_before_clip", None),
                             bool(self.method_option("ROUND_PROMPTS_FP16")),
                             full_context=bool(self.method_option("TEXT_FULL_CONTEXT")))

    def compute_loss(self, image, label):
        logits, image_features, text_features = self.train_forward(image)
        frozen_logits, frozen_image = self.model.frozen(image)
        loss = self_regulating_loss(logits, label, image_features, text_features, frozen_logits, frozen_image,
                                    self.model.teacher_text_features(), self.method_option("TEXT_LOSS_WEIGHT"),
                                    self.method_option("IMAGE_LOSS_WEIGHT"))
        return loss, logits

    def forward_backward(self, batch):
        summary = super().forward_backward(batch)
        if (self.batch_idx + 1) == self.num_batches:
            self.gpa.add_epoch(self.epoch, dict(self.trainable_module().named_parameters()))
            if self.epoch + 1 == self.max_epoch:
                print("Using GPA model for final inference...")
                self.load_aggregate()
        return summary

    # ---------------------------------------------------------------------------------- GPA's result
    def frozen_tensors(self, class_prompts=True):
        """{name: tensor} of what the original's state dict holds besides the prompts: frozen CLIP's towers (not
        the token embedding, which its model does not keep), logit_scale and the class prompts' fixed tokens."""
        trainable = {id(p) for p in self.trainable_module().parameters()}
        tensors = {n: p for n, p in self.model.named_parameters()
                   if id(p) not in trainable and not n.startswith("text_encoder.token_embedding.")}
        if class_prompts:
            prompts = self.model.prompt_learner.class_prompts
            tensors.update(token_prefix=prompts.token_prefix, token_suffix=prompts.token_suffix)
        return tensors

    @torch.no_grad()
    def load_aggregate(self):
        for name, param in self.trainable_module().named_parameters():
            param.copy_(self.gpa.sums[name])
        if self.method_option("GPA_WHOLE_MODEL"):
            self.aggregate_frozen()

    @torch.no_grad()
    def aggregate_frozen(self, class_prompts=True):
        for tensor in self.frozen_tensors(class_prompts).values():
            tensor.copy_(weighted_sum(tensor, self.gpa.weights))

    def method_resume_state(self):
        return {"gpa_sums": self.gpa.state()}

    def restore_method_resume_state(self, state):
        self.gpa.restore((state or {}).get("gpa_sums"))

    # ------------------------------------------------------------------------------------ checkpoints
    def adapt_checkpoint_state(self, state_dict):
        if is_full_model_state(state_dict):
            # The official checkpoint holds the whole model after GPA: its frozen CLIP (an ulp away from the
            # weights file) is what its evaluation runs with, so it is loaded too, as there.
            prompts = from_original_state("PromptSRC", state_dict, self.model)  # checks the backbone first
            with torch.no_grad():
                for target, value in original_frozen_weights(state_dict, self.model).items():
                    target.copy_(value.to(target.dtype))
            self._frozen_loaded = True
            return prompts
        return state_dict

    def load_model(self, directory, epoch=None):
        self._frozen_loaded = False
        super().load_model(directory, epoch)
        loaded = getattr(self, "loaded_checkpoint", None)
        # vlprompt's checkpoints hold the prompts only: a model that ended with GPA gets frozen CLIP's sums back
        # (the class prompts' tokens are this class set's, as the official evaluation rebuilds them).
        if (loaded and not self._frozen_loaded and loaded.get("epoch") == self.cfg.OPTIM.MAX_EPOCH
                and self.method_option("GPA_WHOLE_MODEL")):
            self.aggregate_frozen(class_prompts=False)
