"""MetaPrompt (Zhao, Wang et al., "Learning Domain Invariant Prompt for Vision-Language Models", IEEE TIP 2024).

Deep prompts on both CLIP towers, placed as in IVLP: text prompts P_t [L, n_ctx, text width] fill the
n_ctx slots of "X X <class name>." after SOT at the input (positional embedding added) and replace those
positions before every block i < L; vision prompts P_v [L, n_pro, vision width] are appended after the
patch tokens at the input (no positional embedding, before ln_pre) and replace the last n_pro tokens
before every block i < L. Both start as N(0, 0.02^2); CLIP is frozen.

The prompted encoders are never matched against each other: each one is paired with the *frozen* encoder
of the other modality (the "asymmetric contrastive loss"). With s = exp(CLIP's logit scale), f / f* the
prompted / frozen image encoder, g the prompted text encoder and g* the frozen text encoder on the
dataset's hand-crafted template (ImageNet: the mean of 8 templates):

    l_i(x, c)   = s * cos(f(x),  g*(c))      prompted image vs frozen text classifier
    l_t(x, c)   = s * cos(f*(x), g(c))       frozen image vs prompted text
    l_mix       = (l_i + l_t) / 2            prediction: argmax_c l_mix
    L_in        = CE(l_mix, y) + CE(l_i, y) + CE(l_t, y)

Every training batch makes two updates:
1. in-domain: one optimizer step (SGD) on both prompts with L_in;
2. domain split (meta-learning, first order) on one prompt tensor θ while the other stays fixed:
   - base-to-new, TRAINER.META.SPLIT "class": θ = P_t and the loss is CE(l_t) on a class subset. All
     training classes are shuffled (Python's `random`, re-drawn every batch) and cut into CLASS_SPLITS
     groups of ceil(C / CLASS_SPLITS); episode i meta-tests on group i (its images and classes, labels
     re-indexed) after an inner step on the other groups;
   - domain generalization, SPLIT "domain": θ = P_v and the loss is CE(l_i) over all classes; episode i
     meta-tests on the batch's images of source domain i after an inner step on the other domains';
   with α the current learning rate and β = META_STEP:
       θ'_i = θ - α ∇L_train,i(θ)            inner step on the meta-train part
       g_i  = ∇L_test,i(θ'_i)                first order: no gradient through the inner step
       θ   <- θ - α β Σ_i g_i                summed over episodes, applied directly (no momentum or decay)
   An episode is skipped when its meta-test part has no image (class split: or fewer than 2 classes) or
   its meta-train part has no image.

TRAINER.META.META_UPDATE says how the meta update is carried out:
- "released" (default; reproduces the released numbers): as the official code. The inner step is a full
  optimizer step (momentum and weight decay, and it advances the momentum buffer), and because of the
  code's restore aliasing (after the first restore the parameter shares storage with the snapshot) only
  the first episode's inner step is undone: the inner steps of later episodes stay in θ before the outer
  update. In the domain split, episodes are the domain ids 0..N-1, N = number of distinct domains in
  the batch (the code's assumption; a batch missing a middle id drops the images of the higher ids).
- "first_order": the clean first-order update written above: plain gradient inner step, θ restored after
  every episode, optimizer state untouched, one episode per domain present in the batch.
TRAINER.META.LEGACY_ZERO_GRAD (default False): the official environment (torch 1.10) zeroed gradients
instead of dropping them, so during an inner step the fixed prompt still had a zero gradient and SGD
applied weight decay and momentum to it. True reproduces that; False (the default) leaves the fixed
prompt untouched by the meta update, whatever the torch version.

Registered as MetaPrompt (split from TRAINER.META.SPLIT) and under the official names Meta_B2N (class
split) and Meta_DG (domain split), so the original command lines and configs (TRAINER.META.*) work.
"""
import random
from collections import namedtuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from vlprompt.classifier import PromptedCLIP, scaled_logits
from vlprompt.engine import TRAINER_REGISTRY, compute_accuracy
from vlprompt.errors import ConfigValueError
from vlprompt.prompts import ClassPrompts, encode_texts, random_context
from vlprompt.trainer import PromptTrainer

