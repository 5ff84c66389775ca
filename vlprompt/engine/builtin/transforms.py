"""dassl.data.transforms.build_transform: the same choices, order and test-time pipeline as Dassl.

Train: [Resize unless a random crop is chosen] -> translation -> random_crop -> random_resized_crop ->
flip -> policies/colour ops -> ToTensor -> cutout -> Normalize -> gaussian noise -> instance norm.
Test: Resize(shorter edge to max(SIZE)) -> CenterCrop(SIZE) -> ToTensor -> Normalize -> instance norm.
"""
import random

import torch
from torchvision.transforms import (
    AutoAugment,
    AutoAugmentPolicy,
    CenterCrop,
    ColorJitter,
    Compose,
    GaussianBlur,
    InterpolationMode,
    Normalize,
    RandAugment,
    RandomApply,
    RandomCrop,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ToTensor,
)

from ..choices import TRANSFORMS

AVAI_CHOICES = list(TRANSFORMS)
# Dassl implements these two with its own operation lists; the built-in engine does not reproduce them.
_DASSL_ONLY = {"randaugment_fixmatch", "randaugment2"}

INTERPOLATION_MODES = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}


class Random2DTranslation:
    """With probability p, enlarge by 1/8 and take a random crop of the target size; else resize."""

    def __init__(self, height, width, p=0.5, interpolation=InterpolationMode.BILINEAR):
        self.height, self.width, self.p, self.interpolation = height, width, p, interpolation

    def __call__(self, img):
        if random.uniform(0, 1) > self.p:
            return Resize((self.height, self.width), interpolation=self.interpolation)(img)
        new_w, new_h = int(round(self.width * 1.125)), int(round(self.height * 1.125))
        img = Resize((new_h, new_w), interpolation=self.interpolation)(img)
        x1 = int(round(random.uniform(0, new_w - self.width)))
        y1 = int(round(random.uniform(0, new_h - self.height)))
        return img.crop((x1, y1, x1 + self.width, y1 + self.height))


