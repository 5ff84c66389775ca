"""DePT: Decoupled Prompt Tuning (Zhang et al., "DePT: Decoupled Prompt Tuning", CVPR 2024), once, as a head
over any prompt method.

A prompt method's model gives image features f [B, E] and class text features g [K, E] (or one set per image,
[B, K, E], for CoCoOp), unnormalised (`PromptedCLIP.features`), and its similarity logits z_sim from them.
DePT adds, over the classes it is trained on (the base classes; on ImageNet also "all"):

    channel-wise transforms (FiLM)  phi_img(x) = a_img * x + b_img,  phi_text likewise  (a = 1, b = 0 at start)
    a linear probe                  h(x) = W x + c  over those classes

    training:  L = (1 - lam) CE(z_sim, y) + lam CE(h([phi_text(g_y); phi_img(f)]), [y; y])
               (2B samples: each image's class text feature and the image feature; lam = LINEAR_PROBE.WEIGHT)
    test, on the classes the probe was trained on:  z = (1 - lam) z_sim + lam h(phi_img(f))
               (LINEAR_PROBE.TEST_TIME_FUSION; without it, h(phi_img(f)) alone)
    test, on other classes (new):  z = z_sim, the prompt method's own logits

With LINEAR_PROBE.TYPE "similarity" the probe is the scaled cosine of the transformed features instead.

The staged learning rates of DePT's optimiser: the parts whose names contain an entry of OPTIM.NEW_LAYERS
(FiLM and the probe) learn at LR * LR_EXP, the prompts at (LR * LR_EXP) * (BASE_LR_MULT / LR_EXP), the same
warm-up and cosine schedule applying to both groups (logit_scale, frozen, is in neither).

A prompt trainer gets DePT by registration (trainers/coop.py holds the official names' ones):

    @TRAINER_REGISTRY.register()
    class ExtrasLinearProbeCoOp(DecoupledHead, CoOp):
        CHECKPOINT_NAME = "PromptLearner"

The prompt method's model, loss terms, config node and precision stay its own; its model must expose
`features`. Checkpoints hold the trainable tensors under the official names (prompt_learner.*, film_lp_img.*,
film_lp_text.*, linear_probe_proj.*), so the official full-model checkpoints load as they are.
"""
import os
import os.path as osp

import torch
import torch.nn as nn
import torch.nn.functional as F

from .classifier import PromptedCLIP
from .config import ensure_node, set_default
from .engine import build_optimizer
from .errors import ConfigValueError
from .resume import checkpoint_epochs

# DePT's own keys, under the official nodes, with its train.py's defaults.
HEAD_CONFIG = {
    "LINEAR_PROBE": {"TYPE": "linear", "WEIGHT": 0.7, "TEST_TIME_FUSION": True},
    "FILM": {"LINEAR_PROBE": True},
}
PROBE_TYPES = ("linear", "similarity")
HEAD_PARTS = ("film_lp_img", "film_lp_text", "linear_probe_proj")


class FiLM(nn.Module):
    """Channel-wise affine transform a * x + b, a = 1 and b = 0 at the start (no random draw)."""

    def __init__(self, dim):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return self.scale.to(x.dtype) * x + self.bias.to(x.dtype)


def has_head(subsample, dataset_name):
    """The official rule: the probe exists for the classes it is trained on, i.e. under SUBSAMPLE_CLASSES base,
    or "all" on an ImageNet dataset (the cross-dataset source, and its variants when evaluated)."""
    return subsample == "base" or (subsample == "all" and "ImageNet" in dataset_name)


