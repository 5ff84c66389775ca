"""Hand-crafted prompt templates (data), keyed by registered dataset name."""

# CoOp's zero-shot template per dataset (ZeroshotCLIP, and CoOp-style hand-crafted baselines).
CUSTOM_TEMPLATES = {
    "OxfordPets": "a photo of a {}, a type of pet.",
    "OxfordFlowers": "a photo of a {}, a type of flower.",
    "FGVCAircraft": "a photo of a {}, a type of aircraft.",
    "DescribableTextures": "{} texture.",
    "EuroSAT": "a centered satellite photo of {}.",
    "StanfordCars": "a photo of a {}.",
    "Food101": "a photo of {}, a type of food.",
    "SUN397": "a photo of a {}.",
    "Caltech101": "a photo of a {}.",
    "UCF101": "a photo of a person doing {}.",
    "ImageNet": "a photo of a {}.",
    "ImageNetSketch": "a photo of a {}.",
    "ImageNetV2": "a photo of a {}.",
    "ImageNetA": "a photo of a {}.",
    "ImageNetR": "a photo of a {}.",
}
DEFAULT_TEMPLATE = "a photo of a {}."

# The 7 templates of CoOp's ZeroshotCLIP2 ensemble (a selection from CLIP's ImageNet prompts).
IMAGENET_TEMPLATES_SELECT = [
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
]


def template_for(dataset_name):
    """The dataset's CoOp template; datasets without one (users' own, DG sets) get "a photo of a {}."."""
    return CUSTOM_TEMPLATES.get(dataset_name, DEFAULT_TEMPLATE)
