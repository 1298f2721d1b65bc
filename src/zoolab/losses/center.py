"""Center loss (Wen et al., "A Discriminative Feature Learning Approach for Deep Face Recognition",
ECCV 2016).

L_C = (1/B) sum_i ||x_i - c_{y_i}||^2, without the paper's 1/2, as in the widely used
``KaiyangZhou/pytorch-center-loss``; it is added to cross-entropy as L = CE + lambda * L_C.

The centres are an ``nn.Parameter`` that is meant to get its own optimiser param group (SGD, lr 0.5 in
the original, with the centre gradients scaled by 1/lambda so lambda does not change the centre
learning rate). The task module builds that group; this module only defines the loss.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["CenterLoss"]


class CenterLoss(nn.Module):
    def __init__(self, num_classes: int, feat_dim: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.feat_dim = feat_dim
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        """features [B, feat_dim], labels [B] -> mean squared distance to the own class centre."""
        if features.ndim != 2 or features.shape[1] != self.feat_dim or labels.shape != features.shape[:1]:
            raise ValueError(f"expected features [B, {self.feat_dim}] and labels [B], got "
                             f"{tuple(features.shape)} and {tuple(labels.shape)}")
        return (features - self.centers[labels.long()]).pow(2).sum(dim=1).mean()
