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
`vision.layer_prompts.<i>`), and the released checkpoints are renamed onto them when loaded
(vlprompt.original_checkpoints).
"""
import torch
import torch.nn as nn

from vlprompt.classifier import VisionLanguagePromptedCLIP
from vlprompt.deep_prompts import (VisionPrompts, check_prompt_depth, clip_constructor_draws, layer_prompts,
                                   per_layer, text_context)
from vlprompt.engine import TRAINER_REGISTRY
from vlprompt.errors import ConfigValueError
from vlprompt.original_checkpoints import from_original_state, is_full_model_state
from vlprompt.prompts import ClassPrompts
from vlprompt.trainer import PromptTrainer


class VLPromptLearner(nn.Module):
    """P (`ctx`, the original's name), the P^i (`text_layer_prompts`), the vision prompts (`vision`,
    absent for language-only prompting) and the class prompts P is placed in."""

    def __init__(self, text_encoder, vision_encoder, classnames, n_ctx_text=2, n_ctx_vision=2,
                 ctx_init="a photo of a", depth_text=9, depth_vision=9, drawn=None):
        super().__init__()
        if depth_text < 1:
            raise ConfigValueError("PROMPT_DEPTH_TEXT must be >= 1 for independent V-L prompting; "
                             "use the VPT trainer to learn vision prompts only")
        check_prompt_depth(depth_text, text_encoder.num_layers, "PROMPT_DEPTH_TEXT")
        self.depth_text = depth_text
        # Random draws in the original's order: vision prompts, deep text prompts, ctx (random init only).
        # `drawn` (clip_constructor_draws) holds the first two as the original drew them while building CLIP.
        with_vision = depth_vision > 0 and n_ctx_vision > 0
        self.vision = VisionPrompts(vision_encoder, n_ctx_vision, depth_vision, drawn) if with_vision else None
        self.text_layer_prompts = layer_prompts(n_ctx_text, text_encoder.width, depth_text,
                                                drawn["text"] if drawn is not None else None)
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
                 depth_text=9, depth_vision=9, rng_before_clip=None, round_fp16=False, full_context=False):
        """rng_before_clip: the CPU generator state before CLIP was built; given, the prompts are the
        original's from the same seed (vlprompt.deep_prompts.clip_constructor_draws). round_fp16: the
        prompts made in CLIP's blocks reach the towers rounded to float16, as in the original.
        full_context: the text tower runs on all 77 positions, as the original's, not on the class
        prompts cut after their last EOT token (vlprompt.prompted_clip: the same function, but with the
        rounding of round_fp16 only the whole context trains the original's model from its seed)."""
        super().__init__(clip_model)
        drawn = None
        if rng_before_clip is not None:
            with_vision = depth_vision > 0 and n_ctx_vision > 0
            drawn = clip_constructor_draws(clip_model, rng_before_clip,
                                           vision=(n_ctx_vision, depth_vision) if with_vision else None,
                                           text=(n_ctx_text, depth_text))
        self.prompt_learner = VLPromptLearner(self.text_encoder, self.image_encoder, classnames, n_ctx_text,
                                              n_ctx_vision, ctx_init, depth_text, depth_vision, drawn)
        # The original's `.half()` where its prompts enter CLIP's blocks (vlprompt.prompted_clip).
        self.text_encoder.round_prompts_fp16 = self.image_encoder.round_prompts_fp16 = round_fp16
        self.text_encoder.full_context = full_context


@TRAINER_REGISTRY.register()
class IVLP(PromptTrainer):
    CONFIG_NODE = "IVLP"
    # 1: the text tower runs on all 77 positions by default (TEXT_FULL_CONTEXT), as the original does; runs of
    # vlprompt 0.1 computed on the cut prompts and are other runs.
    RESULTS_REVISION = 1
    CHECKPOINT_NAME = "VLPromptLearner"

    CONFIG_DEFAULTS = {
        "N_CTX_VISION": 2,  # vision prompt tokens per layer
        "N_CTX_TEXT": 2,  # language prompt tokens per layer
        "CTX_INIT": "a photo of a",  # language prompts only
        "PREC": "fp16",  # fp16, fp32, amp (vlprompt adds bf16)
        "PROMPT_DEPTH_VISION": 9,  # 0: no vision prompts (deep language prompting)
        "PROMPT_DEPTH_TEXT": 9,
        # vlprompt: the original rounds V, V^i and P^i to float16 where they enter the towers, also under
        # PREC fp32/amp (its `.half()`); False keeps them float32 there (a ~1e-4 relative difference in the logits).
        "ROUND_PROMPTS_FP16": True,
        # vlprompt: the text tower runs on all 77 token positions, as the original's. The class prompts cut
        # after their last EOT token (False) give the same function faster, but other rounding in the last
        # bits, which the float16-rounded prompt gradients above turn into a different model over the
        # training (vlprompt.prompted_clip): True trains the original's model from its seed.
        "TEXT_FULL_CONTEXT": True,
    }

    def build_model(self):
        # The original draws its prompts while CLIP is built: keep the generator state from before.
        self.rng_before_clip = torch.get_rng_state()
        super().build_model()

    def build_custom_model(self, clip_model, classnames):
        c = self.method_cfg
        return IVLPCLIP(clip_model, classnames, c.N_CTX_TEXT, c.N_CTX_VISION, c.CTX_INIT,
                        c.PROMPT_DEPTH_TEXT, c.PROMPT_DEPTH_VISION, getattr(self, "rng_before_clip", None),
                        bool(self.method_option("ROUND_PROMPTS_FP16")),
                        full_context=bool(self.method_option("TEXT_FULL_CONTEXT")))

    def adapt_checkpoint_state(self, state_dict):
        if is_full_model_state(state_dict):
            return from_original_state("IVLP", state_dict, self.model)
        return state_dict
