"""IVLP: Independent Vision-Language Prompting, and Deep Language Prompting (the MaPLe paper's baselines).

Language prompts as in MaPLe: the class prompt t_k = [SOT, P_1..P_n, <rest of CTX_INIT>, CLASS_k, ".", EOT],
P initialised from the first n = N_CTX_TEXT token embeddings of CTX_INIT, and new learnable prompts P^i
replacing positions 1..n just before text block i, 1 <= i < J_t (PROMPT_DEPTH_TEXT >= 1).

Vision prompts, independent of the language ones (no coupling): V (N_CTX_VISION tokens) appended after
the patch tokens at the input, and new learnable V^i replacing them just before vision block i,
1 <= i < J_v (PROMPT_DEPTH_VISION; 0 turns vision prompting off, which is Deep Language Prompting,
config vit_b16_c2_ep5_batch4_4ctx_language_only). All deep prompts are N(0, 0.02^2) at the start.

    p(y = k | x) = softmax_k( exp(s) * cos(f(x; V, V^1..), g(t_k; P^1..)) )

The text features and the vision prompts do not depend on the image: computed once per evaluation.

The original kept V and the V^i, P^i inside CLIP's modules (VPT, VPT_shallow); here they live in the
prompt learner with the layer they enter as their name (`text_layer_prompts.<i>`,
`vision.layer_prompts.<i>`), and the released checkpoints are renamed onto them when loaded.
"""
import re

import torch.nn as nn

from trainers.maple import check_prompt_depth, full_model_to_prompt_learner, is_full_model_state, text_context
from vlprompt.classifier import VisionLanguagePromptedCLIP
from vlprompt.config import ensure_node, set_default
from vlprompt.engine import TRAINER_REGISTRY
from vlprompt.prompts import ClassPrompts, random_context
from vlprompt.trainer import PromptTrainer


def layer_prompts(n_ctx, width, depth):
    """New prompts for blocks 1..depth-1, keyed by block index, N(0, 0.02^2), float32."""
    return nn.ParameterDict({str(i): nn.Parameter(random_context(n_ctx, width)) for i in range(1, depth)})


def per_layer(prompts, depth):
    """[None, prompts["1"], .., prompts[str(depth - 1)]]: the deep_prompts list of the prompted towers."""
    return [None] + [prompts[str(i)] for i in range(1, depth)]


class VisionPrompts(nn.Module):
    """Deep visual prompts (VPT-deep): `input_prompts` appended after the patch tokens, and
    `layer_prompts.<i>` replacing them just before vision block i (1 <= i < depth). float32, as the
    original's (cast to the tower's dtype where injected)."""

    def __init__(self, vision_encoder, n_ctx, depth):
        super().__init__()
        width = vision_encoder.width  # ViT only
        check_prompt_depth(depth, vision_encoder.num_layers, "PROMPT_DEPTH_VISION")
        if n_ctx < 1:
            raise ValueError(f"N_CTX_VISION must be >= 1 for vision prompts, got {n_ctx}")
        self.depth = depth
        self.input_prompts = nn.Parameter(random_context(n_ctx, width))
        self.layer_prompts = layer_prompts(n_ctx, width, depth)

    def forward(self):
        """(input prompts [n, d_vision], per-layer prompts [None, V^1, ..])."""
        return self.input_prompts, per_layer(self.layer_prompts, self.depth)


