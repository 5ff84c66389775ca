"""ProGrad: Prompt-aligned Gradient (Zhu, Niu, Han, Wu, Zhang, "Prompt-aligned Gradient for Prompt
Tuning", ICCV 2023).

CoOp's prompt and classifier. Each step has two gradients of the context: the domain direction
G_d = grad L_ce (cross-entropy with the labels) and the general direction G_g = grad L_kl, the
distillation loss towards zero-shot CLIP with the dataset's hand-crafted prompt (the teacher), at
temperature T:

    L_kl = mean_b  - sum_k softmax(z_zs / T)_k * log_softmax(z / T)_k * T^2

(the original's "KL": a soft-target cross-entropy, which has KL's gradient). Where they conflict, only
the part of G_d that does not oppose G_g is kept, per parameter tensor:

    G = G_d - lambda * (G_d . G_g / |G_g|) * G_g / |G_g|    if cos(G_d, G_g) < 0,    else G = G_d

and the optimizer steps with G (lambda = LOSS.LAMBDA; lambda 1 removes the conflicting component). This
is the update of the original's Dassl fork (`prograd_backward_and_update`), implemented here in the
trainer so that it runs on the built-in engine and on any Dassl. Evaluation is CoOp's.

Keys: TRAINER.COOP (CoOp's) and the original's top-level LOSS node (NAME "prograd", T, LAMBDA; GM and
ALPHA are accepted and unused, as there). With CTX_INIT set (the original's flag) the context is N_CTX
vectors whose last words are the dataset's hand-crafted prompt and the rest zeros, e.g. 12 zeros then
"a photo of a" for N_CTX 16 on Caltech101. The teacher is always float32 (its image tower is this model's
own when that is float32, else a float32 copy); its class features are encoded once, at build, for the
class set. Seed for seed the original's model: the teacher is a second CLIP, built (and drawing random
numbers) right after the first and before the context.
"""
import torch
import torch.nn.functional as F

from vlprompt.classifier import TextPromptedCLIP, scaled_cosine_logits
from vlprompt.clip_loader import load_clip, tokenize
from vlprompt.config import set_default
from vlprompt.engine import CN, TRAINER_REGISTRY, compute_accuracy
from vlprompt.errors import ConfigValueError
from vlprompt.prompted_clip import PromptedVisionEncoder
from vlprompt.prompts import ClassPrompts, ContextPrompts, context_from_phrase, learnable_context
from vlprompt.resume import kill_point
from vlprompt.templates import CUSTOM_TEMPLATES, DEFAULT_TEMPLATE
from vlprompt.trainer import PromptTrainer

# The original's templates: CoOp's, with its own for five datasets.
HAND_CRAFTED_TEMPLATES = {
    **CUSTOM_TEMPLATES,
    "OxfordPets": "a type of pet, a photo of a {}.",
    "OxfordFlowers": "a type of flower, a photo of a {}.",
    "FGVCAircraft": "a type of aircraft, a photo of a {}.",
    "DescribableTextures": "a texture of {}.",
    "Food101": "a type of food, a photo of {}.",
}


def hand_crafted_template(dataset_name):
    return HAND_CRAFTED_TEMPLATES.get(dataset_name, DEFAULT_TEMPLATE)


def context_phrase(template):
    """The words CTX_INIT initialises the context from: the template without " {}." ("a photo of a")."""
    return template.replace(" {}.", "").replace("_", " ")


def prograd_context(text_encoder, n_ctx, phrase):
    """The original's CTX_INIT context: [n_ctx, width] zeros whose last n_words rows are the first n_words
    token embeddings of the phrase (n_words counts space-separated words, as there), and the prompt prefix
    "X .. X <phrase>" with n_ctx - n_words placeholders."""
    n_words = len(phrase.split(" "))
    if n_ctx < n_words:
        raise ConfigValueError(f"TRAINER.COOP.N_CTX {n_ctx} is not allowed: the context must hold the {n_words} "
                               f"words of the hand-crafted prompt {phrase!r} it starts from")
    words, _ = context_from_phrase(text_encoder, phrase, n_words)
    ctx = torch.zeros(n_ctx, text_encoder.width, dtype=text_encoder.dtype)
    ctx[n_ctx - n_words:] = words
    prefix = " ".join(["X"] * (n_ctx - n_words)) + " " + phrase
    print(f'Initial context: "{prefix}"')
    print(f"Number of context words (tokens): {n_ctx}")
    return ctx, prefix


