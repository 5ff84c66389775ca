"""MaPLe: Multi-modal Prompt Learning (Khattak et al., CVPR 2023).

Language prompts. The prompt for class k enters CLIP's text tower as

    t_k = [SOT, P_1, ..., P_n, <rest of CTX_INIT>, CLASS_k, ".", EOT]

with n = N_CTX learnable vectors P initialised from the first n token embeddings of CTX_INIT; the whole
phrase stays in the prompt ("a photo of a" with n = 2: P replaces "a photo", "of a" remains). Deeper,
for 1 <= i < J (J = PROMPT_DEPTH), new learnable prompts P^i replace the hidden states at positions
1..n just before text block i; blocks from J on carry the previous block's outputs forward.

Vision prompts are coupled to the language prompts by linear maps F_i: d_text -> d_vision,

    P~ = F_0(P),    P~^i = F_i(P^i)   (1 <= i < J),

P~ appended after the patch tokens at the input, P~^i replacing them just before vision block i.
F_1..F_{J-1} start as identical copies of one initialised Linear. CLIP stays frozen:

    p(y = k | x) = softmax_k( exp(s) * cos(f(x; P~, P~^1..), g(t_k; P^1..)) )

Nothing here depends on the image except f's input: the class text features and the vision prompts
are computed once per evaluation (`MaPLeCLIP.static_inputs`).

Checkpoints hold the prompt learner only, under the original's folder name MultiModalPromptLearner and
with the original's parameter names, so the released full-model checkpoints load (`adapt_checkpoint_state`).
"""
import copy

import torch.nn as nn

from vlprompt.classifier import VisionLanguagePromptedCLIP
from vlprompt.clip_loader import bpe_length
from vlprompt.config import ensure_node, set_default
from vlprompt.engine import TRAINER_REGISTRY
from vlprompt.prompts import ClassPrompts, clean_classname, context_from_phrase, random_context
from vlprompt.trainer import CheckpointMismatch, PromptTrainer

MAX_WORD_INIT = 4  # the originals initialise from CTX_INIT only when n_ctx <= 4, else randomly


def check_prompt_depth(depth, num_layers, key):
    if not 1 <= depth <= num_layers:
        raise ValueError(f"{key} must be between 1 and the number of layers ({num_layers}), got {depth}")


def text_context(text_encoder, n_ctx, ctx_init):
    """MaPLe/IVLP's first context: (vectors [n_ctx, width], prompt prefix string).

    With CTX_INIT and n_ctx <= 4: the first n_ctx token embeddings of the phrase, and the whole phrase is
    the prefix. Otherwise N(0, 0.02^2) vectors and a prefix of n_ctx "X" tokens.
    """
    if ctx_init and n_ctx <= MAX_WORD_INIT:
        phrase = clean_classname(ctx_init)
        if bpe_length(phrase) < n_ctx:
            raise ValueError(f"CTX_INIT {ctx_init!r} has {bpe_length(phrase)} tokens, fewer than the {n_ctx} "
                             "context vectors it should initialise")
        vectors, _ = context_from_phrase(text_encoder, phrase, n_ctx)
        return vectors, phrase
    return random_context(n_ctx, text_encoder.width, dtype=text_encoder.dtype), " ".join(["X"] * n_ctx)


class MultiModalPromptLearner(nn.Module):
    """P (`ctx`), F_0 (`proj`), P^1..P^{J-1} (`compound_prompts_text`), F_1..F_{J-1}
    (`compound_prompt_projections`) and the class prompts P is placed in. Names are the original's.

    dtypes as the original: ctx and proj in the tower's dtype (half in fp16 mode), the deep prompts and
    their projections in float32 (cast to the tower's dtype where they are injected).
    """

    def __init__(self, text_encoder, vision_encoder, classnames, n_ctx=2, ctx_init="a photo of a", prompt_depth=9):
        super().__init__()
        dtype, width, vision_width = text_encoder.dtype, text_encoder.width, vision_encoder.width  # ViT only
        check_prompt_depth(prompt_depth, min(text_encoder.num_layers, vision_encoder.num_layers), "PROMPT_DEPTH")
        self.prompt_depth = prompt_depth
        # Random draws in the original's order: ctx (random init only), proj, deep prompts, coupling layer.
        ctx_vectors, prompt_prefix = text_context(text_encoder, n_ctx, ctx_init)
        print("MaPLe design: Multi-modal Prompt Learning")
        print(f'Initial context: "{prompt_prefix}"')
        print(f"Number of MaPLe context words (tokens): {n_ctx}")
        self.proj = nn.Linear(width, vision_width).to(dtype)
        self.ctx = nn.Parameter(ctx_vectors.to(dtype))
        self.compound_prompts_text = nn.ParameterList(
            [nn.Parameter(random_context(n_ctx, width)) for _ in range(prompt_depth - 1)])
        coupling = nn.Linear(width, vision_width)
        self.compound_prompt_projections = nn.ModuleList([copy.deepcopy(coupling) for _ in range(prompt_depth - 1)])
        self.class_prompts = ClassPrompts(text_encoder, classnames, prompt_prefix, n_ctx)

    @property
    def eot_indices(self):
        return self.class_prompts.eot_indices

    def forward(self):
        """(class prompts t_k [n_cls, L, d_text], per-layer text prompts [None, P^1, ..],
        vision prompts P~ [n, d_vision], per-layer vision prompts [None, P~^1, ..])."""
        deep_text = [None, *self.compound_prompts_text]
        deep_vision = [None] + [couple(p) for couple, p in zip(self.compound_prompt_projections,
                                                                  self.compound_prompts_text)]
        return self.class_prompts(self.ctx), deep_text, self.proj(self.ctx), deep_vision