class VLPromptLearner(nn.Module):
    """P (`ctx`, the original's name), the P^i (`text_layer_prompts`), the vision prompts (`vision`,
    absent for language-only prompting) and the class prompts P is placed in."""

    def __init__(self, text_encoder, vision_encoder, classnames, n_ctx_text=2, n_ctx_vision=2,
                 ctx_init="a photo of a", depth_text=9, depth_vision=9):
        super().__init__()
        if depth_text < 1:
            raise ValueError("PROMPT_DEPTH_TEXT must be >= 1 for independent V-L prompting; "
                             "use the VPT trainer to learn vision prompts only")
        check_prompt_depth(depth_text, text_encoder.num_layers, "PROMPT_DEPTH_TEXT")
        self.depth_text = depth_text
        # Random draws in the original's order: vision prompts, deep text prompts, ctx (random init only).
        with_vision = depth_vision > 0 and n_ctx_vision > 0
        self.vision = VisionPrompts(vision_encoder, n_ctx_vision, depth_vision) if with_vision else None
        self.text_layer_prompts = layer_prompts(n_ctx_text, text_encoder.width, depth_text)
        ctx_vectors, prompt_prefix = text_context(text_encoder, n_ctx_text, ctx_init)
        print("Independent V-L design")
        print(f'Initial text context: "{prompt_prefix}"')
        print(f"Number of context words (tokens) for Language prompting: {n_ctx_text}")
        print(f"Number of context words (tokens) for Vision prompting: {n_ctx_vision if with_vision else 0}")
        self.ctx = nn.Parameter(ctx_vectors.to(text_encoder.dtype))
        self.class_prompts = ClassPrompts(text_encoder, classnames, prompt_prefix, n_ctx_text)

    @property
    def eot_indices(self):
        return self.class_prompts.eot_indices

    def forward(self):
        """(class prompts t_k, per-layer text prompts [None, P^1, ..], vision prompts V or None,
        per-layer vision prompts [None, V^1, ..] or None)."""
        vision_prompts, deep_vision = self.vision() if self.vision is not None else (None, None)
        return (self.class_prompts(self.ctx), per_layer(self.text_layer_prompts, self.depth_text),
                vision_prompts, deep_vision)


class IVLPCLIP(VisionLanguagePromptedCLIP):
    """Static inputs: the class text features g(t_k; P^i) and the vision prompts V, V^i."""

    def __init__(self, clip_model, classnames, n_ctx_text=2, n_ctx_vision=2, ctx_init="a photo of a",
                 depth_text=9, depth_vision=9):
        super().__init__(clip_model)
        self.prompt_learner = VLPromptLearner(self.text_encoder, self.image_encoder, classnames, n_ctx_text,
                                              n_ctx_vision, ctx_init, depth_text, depth_vision)


# ------------------------------------------------------------------ the originals' checkpoints
def original_vision_prompt_name(key, prefix=""):
    """The original's image_encoder.VPT / image_encoder.transformer.resblocks.<i>.VPT_shallow -> ours."""
    if key == "image_encoder.VPT":
        return prefix + "input_prompts"
    match = re.fullmatch(r"image_encoder\.transformer\.resblocks\.(\d+)\.VPT_shallow", key)
    return f"{prefix}layer_prompts.{match.group(1)}" if match else None


def original_ivlp_prompt_name(key):
    """Where the original IVLP kept prompts inside CLIP's modules -> this prompt learner's names."""
    match = re.fullmatch(r"text_encoder\.transformer\.resblocks\.(\d+)\.VPT_shallow", key)
    if match:
        return f"text_layer_prompts.{match.group(1)}"
    return original_vision_prompt_name(key, prefix="vision.")


@TRAINER_REGISTRY.register()
class IVLP(PromptTrainer):
    CONFIG_NODE = "IVLP"
    CHECKPOINT_NAME = "VLPromptLearner"

    @classmethod
    def add_config(cls, cfg):
        node = ensure_node(cfg, cls.CONFIG_NODE)
        set_default(node, "N_CTX_VISION", 2)
        set_default(node, "N_CTX_TEXT", 2)
        set_default(node, "CTX_INIT", "a photo of a")  # language prompts only
        set_default(node, "PREC", "fp16")
        set_default(node, "PROMPT_DEPTH_VISION", 9)  # 0: no vision prompts (deep language prompting)
        set_default(node, "PROMPT_DEPTH_TEXT", 9)

    def build_custom_model(self, clip_model, classnames):
        c = self.method_cfg
        return IVLPCLIP(clip_model, classnames, c.N_CTX_TEXT, c.N_CTX_VISION, c.CTX_INIT,
                        c.PROMPT_DEPTH_TEXT, c.PROMPT_DEPTH_VISION)

    def adapt_checkpoint_state(self, state_dict):
        if is_full_model_state(state_dict):
            return full_model_to_prompt_learner(state_dict, self.model, original_ivlp_prompt_name)
        return state_dict