def soft_target_kl(logits, teacher_logits, temperature):
    """The original's L_kl: mean over the batch of -sum_k p_zs,k log p_k at temperature T, times T^2."""
    teacher = F.softmax(teacher_logits / temperature, dim=-1)
    return (-teacher * F.log_softmax(logits / temperature, -1) * temperature * temperature).sum(1).mean()


def project_conflicting(domain_grad, general_grad, lam):
    """The fork's rule for one parameter tensor: G_d - lam * (G_d . u) u with u = G_g / |G_g| where
    cos(G_d, G_g) < 0, else G_d. A zero gradient gives a NaN cosine, which is not < 0: G_d is kept."""
    unit = general_grad / torch.linalg.norm(general_grad)
    cosine = torch.dot((domain_grad / torch.linalg.norm(domain_grad)).flatten(), unit.flatten())
    projected = domain_grad - lam * torch.dot(domain_grad.flatten(), unit.flatten()) * unit
    return torch.where(cosine < 0, projected, domain_grad)  # no host synchronisation


class ProGradCLIP(TextPromptedCLIP):
    """CoOp's classifier, plus the zero-shot teacher: its class features `zero_shot_text` (float32,
    normalised) and, when this model's image tower is not float32, a float32 one of its own."""

    def __init__(self, clip_model, classnames, template, second_clip, n_ctx=16, ctx_init=True, csc=False,
                 class_token_position="end"):
        """second_clip: a callable that loads the teacher's CLIP (its construction draws random numbers
        where the original's does, before the context)."""
        super().__init__(clip_model)
        teacher = second_clip().float()
        texts = [template.format(name.replace("_", " ")) for name in classnames]
        print(f"Prompts: {texts}")
        with torch.no_grad():  # as the original: by CLIP's encode_text, once, on the CPU, in float32, normalised once
            features = teacher.encode_text(tokenize(texts))
            features = features / features.norm(dim=-1, keepdim=True)
        self.register_buffer("zero_shot_text", features, persistent=False)
        own_fp32 = self.image_encoder.dtype == torch.float32
        self.zero_shot_image_encoder = None if own_fp32 else PromptedVisionEncoder(teacher)
        del teacher
        if ctx_init:
            if isinstance(ctx_init, str) and ctx_init.replace("_", " ") != context_phrase(template):
                print(f"Note: ProGrad initialises the context from the dataset's hand-crafted prompt "
                      f"{context_phrase(template)!r} whenever CTX_INIT is set, as the original does (CTX_INIT "
                      f"{ctx_init!r} only switches that on)")
            ctx, prompt_prefix = prograd_context(self.text_encoder, n_ctx, context_phrase(template))
        else:
            ctx, n_ctx, prompt_prefix = learnable_context(self.text_encoder, n_ctx, "",
                                                          n_cls=len(classnames) if csc else None)
        self.prompt_learner = ContextPrompts(ctx, ClassPrompts(self.text_encoder, classnames, prompt_prefix, n_ctx,
                                                               class_token_position))

    def zero_shot_logits(self, image, image_features=None):
        """The teacher's logits exp(s) * cos(f(x), w_k^zs), in float32. image_features: this model's own
        f(x), reused when it was computed in float32 (then it is the teacher's, the same weights)."""
        with torch.no_grad(), torch.autocast(device_type=image.device.type, enabled=False):
            if self.zero_shot_image_encoder is not None:
                image_features = self.zero_shot_image_encoder(image.float())
            elif image_features is None or image_features.dtype != torch.float32:
                image_features = self.image_encoder(image.float())
            return scaled_cosine_logits(image_features, self.zero_shot_text, self.logit_scale.float())

    def training_outputs(self, image):
        """(student logits, teacher logits) of one training step."""
        image_features = self.image_encoder(image)
        logits = scaled_cosine_logits(image_features, self.static_inputs(), self.logit_scale)
        return logits, self.zero_shot_logits(image, image_features)


LOSS_DEFAULTS = {  # the original's top-level LOSS node (ProGrad reads NAME, T and LAMBDA)
    "GM": False,
    "NAME": "prograd",  # the only loss ProGrad has (the original's default "" makes it raise)
    "ALPHA": 0.0,
    "T": 1.0,  # distillation temperature
    "LAMBDA": 1.0,  # how much of the conflicting component is removed (the paper: 0.8 for some settings)
}