class MaPLeCLIP(VisionLanguagePromptedCLIP):
    """Static inputs: the class text features g(t_k; P^i) and the vision prompts P~, P~^i."""

    def __init__(self, clip_model, classnames, n_ctx=2, ctx_init="a photo of a", prompt_depth=9):
        super().__init__(clip_model)
        self.prompt_learner = MultiModalPromptLearner(self.text_encoder, self.image_encoder, classnames, n_ctx,
                                                      ctx_init, prompt_depth)


# ------------------------------------------------------------------ the originals' checkpoints
ORIGINAL_MODEL_PREFIXES = ("prompt_learner.", "image_encoder.", "text_encoder.")
# Frozen CLIP tensors a full-model checkpoint holds, and where this model keeps them.
BACKBONE_FINGERPRINT = {"image_encoder.conv1.weight": "image_encoder.visual.conv1.weight",
                        "image_encoder.positional_embedding": "image_encoder.visual.positional_embedding",
                        "text_encoder.text_projection": "text_encoder.text_projection"}


def is_full_model_state(state):
    """True for the originals' checkpoints, which hold the whole CustomCLIP (frozen CLIP included)."""
    return any(k.startswith(ORIGINAL_MODEL_PREFIXES) or k == "logit_scale" for k in state)


def check_same_backbone(state, model):
    """Fail if a full-model checkpoint's frozen CLIP has other shapes than the loaded backbone's
    (e.g. ViT-B/16 prompts evaluated on ViT-B/32, whose prompt shapes are the same)."""
    ours = model.state_dict()
    wrong = [f"{k}: checkpoint {tuple(state[k].shape)} vs backbone {tuple(ours[mine].shape)}"
             for k, mine in BACKBONE_FINGERPRINT.items()
             if k in state and mine in ours and tuple(state[k].shape) != tuple(ours[mine].shape)]
    if wrong:
        raise CheckpointMismatch(f"The checkpoint was trained on another CLIP backbone than MODEL.BACKBONE.NAME "
                                 f"({'; '.join(wrong)}); set MODEL.BACKBONE.NAME to the one it was trained with.")


def full_model_to_prompt_learner(state, model, rename_frozen=None):
    """An original full-model state dict -> this trainer's prompt-learner state.

    prompt_learner.* keeps its name without the prefix, except token_prefix/token_suffix, which are
    rebuilt from the current class names (as the originals' load_model drops them). Prompts the
    originals kept inside CLIP's modules are renamed by `rename_frozen(key)` (a name, or None);
    everything else (frozen CLIP, logit_scale) is dropped. Missing prompts fail when loading.
    """
    check_same_backbone(state, model)
    adapted = {}
    for key, value in state.items():
        if key.startswith("prompt_learner."):
            name = key[len("prompt_learner."):]
            if name not in ("token_prefix", "token_suffix"):
                adapted[name] = value
        elif rename_frozen is not None:
            name = rename_frozen(key)
            if name is not None:
                adapted[name] = value
    return adapted


@TRAINER_REGISTRY.register()
class MaPLe(PromptTrainer):
    CONFIG_NODE = "MAPLE"
    CHECKPOINT_NAME = "MultiModalPromptLearner"

    @classmethod
    def add_config(cls, cfg):
        node = ensure_node(cfg, cls.CONFIG_NODE)
        set_default(node, "N_CTX", 2)  # context vectors per layer
        set_default(node, "CTX_INIT", "a photo of a")
        set_default(node, "PREC", "fp16")  # fp16, fp32, amp (vlprompt adds bf16)
        set_default(node, "PROMPT_DEPTH", 9)  # layers with prompts, 1 (shallow MaPLe) to the tower's depth

    def build_custom_model(self, clip_model, classnames):
        c = self.method_cfg
        return MaPLeCLIP(clip_model, classnames, c.N_CTX, c.CTX_INIT, c.PROMPT_DEPTH)

    def adapt_checkpoint_state(self, state_dict):
        if is_full_model_state(state_dict):
            return full_model_to_prompt_learner(state_dict, self.model)
        return state_dict
