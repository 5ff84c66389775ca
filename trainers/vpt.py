"""VPT: Deep Vision Prompting (Jia et al., "Visual Prompt Tuning", ECCV 2022), as the MaPLe paper's baseline.

Only the image tower is prompted: V (N_CTX_VISION tokens) appended after the patch tokens at the input,
and new learnable V^i replacing them just before vision block i, 1 <= i < J (PROMPT_DEPTH_VISION >= 1),
all N(0, 0.02^2) at the start. The class side is fixed: CLIP's features of the hand-crafted prompt
"a photo of a {class}." (CTX_INIT is not used, as in the original).

    p(y = k | x) = softmax_k( exp(s) * cos(f(x; V, V^1..), g("a photo of a CLASS_k.")) )

The text features are encoded once (at the first forward, on the model's device) and the prompts
are image-independent, so evaluation computes both once.

The original kept V and V^i inside CLIP's vision modules (image_encoder.VPT,
image_encoder.transformer.resblocks.<i>.VPT_shallow) and registered the whole model as "prompt_learner";
here the prompt learner holds just them (`input_prompts`, `layer_prompts.<i>`), under that folder name,
and the released checkpoints are renamed onto them when loaded.
"""
import dataclasses

import torch

from vlprompt.classifier import PromptedCLIP, scaled_cosine_logits
from vlprompt.deep_prompts import VisionPrompts, clip_constructor_draws
from vlprompt.engine import TRAINER_REGISTRY
from vlprompt.errors import ConfigValueError
from vlprompt.original_checkpoints import from_original_state, is_full_model_state
from vlprompt.prompts import encode_class_templates
from vlprompt.trainer import PromptTrainer

HAND_CRAFTED_PROMPT = "a photo of a {}."


class VPTCLIP(PromptedCLIP):
    def __init__(self, clip_model, classnames, n_ctx=8, prompt_depth=12, rng_before_clip=None, round_fp16=False):
        """rng_before_clip: the CPU generator state before CLIP was built; given, the prompts are the
        original's from the same seed (vlprompt.deep_prompts.clip_constructor_draws). round_fp16: the
        prompts reach the tower rounded to float16, as in the original."""
        super().__init__(clip_model)
        if prompt_depth < 1:
            raise ConfigValueError("PROMPT_DEPTH_VISION must be >= 1 for vision prompting")
        drawn = None
        if rng_before_clip is not None:
            drawn = clip_constructor_draws(clip_model, rng_before_clip, vision=(n_ctx, prompt_depth))
        self.prompt_learner = VisionPrompts(self.image_encoder, n_ctx, prompt_depth, drawn)
        self.image_encoder.round_prompts_fp16 = round_fp16  # the original's `.half()` (vlprompt.prompted_clip)
        self.classnames = list(classnames)
        print("Vision Prompting Design")
        print(f"Number of context words (tokens) for Vision prompting: {n_ctx}")
        print(f'Using fixed hand-crafted prompts: "{HAND_CRAFTED_PROMPT}"')
        self._text_features = None

    def fixed_text_features(self):
        """g("a photo of a CLASS_k."), encoded once on the model's device, outside any autocast."""
        device = self.logit_scale.device
        if self._text_features is None or self._text_features.device != device:
            with torch.autocast(device_type=device.type, enabled=False):
                self._text_features = encode_class_templates(self.text_encoder, self.classnames,
                                                             [HAND_CRAFTED_PROMPT])
        return self._text_features

    def static_inputs(self):
        vision_prompts, deep_vision = self.prompt_learner()
        return self.fixed_text_features(), vision_prompts, deep_vision

    def logits(self, image, static):
        text_features, vision_prompts, deep_vision = static
        image_features = self.image_encoder(image, vision_prompts, deep_vision)
        return scaled_cosine_logits(image_features, text_features, self.logit_scale)


@TRAINER_REGISTRY.register()
class VPT(PromptTrainer):
    CONFIG_NODE = "VPT"
    CHECKPOINT_NAME = "prompt_learner"

    CONFIG_DEFAULTS = {
        "N_CTX_VISION": 2,  # vision prompt tokens per layer
        "CTX_INIT": "a photo of a",  # not used (the text prompts are fixed), as in the original
        "PREC": "fp16",  # fp16, fp32, amp (vlprompt adds bf16)
        "PROMPT_DEPTH_VISION": 1,  # layers with vision prompts
        # vlprompt: the original rounds V and the V^i to float16 where they enter the tower (its `.half()`),
        # whatever PREC says; False keeps them float32 there.
        "ROUND_PROMPTS_FP16": True,
        # vlprompt: the original's CLIP loader returns model.float(), so its PREC "fp16" configs (and its
        # published numbers) computed in fp32; False (default) does the same. True: real half precision.
        "TRUE_FP16": False,
    }

    @classmethod
    def run_precision(cls, cfg, device, verbose=True):
        precision = super().run_precision(cfg, device, verbose)
        if precision.name == "fp16" and not cls.config_option(cfg, "TRUE_FP16"):
            if verbose:
                print("Note: VPT with PREC fp16 computes in fp32, as the original code did (its CLIP loader returns "
                      "model.float()); TRAINER.VPT.TRUE_FP16 True runs real half precision")
            precision = dataclasses.replace(precision, name="fp32", weight_dtype=torch.float32)
        return precision

    def build_model(self):
        # The original draws its prompts while CLIP is built: keep the generator state from before.
        self.rng_before_clip = torch.get_rng_state()
        super().build_model()

    def build_custom_model(self, clip_model, classnames):
        c = self.method_cfg
        return VPTCLIP(clip_model, classnames, c.N_CTX_VISION, c.PROMPT_DEPTH_VISION,
                       getattr(self, "rng_before_clip", None), bool(self.method_option("ROUND_PROMPTS_FP16")))

    def adapt_checkpoint_state(self, state_dict):
        if is_full_model_state(state_dict):
            return from_original_state("VPT", state_dict, self.model)
        return state_dict
