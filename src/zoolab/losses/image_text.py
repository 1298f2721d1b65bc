"""Symmetric supervised image-text contrastive loss (the i2t + t2i SupCon of CLIP-ReID stage 1 and of
PromptSG's pseudo-token learning), with identity labels defining the positives.

With L2-normalised image features v_i, text features t_j and temperature T, logits s_ij = v_i.t_j / T:

    L_i2t = -mean_i  1/|P(i)| sum_{j in P(i)} log softmax_j(s_i.)[j]
    L_t2i = -mean_j  1/|P(j)| sum_{i in P(j)} log softmax_i(s_.j)[i]
    L     = (L_i2t + L_t2i) / 2

P(i) = the batch entries sharing i's label (always including i itself, whose text is its own prompt).
The two directions are averaged, so PromptSG's lambda * (L_i2t + L_t2i) with lambda = 0.5 is a weight of
1.0 on this loss. On normalised features the logits lie in [-1/T, 1/T]: T = 1.0 (CLIP-ReID's value, used
there on unnormalised features) gives a bounded, gentle signal; CLIP-FH used T = 0.07.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SymmetricSupConLoss"]


def _mean_positive_log_prob(logits: Tensor, positives: Tensor) -> Tensor:
    log_prob = logits - logits.logsumexp(dim=1, keepdim=True)
    return (log_prob * positives).sum(dim=1) / positives.sum(dim=1)


class SymmetricSupConLoss(nn.Module):
    """image_features [B, D], text_features [B, D], labels [B] -> scalar."""

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, image_features: Tensor, text_features: Tensor, labels: Tensor) -> Tensor:
        if image_features.shape != text_features.shape or image_features.ndim != 2 \
                or labels.shape != image_features.shape[:1]:
            shapes = [tuple(t.shape) for t in (image_features, text_features, labels)]
            raise ValueError(f"expected image and text features [B, D] and labels [B], got {shapes}")
        logits = F.normalize(image_features.float(), dim=1) @ F.normalize(text_features.float(), dim=1).T
        logits = logits / self.temperature
        positives = (labels[:, None] == labels[None, :]).float()
        i2t = -_mean_positive_log_prob(logits, positives).mean()
        t2i = -_mean_positive_log_prob(logits.T, positives.T).mean()
        return (i2t + t2i) / 2
