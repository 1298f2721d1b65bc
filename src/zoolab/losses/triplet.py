"""Batch-hard triplet loss (Hermans, Beyer, Leibe, "In Defense of the Triplet Loss for Person
Re-Identification", 2017), as used by the re-ID baselines (CLIP-ReID, torchreid, fast-reid).

Euclidean distances d_ij = sqrt(max(||x_i||^2 + ||x_j||^2 - 2 x_i.x_j, 1e-12)). For each anchor the
hardest positive d_ap = max over same-label samples other than the anchor itself, the hardest negative
d_an = min over other-label samples, and

    L = mean_anchors relu(d_ap - d_an + margin)          (MarginRankingLoss(margin), y = 1)
    L = mean_anchors log(1 + exp(d_ap - d_an))           (soft margin, margin = None)

Anchors without a positive (or without a negative) in the batch contribute nothing and are left out of
the mean; a batch with no valid anchor gives 0 (still in the graph). A PK sampler makes every anchor valid.

``exclude_self=False`` replays CLIP-FH quirk #13: the anchor counts as its own positive (its distance is
exactly 0), so with plain shuffling an anchor without another same-label sample gets d_ap = 0 and is
pushed only away from its nearest negative.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BatchHardTripletLoss", "pairwise_euclidean"]


def pairwise_euclidean(x: Tensor) -> Tensor:
    """[B, D] -> [B, B] euclidean distances (clamped at 1e-12 before the root; exact 0 on the diagonal)."""
    squared = x.pow(2).sum(dim=1)
    dist = (squared[:, None] + squared[None, :] - 2.0 * x @ x.T).clamp_min(1e-12).sqrt()
    return dist.masked_fill(torch.eye(x.shape[0], dtype=torch.bool, device=x.device), 0.0)


class BatchHardTripletLoss(nn.Module):
    """features [B, D], labels [B] -> scalar batch-hard triplet loss.

    Args:
        margin: triplet margin; None = soft margin (softplus).
        exclude_self: the anchor is not its own positive (False replays CLIP-FH quirk #13).
    """

    def __init__(self, margin: float | None = 0.3, exclude_self: bool = True) -> None:
        super().__init__()
        self.margin = margin
        self.exclude_self = exclude_self

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        if features.ndim != 2 or labels.shape != features.shape[:1]:
            raise ValueError(f"expected features [B, D] and labels [B], got {tuple(features.shape)} "
                             f"and {tuple(labels.shape)}")
        dist = pairwise_euclidean(features.float())
        same = labels[:, None] == labels[None, :]
        positives = same
        if self.exclude_self:
            positives = same & ~torch.eye(len(labels), dtype=torch.bool, device=dist.device)
        negatives = ~same
        valid = positives.any(dim=1) & negatives.any(dim=1)
        if not valid.any():
            return features.sum() * 0.0
        d_ap = dist.masked_fill(~positives, float("-inf")).amax(dim=1)[valid]
        d_an = dist.masked_fill(~negatives, float("inf")).amin(dim=1)[valid]
        if self.margin is None:
            return F.softplus(d_ap - d_an).mean()
        return F.margin_ranking_loss(d_an, d_ap, torch.ones_like(d_an), margin=self.margin)
