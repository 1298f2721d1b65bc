"""Image transforms for classifiers: resize plus the cherry report's augmentation profiles.

Every pipeline returns uint8 CHW tensors in 0-255; normalisation belongs to the backbone.

Profiles:
    none:     resize only.
    standard: random rotation (±15°), affine (±10% shift, 0.9-1.1 scale), colour jitter 0.2.
    enhanced: standard + motion blur (conveyor realism, p=0.3) + stronger colour jitter (0.4, hue 0.05).
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from zoolab.errors import ZoolabError

__all__ = ["MotionBlur", "build_transform", "AUGMENT_PROFILES"]

AUGMENT_PROFILES = ("none", "standard", "enhanced")


class MotionBlur(nn.Module):
    """Linear motion blur at a random angle, as a conveyor belt produces; uint8 in, uint8 out."""

    def __init__(self, kernel_size: tuple[int, int] = (3, 9), p: float = 0.3) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.p = p

    @staticmethod
    def line_kernel(size: int, angle_deg: float) -> torch.Tensor:
        kernel = torch.zeros(size, size)
        c = (size - 1) / 2
        dx, dy = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
        for t in torch.linspace(0, c, steps=2 * size):
            oy, ox = round(float(t) * dy), round(float(t) * dx)  # one rounding for a point and its mirror
            kernel[int(c) + oy, int(c) + ox] = 1.0
            kernel[int(c) - oy, int(c) - ox] = 1.0
        return kernel / kernel.sum()

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if random.random() >= self.p:
            return img
        size = random.randrange(self.kernel_size[0], self.kernel_size[1] + 1) | 1
        kernel = self.line_kernel(size, random.uniform(0, 180)).to(img.device)
        channels = img.shape[-3]
        x = img.float().reshape(-1, channels, *img.shape[-2:])
        weight = kernel.expand(channels, 1, size, size)
        x = F.conv2d(F.pad(x, [size // 2] * 4, mode="replicate"), weight, groups=channels)
        return x.round().clamp(0, 255).to(img.dtype).reshape(img.shape)


def _augmentations(profile: str) -> list[nn.Module]:
    geometric = [v2.RandomRotation(15), v2.RandomAffine(degrees=0, translate=(0.1, 0.1), scale=(0.9, 1.1))]
    if profile == "none":
        return []
    if profile == "standard":
        return [*geometric, v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2)]
    if profile == "enhanced":
        return [
            *geometric,
            MotionBlur(),
            v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.05),
        ]
    raise ZoolabError(
        f"unknown augmentation profile '{profile}'",
        where="dataset.augment",
        fix=f"use one of {', '.join(AUGMENT_PROFILES)}",
    )


def build_transform(image_size: int, augment: str = "none", train: bool = False) -> v2.Compose:
    steps = [v2.PILToTensor(), v2.Resize((image_size, image_size), antialias=True)]
    augs = _augmentations(augment)  # validated for eval pipelines too, so a typo fails at start-up
    if train:
        steps += augs
    return v2.Compose(steps)
