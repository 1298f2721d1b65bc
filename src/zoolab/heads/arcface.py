"""Additive angular margin classifier (Deng et al., "ArcFace", CVPR 2019).

With normalised features f and class weights W, cos theta_j = f . W_j. Training logits are
s * cos(theta_y + m) for the true class and s * cos theta_j otherwise; inference logits are
s * cos theta. When theta_y + m would pass pi (cos theta_y <= cos(pi - m)) cos(theta_y + m) stops
decreasing in theta_y, so the usual guard replaces it by cos theta_y - m * sin(pi - m).
For fewer than ~100 classes s around 16-32 is usual; s = 64 is the face-recognition setting.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ArcFaceClassifier"]


class ArcFaceClassifier(nn.Module):
    """features [B, in_features] (+ labels [B] when training) -> logits [B, num_classes]."""

    def __init__(self, in_features: int, num_classes: int, s: float = 30.0, m: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= m < math.pi / 2:
            raise ValueError(f"margin m must be in [0, pi/2), got {m}")
        self.in_features = in_features
        self.num_classes = num_classes
        self.s = s
        self.m = m
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.xavier_uniform_(self.weight)

    def cosine(self, features: Tensor) -> Tensor:
        """cos theta [B, num_classes] between normalised features and normalised class weights."""
        return F.linear(F.normalize(features, dim=1), F.normalize(self.weight, dim=1)).clamp(-1.0, 1.0)

    def forward(self, features: Tensor, labels: Tensor | None = None) -> Tensor:
        cos = self.cosine(features)
        if labels is None:
            return self.s * cos
        labels = labels.long()[:, None]
        cos_y = cos.gather(1, labels)
        # clamp away from 0: the gradient of sqrt is infinite at |cos| = 1.
        sin_y = (1.0 - cos_y.pow(2)).clamp_min(1e-12).sqrt()
        with_margin = cos_y * math.cos(self.m) - sin_y * math.sin(self.m)
        fallback = cos_y - self.m * math.sin(math.pi - self.m)
        target = torch.where(cos_y > math.cos(math.pi - self.m), with_margin, fallback)
        return self.s * cos.scatter(1, labels, target)
