"""Long-tail knobs for cross-entropy: class weights, logit adjustment and one explicit normaliser.

- Effective-number class weights: Cui et al., "Class-Balanced Loss Based on Effective Number of
  Samples", CVPR 2019. w_c = (1 - beta) / (1 - beta^{n_c}), normalised to sum to the class count.
- Logit adjustment: Menon et al., "Long-tail learning via logit adjustment", ICLR 2021. Training loss
  CE(f(x) + tau * log pi, y); post-hoc rule argmax_y f_y(x) - tau * log pi_y. With tau = 1 the loss
  equals Balanced Softmax (Ren et al., NeurIPS 2020): log n_y and log pi_y differ by a constant.
- ``F.cross_entropy`` divides 'mean' by sum_i w_{y_i} for hard labels but by N for soft targets, so
  switching mixup on silently rescales a weighted loss. ``LogitAdjustedCrossEntropy`` sums and divides
  by one normaliser that is the same for both target kinds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "LogitAdjustedCrossEntropy",
    "adjust_logits",
    "class_counts",
    "class_weights",
    "log_priors",
]

WEIGHT_KINDS = ("none", "inverse", "effective")


def class_counts(labels: Tensor, num_classes: int) -> Tensor:
    """Samples per class as a float tensor of length ``num_classes``."""
    labels = torch.as_tensor(labels).long().flatten()
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got range "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    return torch.bincount(labels, minlength=num_classes).float()


def class_weights(counts: Tensor, kind: str = "none", beta: float = 0.9999) -> Tensor | None:
    """Per-class loss weights from training counts, or None for ``kind='none'``.

    ``inverse``: w_c = 1 / n_c. ``effective``: w_c = (1 - beta) / (1 - beta^{n_c}). Either way the
    weights are rescaled to sum to C, where C counts only the classes with samples: an empty class gets
    weight 0 and stays out of the normalisation, so a present class weighs 1 on average.
    """
    if kind not in WEIGHT_KINDS:
        raise ValueError(f"class weight kind must be one of {WEIGHT_KINDS}, got {kind!r}")
    if kind == "none":
        return None
    counts = torch.as_tensor(counts)
    if counts.ndim != 1 or (counts < 0).any():
        raise ValueError(f"counts must be a 1-D tensor of non-negative values, got {counts.tolist()}")
    # float64: for beta = 0.9999 and small n, 1 - beta^n is ~1e-4 and float32 would lose 3 digits.
    n = counts.double()
    present = n > 0
    if not present.any():
        raise ValueError("counts are all zero; cannot compute class weights")
    weights = torch.zeros_like(n)
    if kind == "inverse":
        weights[present] = 1.0 / n[present]
    else:
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        weights[present] = (1.0 - beta) / (1.0 - beta ** n[present])
    weights = weights * present.sum() / weights.sum()
    return weights.to(counts.dtype if counts.is_floating_point() else torch.float32)


def log_priors(counts: Tensor, eps: float = 1e-12) -> Tensor:
    """log(pi + eps) with pi = counts / sum(counts), the training label frequencies."""
    counts = torch.as_tensor(counts).float()
    if counts.sum() <= 0:
        raise ValueError("counts must have a positive sum")
    return torch.log(counts / counts.sum() + eps)


def adjust_logits(logits: Tensor, log_prior: Tensor, tau: float, sign: int) -> Tensor:
    """logits + sign * tau * log_prior: sign=+1 inside the training loss, -1 for post-hoc inference."""
    if sign not in (1, -1):
        raise ValueError(f"sign must be +1 (training loss) or -1 (post-hoc), got {sign}")
    return logits + sign * tau * log_prior.to(device=logits.device, dtype=logits.dtype)


class LogitAdjustedCrossEntropy(nn.Module):
    """Weighted, label-smoothed, logit-adjusted cross-entropy for hard or soft (mixup) targets.

    With t the target distribution ([B] indices are one-hot encoded), t~ = (1 - eps) t + eps / C and
    z = logits + tau * log_prior (if a prior is set):

        loss = sum_i sum_c -w_c t~_ic log softmax(z_i)_c  /  sum_i sum_c t_ic w_c

    with w = 1 and the denominator N when no weight is set. For hard labels this equals
    ``F.cross_entropy(z, y, weight=w, label_smoothing=eps)``; a one-hot soft target gives exactly the
    same value, which ``F.cross_entropy`` with probability targets does not (it divides by N).
    The prior is added whenever it is set (the loss *is* the LA loss); the post-hoc correction belongs
    to inference, see ``adjust_logits(..., sign=-1)``.
    """

    weight: Tensor | None
    log_prior: Tensor | None

    def __init__(self, label_smoothing: float = 0.0, weight: Tensor | None = None,
                 log_prior: Tensor | None = None, tau: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing
        self.tau = tau
        self.register_buffer("weight", None)
        self.register_buffer("log_prior", None)
        self.set_buffers(weight=weight, log_prior=log_prior)

    def set_buffers(self, weight: Tensor | None = None, log_prior: Tensor | None = None) -> None:
        """Install class weights and/or log priors (from the training split); None leaves one as is."""
        if weight is not None:
            self.weight = torch.as_tensor(weight, dtype=torch.float32).detach().clone()
        if log_prior is not None:
            self.log_prior = torch.as_tensor(log_prior, dtype=torch.float32).detach().clone()

    def forward(self, logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        """Loss of a batch; ``reduction="none"`` gives per-sample losses scaled so that their mean equals
        the ``"mean"`` result (used by hard-example mining to keep the hardest samples)."""
        num_classes = logits.shape[-1]
        targets = self._as_distribution(target, num_classes).to(logits.dtype)
        if self.log_prior is not None:
            logits = adjust_logits(logits, self.log_prior, self.tau, sign=1)
        smoothed = (1.0 - self.label_smoothing) * targets + self.label_smoothing / num_classes
        nll = -F.log_softmax(logits, dim=-1)
        if self.weight is None:
            per_sample, normaliser = (smoothed * nll).sum(-1), float(targets.shape[0])
        else:
            weight = self.weight.to(device=logits.device, dtype=logits.dtype)
            per_sample, normaliser = (smoothed * nll * weight).sum(-1), (targets * weight).sum()
        if reduction == "none":
            return per_sample * (targets.shape[0] / normaliser)
        if reduction != "mean":
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        return per_sample.sum() / normaliser

    @staticmethod
    def _as_distribution(target: Tensor, num_classes: int) -> Tensor:
        if target.ndim == 1:
            return F.one_hot(target.long(), num_classes)
        if target.ndim == 2 and target.shape[1] == num_classes:
            return target
        raise ValueError(f"target must be class indices [B] or probabilities [B, {num_classes}], "
                         f"got shape {tuple(target.shape)}")
