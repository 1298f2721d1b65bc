"""Single-view supervised contrastive loss (Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020).

For L2-normalised features z and temperature tau, with P(i) the other samples sharing i's label:

    L = mean_{i : |P(i)| > 0}  -(tau / tau_base) / |P(i)| * sum_{p in P(i)}
            log[ exp(z_i . z_p / tau) / sum_{a != i} exp(z_i . z_a / tau) ]

This is the ``contrast_mode='all'`` loss of the authors' ``SupConLoss`` (SupContrast) with one view per
sample. That implementation averages over every anchor and returns NaN when an anchor has no positive;
here such anchors are left out of the mean, and a batch without any positive pair gives 0 (still in the
graph). With per-class ``class_weights`` w, the mean over anchors becomes sum_i w_{y_i} L_i / sum_i w_{y_i}
(the class-weighted contrastive term: rare-class anchors count more, as in a class-weighted CE).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SupConLoss"]


class SupConLoss(nn.Module):
    def __init__(self, temperature: float = 0.07, base_temperature: float = 0.07) -> None:
        super().__init__()
        if temperature <= 0 or base_temperature <= 0:
            raise ValueError(f"temperatures must be positive, got {temperature}, {base_temperature}")
        self.temperature = temperature
        self.base_temperature = base_temperature

    def forward(self, features: Tensor, labels: Tensor, class_weights: Tensor | None = None) -> Tensor:
        """features [B, D] (normalised here), labels [B], optional per-class weights [C] -> scalar loss."""
        if features.ndim != 2 or labels.shape != features.shape[:1]:
            raise ValueError(f"expected features [B, D] and labels [B], got {tuple(features.shape)} "
                             f"and {tuple(labels.shape)}")
        z = F.normalize(features, dim=1)
        sim = z @ z.T / self.temperature
        self_mask = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
        positives = (labels[:, None] == labels[None, :]) & ~self_mask
        num_pos = positives.sum(dim=1)
        has_pos = num_pos > 0
        if not has_pos.any():
            return features.sum() * 0.0
        log_denominator = torch.logsumexp(sim.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
        log_prob = sim - log_denominator
        mean_log_prob_pos = torch.where(positives, log_prob, 0.0).sum(dim=1)[has_pos] / num_pos[has_pos]
        per_anchor = -(self.temperature / self.base_temperature) * mean_log_prob_pos
        if class_weights is None:
            return per_anchor.mean()
        weights = class_weights.to(per_anchor)[labels[has_pos]]
        return (weights * per_anchor).sum() / weights.sum()