# The frozen text classifier's templates, as in the official code: no trailing period, and Food101's
# differs from CoOp's. The class names are used as the dataset gives them (the code replaces "_" by " "
# only in the learnable prompts).
TEMPLATES = {
    "Caltech101": "a photo of a {}",
    "OxfordPets": "a photo of a {}, a type of pet",
    "StanfordCars": "a photo of a {}",
    "OxfordFlowers": "a photo of a {}, a type of flower",
    "Food101": "a photo of a {}, a type of food",
    "FGVCAircraft": "a photo of a {}, a type of aircraft",
    "SUN397": "a photo of a {}",
    "DescribableTextures": "{} texture",
    "EuroSAT": "a centered satellite photo of {}",
    "UCF101": "a photo of a person doing {}",
}
DEFAULT_TEMPLATE = "a photo of a {}"  # the DG datasets and any other
IMAGENET_TEMPLATES = [
    "itap of a {}",
    "a bad photo of the {}",
    "a origami {}",
    "a photo of the large {}",
    "a {} in a video game",
    "art of the {}",
    "a photo of the small {}",
    "a photo of a {}",
]

SPLITS = ("class", "domain")
META_UPDATES = ("released", "first_order")
ORIGINAL_CHECKPOINT_KEYS = {"prompt_learner.ctx": "text_ctx", "vision_prompt_learner.ctx": "vision_ctx"}


def frozen_classifier_templates(dataset_name):
    if "ImageNet" in dataset_name:
        return list(IMAGENET_TEMPLATES)
    return [TEMPLATES.get(dataset_name, DEFAULT_TEMPLATE)]


# ---------------------------------------------------------------------------------------- prompts
class PromptLearner(nn.Module):
    """The trainable tensors: text prompts [layers, n_ctx, text width], vision prompts [layers, n_pro,
    vision width] (entry 0 at the input, entry i before block i), and the class prompts they fill."""

    def __init__(self, text_encoder, image_encoder, classnames, n_ctx=2, n_pro=2, layers=12):
        super().__init__()
        depth = min(text_encoder.num_layers, image_encoder.num_layers)
        if not 1 <= layers <= depth:
            raise ConfigValueError(f"TRAINER.META.LAYERS must be between 1 and {depth} (the towers' depth), got {layers}")
        if n_ctx < 1 or n_pro < 1:
            raise ConfigValueError(f"TRAINER.META.N_CTX and N_PRO must be >= 1, got {n_ctx} and {n_pro}")
        # Drawn in the official order: text, then vision.
        self.text_ctx = nn.Parameter(random_context(layers, n_ctx, text_encoder.width, dtype=text_encoder.dtype))
        self.vision_ctx = nn.Parameter(random_context(layers, n_pro, image_encoder.width, dtype=image_encoder.dtype))
        self.class_prompts = ClassPrompts(text_encoder, classnames, " ".join(["X"] * n_ctx), n_ctx)

    @staticmethod
    def deep(ctx):
        """Per-layer prompts for the prompted towers: None at layer 0 (the input prompts), then ctx[i]."""
        return [None] + list(ctx[1:].unbind(0))

    def text_prompts(self, class_idx=None):
        """(token embeddings [C, L, width], EOT positions [C], deep prompts) for all or some classes."""
        prompts = self.class_prompts(self.text_ctx[0])
        eot = self.class_prompts.eot_indices
        if class_idx is not None:
            index = torch.as_tensor(class_idx, dtype=torch.long, device=prompts.device)
            prompts, eot = prompts[index], eot[index]
        return prompts, eot, self.deep(self.text_ctx)

    def vision_prompts(self):
        """(input prompts [n_pro, width], deep prompts)."""
        return self.vision_ctx[0], self.deep(self.vision_ctx)


