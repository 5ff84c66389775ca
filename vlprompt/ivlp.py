"""Independent vision-language prompts (IVLP): deep language prompts and deep vision prompts, not coupled.

The model of the IVLP trainer and of the methods built on it (PromptSRC): trainer files import it from here,
never from each other. The equations are in trainers/independentVL.py's docstring; the random-draw order
that makes a seed give the original's prompts is vlprompt.deep_prompts.clip_constructor_draws.
"""
import torch.nn as nn

from .classifier import VisionLanguagePromptedCLIP
from .deep_prompts import (VisionPrompts, check_prompt_depth, clip_constructor_draws, layer_prompts, per_layer,
                           text_context)
from .errors import ConfigValueError
from .prompts import ClassPrompts


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
