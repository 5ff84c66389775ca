"""KgCoOp: Knowledge-guided Context Optimization (Yao, Zhang, Xu, "Visual-Language Prompt Tuning with
Knowledge-guided Context Optimization", CVPR 2023).

CoOp's prompt t_k = [v_1, ..., v_M, CLASS_k, "."] and classifier, trained with cross-entropy plus a pull
of the learned class embeddings w_k = g(t_k) towards the hand-crafted prompt's w_k^clip = g("a photo of a
CLASS_k.") (the dataset's CoOp template), the "knowledge" frozen CLIP already has:

    L = L_ce + W * L_kg,    L_kg = 1 - (1/K) sum_k cos(w_k, w_k^clip)

W is TRAINER.COOP.W (the original's key; its scripts pass 8.0). With CTX_INIT the context is the word
embeddings of "a photo of a" (M = 4), whatever phrase is given: the original's CTX_INIT is a flag.

The hand-crafted features do not change: they are encoded once, when the model is built for its class
set, never per step. As in the original, they come from a second CLIP that stays in float16 even under
PREC fp32 (so an fp32 run compares fp32 features with an fp16 anchor); TRAINER.COOP.HAND_CRAFTED_FP16
False encodes them in the run's precision instead. Evaluation is CoOp's: the learned prompts' logits.

Seed for seed the original's model: its build draws, in this order, CLIP's construction, the context (random
init only), an unused `bias_vectors` [1, 512], a second CLIP's construction, an unused `meta_net`
Linear(512, 512) and an unused `adapter` (Linear 512->128, 128->512). vlprompt makes the same draws in
the same order and keeps only what is used; the original's checkpoints (with bias_vectors and meta_net
keys) load, the unused keys are dropped.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from vlprompt.classifier import TextPromptedCLIP
from vlprompt.clip_loader import load_clip, tokenize
from vlprompt.dept import DecoupledHead
from vlprompt.engine import TRAINER_REGISTRY
from vlprompt.errors import ConfigValueError
from vlprompt.prompts import ClassPrompts, ContextPrompts, learnable_context, random_context
from vlprompt.templates import CUSTOM_TEMPLATES, DEFAULT_TEMPLATE
from vlprompt.trainer import PromptTrainer

# The original's templates: CoOp's, except DescribableTextures.
HAND_CRAFTED_TEMPLATES = {**CUSTOM_TEMPLATES, "DescribableTextures": "a photo of a {}, a type of texture."}
CONTEXT_PHRASE = "a photo of a"  # the original initialises from this phrase whenever CTX_INIT is set
ORIGINAL_UNUSED_WIDTH = 512  # the size of the original's unused bias_vectors/meta_net/adapter (draws only)
ORIGINAL_UNUSED_KEYS = ("bias_vectors", "meta_net.")  # in the original's checkpoints, never used


def hand_crafted_template(dataset_name):
    return HAND_CRAFTED_TEMPLATES.get(dataset_name, DEFAULT_TEMPLATE)


def knowledge_guidance_loss(text_features, hand_crafted):
    """L_kg = 1 - mean_k cos(w_k, w_k^clip) (the original's CosineSimilarity(dim=1, eps=1e-7) on the
    normalised features)."""
    text_features = text_features / text_features.norm(dim=-1, keepdim=True)
    return 1.0 - F.cosine_similarity(text_features, hand_crafted, dim=1, eps=1e-7).mean()


def _original_unused_module_draws(kind):
    """Advance the generator as the original's construction of its unused modules does (values dropped)."""
    with torch.no_grad():
        if kind == "meta_net":
            nn.Linear(ORIGINAL_UNUSED_WIDTH, ORIGINAL_UNUSED_WIDTH)
        else:  # the adapter: two bias-free Linear layers
            nn.Linear(ORIGINAL_UNUSED_WIDTH, ORIGINAL_UNUSED_WIDTH // 4, bias=False)
            nn.Linear(ORIGINAL_UNUSED_WIDTH // 4, ORIGINAL_UNUSED_WIDTH, bias=False)


class KgCoOpCLIP(TextPromptedCLIP):
    """CoOp's classifier, plus the hand-crafted class features w^clip (buffer `hand_crafted`, normalised)."""

    def __init__(self, clip_model, classnames, template, second_clip, n_ctx=16, ctx_init=True, csc=False,
                 class_token_position="end", hand_crafted_fp16=True, device="cpu"):
        """second_clip: a callable that loads the second CLIP (its construction draws random numbers where
        the original's does); hand_crafted_fp16: encode w^clip with its float16 weights (the original), else
        with this model's text tower; device: where w^clip is encoded (the original: the training GPU)."""
        super().__init__(clip_model)
        phrase = CONTEXT_PHRASE if ctx_init else ""
        if isinstance(ctx_init, str) and ctx_init and ctx_init.replace("_", " ") != CONTEXT_PHRASE:
            print(f"Note: KgCoOp initialises the context from {CONTEXT_PHRASE!r} whenever CTX_INIT is set, as the "
                  f"original does (CTX_INIT {ctx_init!r} only switches that on)")
        ctx, n_ctx, prompt_prefix = learnable_context(self.text_encoder, n_ctx, phrase,
                                                      n_cls=len(classnames) if csc else None)
        random_context(1, ORIGINAL_UNUSED_WIDTH)  # the original's unused bias_vectors
        other = second_clip()
        texts = [template.format(name.replace("_", " ")) for name in classnames]
        print(f"Prompts: {texts}")
        if hand_crafted_fp16:  # the original's second CLIP (float16) on the training device, by its own encode_text
            encode, device = other.to(device).encode_text, torch.device(device)
        else:
            encode, device = self.text_encoder.encode_token_ids, torch.device("cpu")
        with torch.no_grad(), torch.autocast(device_type=device.type, enabled=False):
            features = encode(tokenize(texts).to(device))
            # Normalised here and once more in the original's forward (in the features' dtype).
            features = features / features.norm(dim=-1, keepdim=True)
            hand_crafted = features / features.norm(dim=-1, keepdim=True)
        del other, encode
        self.register_buffer("hand_crafted", hand_crafted.cpu(), persistent=False)
        _original_unused_module_draws("meta_net")
        self.prompt_learner = ContextPrompts(ctx, ClassPrompts(self.text_encoder, classnames, prompt_prefix, n_ctx,
                                                               class_token_position))
        _original_unused_module_draws("adapter")

    def training_outputs(self, image):
        """(logits, L_kg) of one training step."""
        text_features = self.static_inputs()
        return self.logits(image, text_features), knowledge_guidance_loss(text_features, self.hand_crafted)


@TRAINER_REGISTRY.register()
class KgCoOp(PromptTrainer):
    CONFIG_NODE = "COOP"  # the original's keys: CoOp's node plus W
    CHECKPOINT_NAME = "prompt_learner"

    CONFIG_DEFAULTS = {
        "N_CTX": 16,  # number of context vectors (random init; CTX_INIT gives 4)
        "CSC": False,  # class-specific context (random init only)
        "CTX_INIT": "",  # set (the original: True): initialise from "a photo of a"
        "PREC": "fp16",  # fp16, fp32, amp (vlprompt adds bf16)
        "CLASS_TOKEN_POSITION": "end",  # the original always builds "end"
        "W": 1.0,  # weight of L_kg (the original's default; its scripts and our configs use 8.0)
        # vlprompt: the original encodes the hand-crafted features with a CLIP that stays float16 under every
        # PREC (mirrored, True); False encodes them in the run's precision.
        "HAND_CRAFTED_FP16": True,
    }

    @classmethod
    def validate_config(cls, cfg):
        node = cfg.TRAINER.get(cls.CONFIG_NODE, {})
        w = node.get("W", cls.CONFIG_DEFAULTS["W"])
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
            raise ConfigValueError(f"TRAINER.{cls.CONFIG_NODE}.W {w!r} is not allowed: expected a weight >= 0")
        position = node.get("CLASS_TOKEN_POSITION", "end")
        if position != "end":
            raise ConfigValueError(f"TRAINER.{cls.CONFIG_NODE}.CLASS_TOKEN_POSITION {position!r} is not allowed for "
                                   "KgCoOp: expected 'end' (the original builds its prompts with the class at the end)")

    def after_train(self):
        # The fork's end-of-training line, which the original parse_test_res.py waits for before reading
        # "* accuracy" (Dassl's own "Finish training", which CoOp's parser waits for, follows).
        print("Finished training")
        super().after_train()

    def build_custom_model(self, clip_model, classnames):
        c = self.method_cfg
        self.w = float(self.method_option("W"))
        return KgCoOpCLIP(clip_model, classnames, hand_crafted_template(self.cfg.DATASET.NAME),
                          lambda: load_clip(self.cfg.MODEL.BACKBONE.NAME), c.N_CTX, c.CTX_INIT, c.CSC,
                          "end", bool(self.method_option("HAND_CRAFTED_FP16")), self.device)

    def compute_loss(self, image, label):
        logits, kg_loss = self.model.training_outputs(image)
        return F.cross_entropy(logits, label) + self.w * kg_loss, logits

    def adapt_checkpoint_state(self, state_dict):
        """The original's prompt_learner checkpoint: drop its unused bias_vectors and meta_net (and the
        per-class token buffers)."""
        state = super().adapt_checkpoint_state(state_dict)
        return {k: v for k, v in state.items() if not k.startswith(ORIGINAL_UNUSED_KEYS)}


@TRAINER_REGISTRY.register()
class ExtrasLinearProbeKgCoOp(DecoupledHead, KgCoOp):
    """KgCoOp with DePT's decoupled head (vlprompt.dept), under DePT's official name; KgCoOp's knowledge term joins
    DePT's loss: (1 - lambda) CE(z_sim) + lambda CE(probe) + W * L_kg."""
    CHECKPOINT_NAME = "PromptLearner"  # DePT's folder (its whole model there, the trainable tensors here)

    def prompt_method_loss(self, image_features, text_features):
        return self.w * knowledge_guidance_loss(text_features, self.model.prompt_model.hand_crafted)
