"""Zero-shot CLIP (Radford et al., 2021) with CoOp's hand-crafted prompts.

ZeroshotCLIP: one template per dataset (vlprompt.templates.CUSTOM_TEMPLATES), e.g. "a photo of a {}.".
ZeroshotCLIP2: prompt ensembling over the 7 IMAGENET_TEMPLATES_SELECT templates plus, for datasets
other than ImageNet, the dataset's own template: per-template normalised text features are averaged
and re-normalised. Nothing is trained; run with --eval-only. CLIP runs in fp16 on a GPU (as the
original), fp32 on a CPU.
"""
from vlprompt.classifier import PromptedCLIP, scaled_cosine_logits
from vlprompt.engine import TRAINER_REGISTRY
from vlprompt.prompts import clean_classname, encode_class_templates
from vlprompt.templates import IMAGENET_TEMPLATES_SELECT, template_for
from vlprompt.trainer import PromptTrainer


class ZeroshotClassifier(PromptedCLIP):
    def __init__(self, clip_model, classnames, templates):
        super().__init__(clip_model)
        self.classnames = list(classnames)
        self.templates = list(templates)
        self._text_features = None  # fixed: encoded once, on the model's device, at first use

    def static_inputs(self):
        if self._text_features is None:
            self._text_features = encode_class_templates(self.text_encoder, self.classnames, self.templates)
        return self._text_features

    def logits(self, image, text_features):
        return scaled_cosine_logits(self.image_encoder(image), text_features, self.logit_scale)


@TRAINER_REGISTRY.register()
class ZeroshotCLIP(PromptTrainer):
    HAS_TRAINABLE_PROMPTS = False

    def templates(self):
        return [template_for(self.cfg.DATASET.NAME)]

    def build_custom_model(self, clip_model, classnames):
        templates = self.templates()
        prompts = [t.format(clean_classname(c)) for t in templates for c in classnames]
        print(f"Prompts ({len(prompts)}): {prompts[:10]}{' ...' if len(prompts) > 10 else ''}")
        return ZeroshotClassifier(clip_model, classnames, templates)

    def trainable_module(self):
        return None


@TRAINER_REGISTRY.register()
class ZeroshotCLIP2(ZeroshotCLIP):
    """Prompt ensembling."""

    def templates(self):
        templates = list(IMAGENET_TEMPLATES_SELECT)
        if self.cfg.DATASET.NAME != "ImageNet":
            templates.append(template_for(self.cfg.DATASET.NAME))
        return templates