class DecoupledHeadCLIP(PromptedCLIP):
    """A prompt method's model (`prompt_model`) with DePT's head over its features."""

    def __init__(self, prompt_model, num_head_classes=None, weight=0.7, fusion=True, film=True, probe="linear"):
        nn.Module.__init__(self)  # the towers are the prompt model's
        self._static_cache = None
        self.prompt_model = prompt_model
        self.weight, self.fusion, self.probe = weight, fusion, probe
        self.head_active = num_head_classes is not None
        width = prompt_model.text_encoder.output_dim
        self.film_lp_img = FiLM(width) if film else nn.Identity()
        self.film_lp_text = FiLM(width) if film else nn.Identity()
        self.linear_probe_proj = None
        if self.head_active and probe == "linear":
            self.linear_probe_proj = nn.Linear(width, num_head_classes).to(prompt_model.dtype)

    # the prompt model's towers, prompts and scale
    text_encoder = property(lambda self: self.prompt_model.text_encoder)
    image_encoder = property(lambda self: self.prompt_model.image_encoder)
    logit_scale = property(lambda self: self.prompt_model.logit_scale)
    prompt_learner = property(lambda self: self.prompt_model.prompt_learner)

    def static_inputs(self):
        return self.prompt_model.static_inputs()

    def features(self, image, static):
        return self.prompt_model.features(image, static)

    def probe_logits(self, image_features, text_features=None, label=None):
        """h over the transformed features: of the image features alone, or (training: `label` given) of each
        image's class text feature and the image feature, 2B rows. Returns (logits, their labels)."""
        image_features = self.film_lp_img(image_features)
        if text_features is not None:
            text_features = self.film_lp_text(text_features)
        if self.probe == "similarity":
            return self.prompt_model.logits_from_features(image_features, text_features), label
        if label is None:
            return self.linear_probe_proj(image_features), None
        if text_features.dim() == 3:  # one set of class features per image
            own = text_features[torch.arange(len(label), device=label.device), label]
        else:
            own = text_features[label]
        return self.linear_probe_proj(torch.cat([own, image_features])), torch.cat([label, label])

    def logits(self, image, static):
        image_features, text_features = self.features(image, static)
        similarity = self.prompt_model.logits_from_features(image_features, text_features)
        if not self.head_active:
            return similarity
        probe, _ = self.probe_logits(image_features, text_features if self.probe == "similarity" else None)
        if not self.fusion:
            return probe
        return (1 - self.weight) * similarity + self.weight * probe

    def training_logits(self, image, label):
        """(z_sim [B, K], the probe's logits, their labels, (f, g)) for a training batch."""
        image_features, text_features = self.features(image, self.static_inputs())
        similarity = self.prompt_model.logits_from_features(image_features, text_features)
        probe, probe_label = self.probe_logits(image_features, text_features, label)
        return similarity, probe, probe_label, (image_features, text_features)


class HeadParts(nn.Module):
    """The trainable tensors of a DePT model under the official names: prompt_learner.*, film_lp_img.*,
    film_lp_text.*, linear_probe_proj.* (the modules are the model's own)."""

    def __init__(self, prompt_learner, model):
        super().__init__()
        self.prompt_learner = prompt_learner
        for name in HEAD_PARTS:
            part = getattr(model, name)
            if part is not None and any(True for _ in part.parameters()):
                self.add_module(name, part)


def staged_param_groups(parts, optim_cfg):
    """DePT's two groups over `parts`' children: those whose name contains an entry of OPTIM.NEW_LAYERS learn at
    LR * LR_EXP (the optimiser's default), the rest at (LR * LR_EXP) * (BASE_LR_MULT / LR_EXP), computed in
    that order as the official does. Returns (param groups, [(lr, child names)] of each group)."""
    new_layers = optim_cfg.NEW_LAYERS
    new_layers = [new_layers] if isinstance(new_layers, str) else list(new_layers)
    exp = optim_cfg.get("LR_EXP", 1.0)
    lr = optim_cfg.LR * exp
    base_lr = lr * (optim_cfg.BASE_LR_MULT / exp)
    base, new, base_names, new_names = [], [], [], []
    for name, module in parts.named_children():
        is_new = any(layer in name for layer in new_layers)
        (new if is_new else base).extend(module.parameters())
        (new_names if is_new else base_names).append(name)
    return [{"params": base, "lr": base_lr}, {"params": new}], [(base_lr, base_names), (lr, new_names)], lr


