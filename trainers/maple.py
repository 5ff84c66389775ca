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
from vlprompt.deep_prompts import check_prompt_depth, text_context
from vlprompt.dept import DecoupledHead
from vlprompt.engine import TRAINER_REGISTRY
from vlprompt.original_checkpoints import from_original_state, is_full_model_state
from vlprompt.prompts import ClassPrompts, random_context
from vlprompt.trainer import PromptTrainer


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


@TRAINER_REGISTRY.register()
class MaPLe(PromptTrainer):
    CONFIG_NODE = "MAPLE"
    CHECKPOINT_NAME = "MultiModalPromptLearner"

    CONFIG_DEFAULTS = {
        "N_CTX": 2,  # context vectors per layer
        "CTX_INIT": "a photo of a",  # its first N_CTX tokens initialise the context (N_CTX <= 4)
        "PREC": "fp16",  # fp16, fp32, amp (vlprompt adds bf16)
        "PROMPT_DEPTH": 9,  # layers with prompts, 1 (shallow MaPLe) to the tower's depth
    }

    def build_custom_model(self, clip_model, classnames):
        c = self.method_cfg
        return MaPLeCLIP(clip_model, classnames, c.N_CTX, c.CTX_INIT, c.PROMPT_DEPTH)

    def adapt_checkpoint_state(self, state_dict):
        if is_full_model_state(state_dict):
            return from_original_state("MaPLe", state_dict, self.model)
        return state_dict


@TRAINER_REGISTRY.register()
class ExtrasLinearProbeMaPLe(DecoupledHead, MaPLe):
    """MaPLe with DePT's decoupled head (vlprompt.dept), under DePT's official name."""
    CHECKPOINT_NAME = "MultiModalPromptLearner"  # DePT's folder (its whole model there, the trainable tensors here)