class Cutout:
    """Zero out `n_holes` square patches of side `length` of a CHW tensor."""

    def __init__(self, n_holes=1, length=16):
        self.n_holes, self.length = n_holes, length

    def __call__(self, img):
        h, w = img.shape[1:3]
        mask = torch.ones(h, w, dtype=img.dtype)
        for _ in range(self.n_holes):
            y, x = random.randrange(h), random.randrange(w)
            y1, y2 = max(0, y - self.length // 2), min(h, y + self.length // 2)
            x1, x2 = max(0, x - self.length // 2), min(w, x + self.length // 2)
            mask[y1:y2, x1:x2] = 0
        return img * mask


class GaussianNoise:
    def __init__(self, mean=0.0, std=0.15, p=0.5):
        self.mean, self.std, self.p = mean, std, p

    def __call__(self, img):
        if random.uniform(0, 1) > self.p:
            return img
        return img + torch.randn(img.size()) * self.std + self.mean


class InstanceNormalization:
    """Normalize each channel of a CHW tensor by its own mean and std."""

    def __init__(self, eps=1e-8):
        self.eps = eps

    def __call__(self, img):
        c = img.shape[0]
        flat = img.reshape(c, -1)
        mean = flat.mean(1).view(c, 1, 1)
        std = flat.std(1).view(c, 1, 1)
        return (img - mean) / (std + self.eps)


def build_transform(cfg, is_train=True, choices=None):
    if cfg.INPUT.NO_TRANSFORM:
        print("Note: no transform is applied!")
        return None
    if choices is None:
        choices = cfg.INPUT.TRANSFORMS
    for choice in choices:
        if choice not in AVAI_CHOICES:
            raise ValueError(f"Invalid INPUT.TRANSFORMS entry {choice!r}; choose from {AVAI_CHOICES}")
        if choice in _DASSL_ONLY:
            raise ValueError(f"INPUT.TRANSFORMS {choice!r} is only available with the real Dassl installed")
    if cfg.INPUT.INTERPOLATION not in INTERPOLATION_MODES:
        raise ValueError(f"INPUT.INTERPOLATION must be one of {list(INTERPOLATION_MODES)}, got {cfg.INPUT.INTERPOLATION!r}")
    target_size = f"{cfg.INPUT.SIZE[0]}x{cfg.INPUT.SIZE[1]}"
    normalize = Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD)
    if is_train:
        return _build_transform_train(cfg, choices, target_size, normalize)
    return _build_transform_test(cfg, choices, target_size, normalize)


def _build_transform_train(cfg, choices, target_size, normalize):
    print("Building transform_train")
    interp = INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]
    size = tuple(cfg.INPUT.SIZE)
    tfm = []
    if "random_crop" not in choices and "random_resized_crop" not in choices:
        print(f"+ resize to {target_size}")
        tfm.append(Resize(size, interpolation=interp))
    if "random_translation" in choices:
        print("+ random translation")
        tfm.append(Random2DTranslation(size[0], size[1], interpolation=interp))
    if "random_crop" in choices:
        print(f"+ random crop (padding = {cfg.INPUT.CROP_PADDING})")
        tfm.append(RandomCrop(size, padding=cfg.INPUT.CROP_PADDING))
    if "random_resized_crop" in choices:
        s_ = cfg.INPUT.RRCROP_SCALE
        print(f"+ random resized crop (size={size}, scale={s_})")
        tfm.append(RandomResizedCrop(size, scale=tuple(s_), interpolation=interp))
    if "random_flip" in choices:
        print("+ random flip")
        tfm.append(RandomHorizontalFlip())
    policies = {"imagenet_policy": AutoAugmentPolicy.IMAGENET, "cifar10_policy": AutoAugmentPolicy.CIFAR10,
                "svhn_policy": AutoAugmentPolicy.SVHN}
    for name, policy in policies.items():
        if name in choices:
            print(f"+ {name}")
            tfm.append(AutoAugment(policy))
    if "randaugment" in choices:
        n_, m_ = cfg.INPUT.RANDAUGMENT_N, cfg.INPUT.RANDAUGMENT_M
        print(f"+ randaugment (n={n_}, m={m_})")
        tfm.append(RandAugment(num_ops=n_, magnitude=m_))
    if "colorjitter" in choices:
        print("+ color jitter")
        tfm.append(ColorJitter(brightness=cfg.INPUT.COLORJITTER_B, contrast=cfg.INPUT.COLORJITTER_C,
                               saturation=cfg.INPUT.COLORJITTER_S, hue=cfg.INPUT.COLORJITTER_H))
    if "randomgrayscale" in choices:
        print("+ random gray scale")
        tfm.append(RandomGrayscale(p=cfg.INPUT.RGS_P))
    if "gaussian_blur" in choices:
        print("+ gaussian blur")
        gb_k, gb_p = cfg.INPUT.GB_K, cfg.INPUT.GB_P
        tfm.append(RandomApply([GaussianBlur(gb_k)], p=gb_p))
    print("+ to torch tensor of range [0, 1]")
    tfm.append(ToTensor())
    if "cutout" in choices:
        print(f"+ cutout (n_holes={cfg.INPUT.CUTOUT_N}, length={cfg.INPUT.CUTOUT_LEN})")
        tfm.append(Cutout(cfg.INPUT.CUTOUT_N, cfg.INPUT.CUTOUT_LEN))
    if "normalize" in choices:
        print(f"+ normalization (mean={cfg.INPUT.PIXEL_MEAN}, std={cfg.INPUT.PIXEL_STD})")
        tfm.append(normalize)
    if "gaussian_noise" in choices:
        print(f"+ gaussian noise (mean={cfg.INPUT.GN_MEAN}, std={cfg.INPUT.GN_STD})")
        tfm.append(GaussianNoise(cfg.INPUT.GN_MEAN, cfg.INPUT.GN_STD))
    if "instance_norm" in choices:
        print("+ instance normalization")
        tfm.append(InstanceNormalization())
    return Compose(tfm)


def _build_transform_test(cfg, choices, target_size, normalize):
    print("Building transform_test")
    interp = INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]
    size = tuple(cfg.INPUT.SIZE)
    print(f"+ resize the smaller edge to {max(size)}")
    tfm = [Resize(max(size), interpolation=interp)]
    print(f"+ {target_size} center crop")
    tfm.append(CenterCrop(size))
    print("+ to torch tensor of range [0, 1]")
    tfm.append(ToTensor())
    if "normalize" in choices:
        print(f"+ normalization (mean={cfg.INPUT.PIXEL_MEAN}, std={cfg.INPUT.PIXEL_STD})")
        tfm.append(normalize)
    if "instance_norm" in choices:
        print("+ instance normalization")
        tfm.append(InstanceNormalization())
    return Compose(tfm)