@TRAINER_REGISTRY.register()
class ProGrad(PromptTrainer):
    CONFIG_NODE = "COOP"  # the original's keys: CoOp's node and the LOSS node
    CHECKPOINT_NAME = "prompt_learner"

    CONFIG_DEFAULTS = {
        "N_CTX": 16,  # number of context vectors
        "CSC": False,  # class-specific context (random init only)
        "CTX_INIT": "",  # set (the original: True): the last words start as the dataset's hand-crafted prompt
        "PREC": "fp16",  # fp16, fp32, amp (vlprompt adds bf16)
        "CLASS_TOKEN_POSITION": "end",  # end, middle or front
    }
    OTHER_CONFIG_DEFAULTS = {"LOSS": LOSS_DEFAULTS}  # keys ProGrad owns outside TRAINER.COOP

    @classmethod
    def add_config(cls, cfg):
        super().add_config(cfg)
        for name, defaults in cls.OTHER_CONFIG_DEFAULTS.items():
            if name not in cfg:
                cfg[name] = CN()
            for key, value in defaults.items():
                set_default(cfg[name], key, value)

    @classmethod
    def validate_config(cls, cfg):
        loss = cfg.get("LOSS", LOSS_DEFAULTS)
        if loss.get("NAME", "prograd") != "prograd":
            raise ConfigValueError(f"LOSS.NAME {loss.get('NAME')!r} is not allowed for ProGrad: expected 'prograd'")
        for key, low in (("T", "> 0"), ("LAMBDA", ">= 0")):
            value = loss.get(key, LOSS_DEFAULTS[key])
            bad = isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
            if bad or (key == "T" and value == 0):
                raise ConfigValueError(f"LOSS.{key} {value!r} is not allowed: expected a number {low}")
        node = cfg.TRAINER.get(cls.CONFIG_NODE, {})
        if node.get("CTX_INIT", "") and isinstance(node.get("N_CTX", 16), int):
            phrase = context_phrase(hand_crafted_template(cfg.DATASET.NAME))
            if node.get("N_CTX", 16) < len(phrase.split(" ")):
                raise ConfigValueError(f"TRAINER.COOP.N_CTX {node.get('N_CTX')} is not allowed: with CTX_INIT the "
                                       f"context must hold the {len(phrase.split(' '))} words of {phrase!r}")

    def after_train(self):
        # The fork's end-of-training line, which the original parse_test_res.py waits for before reading
        # "* accuracy" (Dassl's own "Finish training", which CoOp's parser waits for, follows).
        print("Finished training")
        super().after_train()

    def build_custom_model(self, clip_model, classnames):
        c = self.method_cfg
        return ProGradCLIP(clip_model, classnames, hand_crafted_template(self.cfg.DATASET.NAME),
                           lambda: load_clip(self.cfg.MODEL.BACKBONE.NAME), c.N_CTX, c.CTX_INIT, c.CSC,
                           c.CLASS_TOKEN_POSITION)

    @property
    def loss_cfg(self):
        return self.cfg.get("LOSS", LOSS_DEFAULTS)

    def compute_loss(self, image, label):
        """(L_ce, L_kl, logits) of one training batch."""
        logits, teacher_logits = self.model.training_outputs(image)
        return F.cross_entropy(logits, label), soft_target_kl(logits, teacher_logits, self.loss_cfg.T), logits

    def forward_backward(self, batch):
        kill_point(f"train-batch-{self.epoch + 1}-{self.batch_idx + 1}")
        image, label = self.parse_batch_train(batch)
        with self.precision.autocast():
            xe_loss, kl_loss, logits = self.compute_loss(image, label)
        self.prograd_backward_and_update(xe_loss, kl_loss, self.loss_cfg.LAMBDA)
        summary = {"xe_loss": xe_loss.item(), "kl_loss": kl_loss.item(),
                   "acc": compute_accuracy(logits, label)[0].item()}
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    def prograd_backward_and_update(self, xe_loss, kl_loss, lam):
        """G_g from L_kl, G_d from L_ce, the projection per parameter tensor, then the optimizer step (the
        fork's order: NaN/Inf check and backward of L_kl first). Under amp both are loss-scaled alike; the
        projection is linear in G_d, so the scaler's unscaling stays exact."""
        scaled = self.scaler.scale if self.scaler is not None else (lambda loss: loss)
        params = [p for p in self.trainable_module().parameters() if p.requires_grad]
        self.check_finite(kl_loss)
        self.model_zero_grad()
        scaled(kl_loss).backward(retain_graph=True)
        general = [p.grad.clone() for p in params]
        self.model_zero_grad()
        self.check_finite(xe_loss)
        scaled(xe_loss).backward()
        for param, general_grad in zip(params, general):
            param.grad = project_conflicting(param.grad, general_grad, lam)
        if self.scaler is None:
            self.model_update()
            return
        for name in self.get_model_names():
            self.scaler.step(self.registered[name][1])
        self.scaler.update()
