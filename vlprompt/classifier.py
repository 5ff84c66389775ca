"""The CLIP classifier every method builds: logits = exp(logit_scale) * cos(image, class text features).

A method subclasses `PromptedCLIP` and says two things:
- `static_inputs()`: what its forward pass needs that does not depend on the image (class text
  features for CoOp; also the vision prompts for MaPLe). During evaluation this is computed once,
  not once per batch (`cached_static_inputs`);
- `features(image, static)`: its image and class text features before normalisation, from which
  `logits` are CLIP's scaled cosine similarities — or, for a method whose equation is not that,
  `logits(image, static)` itself. Methods that expose `features` can be given a head over them
  (DePT, vlprompt.dept).
"""
import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from .prompted_clip import PromptedTextEncoder, PromptedVisionEncoder


def scaled_logits(image_features, text_features, logit_scale):
    """CLIP's logits from L2-normalised features: exp(logit_scale) * image [B, E] @ text [K, E]^T."""
    return logit_scale.exp() * image_features @ text_features.t()


def scaled_cosine_logits(image_features, text_features, logit_scale):
    """CLIP's logits: the features normalised, then `scaled_logits`."""
    return scaled_logits(F.normalize(image_features, dim=-1), F.normalize(text_features, dim=-1), logit_scale)


def per_image_scaled_logits(image_features, text_features, logit_scale):
    """CLIP's logits when every image has its own class features (CoCoOp, CoPL): normalised image
    [B, E] and text [B, K, E] features -> [B, K]."""
    return logit_scale.exp() * torch.einsum("be,bke->bk", image_features, text_features.to(image_features.dtype))


class PromptedCLIP(nn.Module):
    def __init__(self, clip_model):
        super().__init__()
        self.text_encoder = PromptedTextEncoder(clip_model)
        self.image_encoder = PromptedVisionEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        self._static_cache = None

    @property
    def dtype(self):
        return self.text_encoder.dtype

    def static_inputs(self):
        """Image-independent inputs of the forward pass (default: none)."""
        return None

    def features(self, image, static):
        """(image features [B, E], class text features [K, E] or one set per image [B, K, E]), unnormalised."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its image and text features")

    def logits_from_features(self, image_features, text_features):
        """CLIP's scaled cosine similarities of `features`' output: [B, K]."""
        if text_features.dim() == 3:
            return per_image_scaled_logits(F.normalize(image_features, dim=-1), F.normalize(text_features, dim=-1),
                                           self.logit_scale)
        return scaled_cosine_logits(image_features, text_features, self.logit_scale)

    def logits(self, image, static):
        return self.logits_from_features(*self.features(image, static))

    def forward(self, image):
        static = self._static_cache if self._static_cache is not None else self.static_inputs()
        return self.logits(image, static)

    @contextlib.contextmanager
    def cached_static_inputs(self):
        """Within this block, forward() reuses one computation of static_inputs() (for evaluation)."""
        with torch.no_grad():
            self._static_cache = self.static_inputs()
        try:
            yield
        finally:
            self._static_cache = None


class VisionLanguagePromptedCLIP(PromptedCLIP):
    """Prompts in both towers (MaPLe, IVLP): `prompt_learner()` returns (class prompts [n_cls, L, width],
    per-layer text prompts, vision prompts [n, vision width] or None, per-layer vision prompts).
    None of them depends on the image, so they and the class text features are static inputs."""

    def static_inputs(self):
        prompts, deep_text, vision_prompts, deep_vision = self.prompt_learner()
        text_features = self.text_encoder(prompts, self.prompt_learner.eot_indices, deep_text,
                                          n_ctx=self.prompt_learner.class_prompts.n_ctx)
        return text_features, vision_prompts, deep_vision

    def features(self, image, static):
        text_features, vision_prompts, deep_vision = static
        return self.image_encoder(image, vision_prompts, deep_vision), text_features


class TextPromptedCLIP(PromptedCLIP):
    """CoOp's classifier: `prompt_learner()` gives the class prompts [n_cls, L, width] (and
    `prompt_learner.eot_indices`); their text features are the static inputs."""

    def static_inputs(self):
        """g(t_k) for every class."""
        return self.text_encoder(self.prompt_learner(), self.prompt_learner.eot_indices)

    def features(self, image, text_features):
        return self.image_encoder(image), text_features