# ------------------------------------------------------------------------------------------ model
class MetaPromptCLIP(PromptedCLIP):
    def __init__(self, clip_model, classnames, templates, n_ctx=2, n_pro=2, layers=12):
        super().__init__(clip_model)
        self.prompt_learner = PromptLearner(self.text_encoder, self.image_encoder, classnames, n_ctx, n_pro, layers)
        self.classnames = list(classnames)
        self.templates = list(templates)
        self._frozen_classifier = None

    @property
    def num_classes(self):
        return len(self.classnames)

    def scaled(self, image_features, text_features):
        return scaled_logits(image_features, text_features, self.logit_scale)

    def frozen_text_features(self):
        """g*(c), normalised, [C, dim]: fixed, so encoded once (on first use, on the model's device)."""
        device = self.logit_scale.device
        if self._frozen_classifier is None or self._frozen_classifier.device != device:
            with torch.no_grad(), torch.autocast(device.type, enabled=False):
                total = sum(encode_texts(self.text_encoder, [t.format(name) for name in self.classnames])
                            for t in self.templates)
                self._frozen_classifier = F.normalize(total, dim=-1)
        return self._frozen_classifier

    def prompted_text_features(self, class_idx=None):
        """g(c), normalised, for all classes or the listed ones."""
        prompts, eot, deep = self.prompt_learner.text_prompts(class_idx)
        return F.normalize(self.text_encoder(prompts, eot, deep, n_ctx=self.prompt_learner.class_prompts.n_ctx), dim=-1)

    @torch.no_grad()
    def frozen_image_features(self, image):
        """f*(x), normalised: CLIP's own image encoder."""
        return F.normalize(self.image_encoder(image), dim=-1)

    def prompted_image_features(self, image):
        """f(x), normalised."""
        shallow, deep = self.prompt_learner.vision_prompts()
        return F.normalize(self.image_encoder(image, shallow, deep), dim=-1)

    def static_inputs(self):
        """The image-independent parts: (frozen text classifier, prompted text features)."""
        return self.frozen_text_features(), self.prompted_text_features()

    def pair_logits(self, image, static, frozen_image=None):
        """(l_mix, l_i, l_t) for a batch of images."""
        frozen_text, text = static
        if frozen_image is None:
            frozen_image = self.frozen_image_features(image)
        logits_i = self.scaled(self.prompted_image_features(image), frozen_text)
        logits_t = self.scaled(frozen_image, text)
        return 0.5 * (logits_i + logits_t), logits_i, logits_t

    def logits(self, image, static):
        return self.pair_logits(image, static)[0]


# ----------------------------------------------------------------------------------- domain splits
# One side of an episode: rows of the batch, their labels (re-indexed within `classes`), and the classes
# the classifier is restricted to (None: all).
Part = namedtuple("Part", "index labels classes")


def class_split_episodes(labels, n_classes, n_splits=2, rng=random):
    """Episodes [(meta-train Part, meta-test Part)] of the class split (base-to-new).

    All n_classes are shuffled with rng.shuffle and cut into n_splits groups of ceil(C / n_splits);
    episode i meta-tests on group i and meta-trains on the other groups.
    """
    order = list(range(n_classes))
    rng.shuffle(order)
    size = (n_classes - 1) // n_splits + 1
    groups = [order[i * size:(i + 1) * size] for i in range(n_splits)]
    batch = labels.tolist()
    device = labels.device

    def part(classes):
        position = {c: j for j, c in enumerate(classes)}
        rows = [k for k, y in enumerate(batch) if y in position]
        return Part(torch.tensor(rows, dtype=torch.long, device=device),
                    torch.tensor([position[batch[k]] for k in rows], dtype=torch.long, device=device), classes)

    episodes = []
    for i in range(n_splits):
        test = part(groups[i])
        train = part([c for j in range(n_splits) if j != i for c in groups[j]])
        if len(groups[i]) < 2 or len(test.index) == 0 or len(train.index) == 0:
            continue
        episodes.append((train, test))
    return episodes


def domain_split_episodes(labels, domains, contiguous_ids=True):
    """Episodes [(meta-train Part, meta-test Part)] of the leave-one-domain-out split (DG).

    contiguous_ids (the released code): the domains are taken to be 0..N-1, N = number of distinct domain
    ids in the batch; otherwise the ids present are used.
    """
    batch = domains.tolist()
    present = sorted(set(batch))
    ids = list(range(len(present))) if contiguous_ids else present
    device = labels.device

    def part(rows):
        index = torch.tensor(rows, dtype=torch.long, device=device)
        return Part(index, labels[index], None)

    episodes = []
    for d in ids:
        test = [k for k, x in enumerate(batch) if x == d]
        train = [k for k, x in enumerate(batch) if x in ids and x != d]
        if test and train:
            episodes.append((part(train), part(test)))
    return episodes