class DecoupledHead:
    """Mixin that puts DePT's head on a prompt trainer: `class X(DecoupledHead, PromptMethodTrainer)`."""

    @classmethod
    def add_config(cls, cfg):
        super().add_config(cfg)
        for node_name, keys in HEAD_CONFIG.items():
            node = ensure_node(cfg, node_name)
            for key, value in keys.items():
                set_default(node, key, value)
        # DePT's ratio of the head's learning rate to the prompts' (its train.py sets 6.5; its configs here do
        # too). 1.0 is Dassl's own staged learning rate, so the key changes nothing for any other method.
        if "LR_EXP" not in cfg.OPTIM:
            cfg.OPTIM.LR_EXP = 1.0

    @classmethod
    def validate_config(cls, cfg):
        parent = getattr(super(), "validate_config", None)
        if parent is not None:
            parent(cfg)
        probe = cfg.TRAINER.get("LINEAR_PROBE", {})
        kind = probe.get("TYPE", HEAD_CONFIG["LINEAR_PROBE"]["TYPE"])
        if kind not in PROBE_TYPES:
            raise ConfigValueError(f"TRAINER.LINEAR_PROBE.TYPE {kind!r} is not allowed: expected one of "
                                   f"{', '.join(PROBE_TYPES)}")
        weight = probe.get("WEIGHT", HEAD_CONFIG["LINEAR_PROBE"]["WEIGHT"])
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
            raise ConfigValueError(f"TRAINER.LINEAR_PROBE.WEIGHT {weight!r} is not allowed: expected a number "
                                   "between 0 and 1")
        exp = cfg.OPTIM.get("LR_EXP", 1.0)
        if isinstance(exp, bool) or not isinstance(exp, (int, float)) or exp <= 0:
            raise ConfigValueError(f"OPTIM.LR_EXP {exp!r} is not allowed: expected a number > 0")

    def head_option(self, node, key):
        return self.cfg.TRAINER.get(node, {}).get(key, HEAD_CONFIG[node][key])

    def build_custom_model(self, clip_model, classnames):
        prompt_model = super().build_custom_model(clip_model, classnames)
        head = has_head(self.cfg.DATASET.get("SUBSAMPLE_CLASSES", "all"), self.cfg.DATASET.NAME)
        return DecoupledHeadCLIP(prompt_model, len(classnames) if head else None,
                                 weight=self.head_option("LINEAR_PROBE", "WEIGHT"),
                                 fusion=bool(self.head_option("LINEAR_PROBE", "TEST_TIME_FUSION")),
                                 film=bool(self.head_option("FILM", "LINEAR_PROBE")),
                                 probe=self.head_option("LINEAR_PROBE", "TYPE"))

    def trainable_module(self):
        parts = getattr(self, "_head_parts", None)
        if parts is None or parts[0] is not self.model:
            parts = (self.model, HeadParts(super().trainable_module(), self.model))
            self._head_parts = parts
        return parts[1]

    def make_optimizer(self, trainable):
        optim_cfg = self.cfg.OPTIM
        if not optim_cfg.STAGED_LR:
            print("Note: OPTIM.STAGED_LR is False, so DePT's head learns at OPTIM.LR like the prompts (DePT's "
                  "configs set STAGED_LR True with LR_EXP 6.5, as its train.py does)")
            return super().make_optimizer(trainable)
        groups, infos, lr = staged_param_groups(trainable, optim_cfg)
        plain = optim_cfg.clone()
        plain.defrost()
        plain.STAGED_LR = False  # the groups are given
        plain.LR = lr
        print("Learning rate of parameters:")
        for group_lr, layers in infos:
            print(f"lr: {group_lr}, layers: {layers}")
        return build_optimizer(trainable, plain, param_groups=groups)

    def train(self):
        if not self.model.head_active:
            raise ConfigValueError(
                f"{type(self).__name__} trains its linear probe on the classes it is trained on: DATASET."
                f"SUBSAMPLE_CLASSES {self.cfg.DATASET.get('SUBSAMPLE_CLASSES', 'all')!r} on {self.cfg.DATASET.NAME} "
                "has none (expected base, or all on an ImageNet dataset, as the official code)")
        super().train()

    def compute_loss(self, image, label):
        similarity, probe, probe_label, features = self.model.training_logits(image, label)
        weight = self.model.weight
        loss = (1 - weight) * F.cross_entropy(similarity, label) + weight * F.cross_entropy(probe, probe_label)
        extra = self.prompt_method_loss(*features)
        return (loss if extra is None else loss + extra), similarity

    def prompt_method_loss(self, image_features, text_features):
        """A prompt method's own term beyond cross-entropy, added to DePT's loss (KgCoOp's W * L_kg), or None."""
        return None

    # ---------------------------------------------------------------------------------------- checkpoints
    def load_model(self, directory, epoch=None):
        if directory and epoch is not None and epoch < 0:  # DePT's runner loads "the last epoch" (-1)
            folder = osp.join(directory, self.CHECKPOINT_NAME)
            epochs = checkpoint_epochs(folder)
            if epochs:
                epoch = max(epochs)
        super().load_model(directory, epoch)

    def adapt_checkpoint_state(self, state_dict):
        # The official file holds the whole model, vlprompt's the trainable tensors, under the same names: keep
        # what is trainable here (on new classes that leaves the probe out, as the official's non-strict load).
        expected = self.trainable_module().state_dict()
        state = {k: v for k, v in state_dict.items() if k in expected}
        weight = state.get("linear_probe_proj.weight")
        rows = self.model.linear_probe_proj.out_features if self.model.linear_probe_proj is not None else None
        if weight is not None and rows is not None and weight.shape[0] != rows:
            keep = self.kept_probe_rows(weight.shape[0])
            state["linear_probe_proj.weight"] = weight[keep]
            state["linear_probe_proj.bias"] = state["linear_probe_proj.bias"][keep]
        return state

    def kept_probe_rows(self, rows):
        """The probe's rows for the classes of an ImageNet variant with fewer classes (ImageNet-A/-R: 200 of
        1000): ImageNet's class list in classnames.txt order, kept where the variant has that class's folder."""
        from .data.imagenet import read_classnames

        dataset = self.dm.dataset
        wnids = list(read_classnames(osp.join(dataset.dataset_dir, "classnames.txt")))
        present = set(os.listdir(dataset.image_dir))
        keep = torch.tensor([w in present for w in wnids])
        if len(wnids) != rows or int(keep.sum()) != self.num_classes:
            raise ConfigValueError(f"The checkpoint's linear probe has {rows} classes and {self.cfg.DATASET.NAME} "
                                   f"{self.num_classes}: they cannot be matched through classnames.txt")
        print(f"The linear probe is clipped to the {self.num_classes} classes of {self.cfg.DATASET.NAME}")
        return keep