# ---------------------------------------------------------------------------------------- trainer
@TRAINER_REGISTRY.register()
class MetaPrompt(PromptTrainer):
    CONFIG_NODE = "META"  # the official code's node, so its configs load unchanged
    CONFIG_CHOICES = {**PromptTrainer.CONFIG_CHOICES, "SPLIT": SPLITS, "META_UPDATE": META_UPDATES}
    CHECKPOINT_NAME = "model"  # the official checkpoint folder
    SPLIT = None  # Meta_B2N / Meta_DG fix it; MetaPrompt reads TRAINER.META.SPLIT

    CONFIG_DEFAULTS = {
        "N_CTX": 2,  # text prompt tokens per layer
        "N_PRO": 2,  # vision prompt tokens per layer
        "LAYERS": 12,  # prompted layers (input + blocks 1..LAYERS-1)
        "META_STEP": 0.2,  # beta: outer step = lr * beta * sum of meta gradients
        "PREC": "fp16",  # fp16, fp32, amp (vlprompt adds bf16)
        "SPLIT": "class",  # "class" (base-to-new) or "domain" (domain generalization)
        "META_UPDATE": "released",  # "released" (official code) or "first_order" (clean)
        "LEGACY_ZERO_GRAD": False,  # torch<2 zero_grad: SGD moves the fixed prompt too
        "CLASS_SPLITS": 2,  # class groups of the class split
    }

    @classmethod
    def validate_config(cls, cfg):
        splits = cls.config_option(cfg, "CLASS_SPLITS")
        if not isinstance(splits, int) or isinstance(splits, bool) or splits < 2:
            raise ConfigValueError(f"TRAINER.META.CLASS_SPLITS {splits!r} is not allowed: expected an integer >= 2")

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        self.validate_config(cfg)

    @property
    def split(self):
        return self.SPLIT or self.method_option("SPLIT")

    @property
    def released_update(self):
        return self.method_option("META_UPDATE") == "released"

    def build_data_loader(self):
        super().build_data_loader()
        # DG readers choose the source domains when only the target (or DATASET.ID) is given: record them.
        dataset, data = self.dm.dataset, self.cfg.DATASET
        chosen = (getattr(dataset, "source_domains", None), getattr(dataset, "target_domains", None))
        if chosen[1] and (list(data.SOURCE_DOMAINS), list(data.TARGET_DOMAINS)) != (chosen[0], chosen[1]):
            frozen = self.cfg.is_frozen()
            self.cfg.defrost()
            data.SOURCE_DOMAINS, data.TARGET_DOMAINS = list(chosen[0]), list(chosen[1])
            if frozen:
                self.cfg.freeze()

    def build_custom_model(self, clip_model, classnames):
        c = self.method_cfg
        if self.split == "domain":
            n_domains = len({item.domain for item in self.dm.dataset.train_x})
            if n_domains < 2:
                raise ConfigValueError(f"{self.cfg.TRAINER.NAME} with the domain split needs training data from at least 2 "
                                 f"domains; {self.cfg.DATASET.NAME} has {n_domains} (use a DG dataset, or SPLIT class)")
        templates = frozen_classifier_templates(self.cfg.DATASET.NAME)
        print(f"MetaPrompt: {self.split} split, {self.method_option('META_UPDATE')} meta update; "
              f"frozen classifier template(s) {templates}")
        return MetaPromptCLIP(clip_model, classnames, templates, c.N_CTX, c.N_PRO, c.LAYERS)

    def adapt_checkpoint_state(self, state_dict):
        """Our checkpoints hold text_ctx / vision_ctx; the official ones the whole model."""
        if any(k in state_dict for k in ORIGINAL_CHECKPOINT_KEYS):
            return {new: state_dict[old] for old, new in ORIGINAL_CHECKPOINT_KEYS.items() if old in state_dict}
        return super().adapt_checkpoint_state(state_dict)

    # ------------------------------------------------------------------------------------ training
    def parse_batch_train(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device), batch["domain"].to(self.device)

    def compute_loss(self, image, label, frozen_image=None):
        """L_in and l_mix."""
        logits_mix, logits_i, logits_t = self.model.pair_logits(image, self.model.static_inputs(), frozen_image)
        loss = F.cross_entropy(logits_mix, label) + F.cross_entropy(logits_i, label) + F.cross_entropy(logits_t, label)
        return loss, logits_mix

    def forward_backward(self, batch):
        image, label, domain = self.parse_batch_train(batch)
        loss, logits, frozen_image = self.in_domain_update(image, label)
        meta_loss = self.domain_split_update(image, label, domain, frozen_image)
        summary = {"loss": loss.item(), "acc": compute_accuracy(logits, label)[0].item()}
        if meta_loss is not None:
            summary["loss_meta"] = meta_loss
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    def in_domain_update(self, image, label):
        """Step 1: one optimizer step on both prompts with L_in. Returns (loss, l_mix, f*(x))."""
        with self.precision.autocast():
            frozen_image = self.model.frozen_image_features(image)
            loss, logits = self.compute_loss(image, label, frozen_image)
        self.backward_and_update(loss)
        return loss.detach(), logits.detach(), frozen_image

    def domain_split_update(self, image, label, domain, frozen_image=None):
        """Step 2: the meta update of P_t (class split) or P_v (domain split). Returns the mean meta-test
        loss, or None when no episode could be formed."""
        model, learner = self.model, self.model.prompt_learner
        if self.split == "class":
            episodes = class_split_episodes(label, model.num_classes, int(self.method_option("CLASS_SPLITS")))
            if frozen_image is None:
                with self.precision.autocast():
                    frozen_image = model.frozen_image_features(image)

            def loss_fn(part):  # CE(l_t) with the classifier restricted to the part's classes
                logits = model.scaled(frozen_image[part.index], model.prompted_text_features(part.classes))
                return F.cross_entropy(logits, part.labels)

            return self.meta_update(learner.text_ctx, learner.vision_ctx, episodes, loss_fn)

        episodes = domain_split_episodes(label, domain, contiguous_ids=self.released_update)

        def loss_fn(part):  # CE(l_i) over all classes
            logits = model.scaled(model.prompted_image_features(image[part.index]), model.frozen_text_features())
            return F.cross_entropy(logits, part.labels)

        return self.meta_update(learner.vision_ctx, learner.text_ctx, episodes, loss_fn)

    def meta_update(self, param, fixed, episodes, loss_fn):
        """First-order meta update of `param` over `episodes` (see the module docstring)."""
        if not episodes:
            return None
        lr = self.get_current_lr()
        beta = float(self.method_cfg.META_STEP)
        snapshot = param.detach().clone()
        grads, test_losses = [], []
        for k, (train_part, test_part) in enumerate(episodes):
            with self.precision.autocast():
                train_loss = loss_fn(train_part)
            if self.released_update:
                self.inner_optimizer_step(train_loss, fixed)
            else:
                inner_grad = self.gradient(train_loss, param)
                with torch.no_grad():
                    param.sub_(inner_grad, alpha=lr)
            with self.precision.autocast():
                test_loss = loss_fn(test_part)
            grads.append(self.gradient(test_loss, param))
            test_losses.append(test_loss.item())
            # The released code restores by re-pointing the parameter at the snapshot's storage, so its
            # later "restores" see the inner steps taken since: only the first episode is undone.
            if not self.released_update or k == 0:
                with torch.no_grad():
                    param.copy_(snapshot)
        with torch.no_grad():
            for grad in grads:
                param.sub_(grad, alpha=lr * beta)
        return sum(test_losses) / len(test_losses)

    def gradient(self, loss, param):
        """d loss / d param, first order (loss-scaled under amp; an overflowing gradient counts as zero,
        as the scaler would skip that step)."""
        self.check_finite(loss)
        if self.scaler is None:
            return torch.autograd.grad(loss, param)[0]
        scale = self.scaler.get_scale()
        grad = torch.autograd.grad(loss * scale, param)[0] / scale
        return grad if torch.isfinite(grad).all() else torch.zeros_like(grad)

    def inner_optimizer_step(self, loss, fixed):
        """The released inner step: the training optimizer's step on the meta-updated prompt."""
        self.check_finite(loss)
        for p in self.model.prompt_learner.parameters():
            p.grad = None
        if self.method_option("LEGACY_ZERO_GRAD"):
            fixed.grad = torch.zeros_like(fixed)  # torch<2 zero_grad(): SGD still applies decay and momentum
        if self.scaler is None:
            loss.backward()
            self.model_update()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optim)
            self.scaler.update()


@TRAINER_REGISTRY.register()
class Meta_B2N(MetaPrompt):
    """MetaPrompt with the class split (base-to-new), under the official code's name."""

    SPLIT = "class"


@TRAINER_REGISTRY.register()
class Meta_DG(MetaPrompt):
    """MetaPrompt with the domain split (domain generalization), under the official code's name."""

    SPLIT = "domain"
