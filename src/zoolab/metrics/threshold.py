"""Threshold analysis for a positive ("pit") class: recall-targeted threshold, abstain band, sample size.

Given ``scores`` = P(pit | x) and the true ``is_positive`` flags on a validation set:

- ``threshold_for_recall`` sorts the positive scores s_(1) <= ... <= s_(n), allows
  k = floor((1 - target) * n) misses and returns t* = s_(k+1); a sample is called positive iff
  score >= t*.
- ``clopper_pearson_lower`` is the one-sided exact binomial lower bound on recall, and
  ``pits_needed_for_recall_claim`` the number of test positives needed before a recall target can
  be claimed at all (299 pits with zero misses for 0.99 at 95%).
- ``threshold_analysis`` adds the two-threshold clean / maybe / pit rule.

For orientation: with zero misses the 95% lower bound is 0.9705 at 100 pits, 0.9851 at 200 and 0.9901
at 300; 500 pits with one miss give 0.9905. docs/cherry.md describes how the cherry experiments use
this analysis.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "apply_threshold",
    "evaluate_band",
    "clopper_pearson_lower",
    "pits_needed_for_recall_claim",
    "threshold_analysis",
    "threshold_for_recall",
]

# (1 - 0.9) * 10 evaluates to 0.9999999999999998; without slack floor() would allow 0 misses, not 1.
_FLOOR_EPS = 1e-9


def _as_array(values: np.ndarray | torch.Tensor, name: str, dtype: type) -> np.ndarray:
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    return array.astype(dtype)


def _scores_and_labels(scores: np.ndarray | torch.Tensor,
                       is_positive: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    s = _as_array(scores, "scores", np.float64)
    pos = _as_array(is_positive, "is_positive", bool)
    if s.shape != pos.shape:
        raise ValueError(f"scores and is_positive differ in length: {s.shape[0]} vs {pos.shape[0]}")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinite values")
    return s, pos


def _check_fraction(value: float, name: str) -> None:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value}")


def threshold_for_recall(scores: np.ndarray | torch.Tensor, is_positive: np.ndarray | torch.Tensor,
                         target_recall: float = 0.99) -> float:
    """Return the highest threshold t* such that ``score >= t*`` keeps at least ``target_recall``.

    With n positives, k = floor((1 - target_recall) * n) of them may fall below t*, so
    t* = s_(k+1), the (k+1)-th smallest positive score. Ties at t* are kept (``>=``).
    """
    _check_fraction(target_recall, "target_recall")
    s, pos = _scores_and_labels(scores, is_positive)
    positive_scores = np.sort(s[pos])
    n = positive_scores.size
    if n == 0:
        raise ValueError("threshold_for_recall needs at least one positive sample; is_positive is all False")
    allowed_misses = math.floor((1.0 - target_recall) * n + _FLOOR_EPS)
    return float(positive_scores[allowed_misses])


def clopper_pearson_lower(successes: int, trials: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson lower bound on a binomial proportion: Beta(1 - confidence; x, n - x + 1)."""
    from scipy.stats import beta

    if trials <= 0:
        raise ValueError(f"trials must be positive, got {trials}")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in [0, trials={trials}], got {successes}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if successes == 0:
        return 0.0
    return float(beta.ppf(1.0 - confidence, successes, trials - successes + 1))


def pits_needed_for_recall_claim(target_recall: float = 0.99, confidence: float = 0.95,
                                 misses: int = 0) -> int:
    """Smallest number of test positives n such that observing ``misses`` misses among them gives a
    one-sided Clopper-Pearson lower bound on recall of at least ``target_recall``.

    With zero misses the bound is (1 - confidence)^(1/n), so n = ceil(log(1 - confidence) / log(target)).
    """
    if not 0.0 < target_recall < 1.0:
        raise ValueError(f"target_recall must be in (0, 1) for a finite sample size, got {target_recall}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if misses < 0:
        raise ValueError(f"misses must be >= 0, got {misses}")
    zero_miss_n = math.ceil(math.log(1.0 - confidence) / math.log(target_recall))
    if misses == 0:
        return zero_miss_n
    # The bound grows with n at fixed misses and every miss costs samples, so start at the zero-miss n.
    n = max(zero_miss_n, misses + 1)
    while clopper_pearson_lower(n - misses, n, confidence) < target_recall:
        n += 1
    return n


def apply_threshold(scores: np.ndarray | torch.Tensor, threshold: float) -> np.ndarray:
    """Return a bool array: True where ``score >= threshold`` (called positive)."""
    return _as_array(scores, "scores", np.float64) >= threshold


def _precision_at(s: np.ndarray, pos: np.ndarray, threshold: float) -> float:
    called = s >= threshold
    return float(pos[called].mean()) if called.any() else 0.0


def _band_high(s: np.ndarray, pos: np.ndarray, low: float, target_precision: float) -> float:
    """Smallest observed score t >= low whose precision P(pit | score >= t) reaches the target.

    Precision only changes at observed scores, so those are the only candidates. Without one,
    return the next float above the maximum score: no sample is ever called pit outright.
    """
    sorted_all = np.sort(s)
    sorted_pos = np.sort(s[pos])
    candidates = np.unique(s[s >= low])
    called = s.size - np.searchsorted(sorted_all, candidates, side="left")
    true_called = sorted_pos.size - np.searchsorted(sorted_pos, candidates, side="left")
    reached = np.flatnonzero(true_called / called >= target_precision)
    if reached.size:
        return float(candidates[reached[0]])
    return float(np.nextafter(s.max(), np.inf))


def threshold_analysis(scores: np.ndarray | torch.Tensor, is_positive: np.ndarray | torch.Tensor,
                       target_recall: float = 0.99, target_precision: float = 0.99,
                       negative_mask: np.ndarray | torch.Tensor | None = None) -> dict:
    """Pick the recall threshold on ``scores`` and describe the three-way clean / maybe / pit rule.

    Band definition (``band_low`` = ``threshold`` = t_low from ``threshold_for_recall``):

    - ``score >= band_high`` -> pit (confident enough to reject without inspection);
    - ``band_low <= score < band_high`` -> maybe (manual inspection);
    - ``score < band_low`` -> clean (auto-accept; at most ``1 - target_recall`` of pits land here).

    ``band_high`` is the smallest threshold t >= t_low at which precision among ``score >= t``
    reaches ``target_precision``; when no threshold reaches it, it is the next float above the
    maximum score (nothing is ever called pit outright) and ``band_precision_high`` is 0.0.

    Args:
        scores: P(pit | x), shape ``[N]``.
        is_positive: True for pits, shape ``[N]``.
        target_recall: fraction of pits that must score at or above t_low.
        target_precision: pit precision required above ``band_high``.
        negative_mask: samples that count as negatives for ``negative_recall_at_threshold``
            (e.g. only the 'clean' class); default is every non-positive sample.

    Returns:
        A JSON-ready dict of python floats, ints and bools; ``negative_recall_at_threshold`` is
        NaN when there are no negatives, and ``pits_needed`` is None for ``target_recall == 1``
        (no finite sample supports that claim).
    """
    _check_fraction(target_precision, "target_precision")
    low = threshold_for_recall(scores, is_positive, target_recall)
    s, pos = _scores_and_labels(scores, is_positive)
    high = _band_high(s, pos, low, target_precision)
    return evaluate_band(s, pos, low, high, negative_mask, target_recall)


def evaluate_band(scores: np.ndarray | torch.Tensor, is_positive: np.ndarray | torch.Tensor,
                  band_low: float, band_high: float,
                  negative_mask: np.ndarray | torch.Tensor | None = None,
                  target_recall: float = 0.99) -> dict:
    """Describe fixed thresholds (fitted elsewhere, e.g. on val) on these scores: the same keys as
    :func:`threshold_analysis`, so a threshold frozen on val can be reported on test."""
    s, pos = _scores_and_labels(scores, is_positive)
    neg = ~pos if negative_mask is None else _as_array(negative_mask, "negative_mask", bool)
    if neg.shape != s.shape:
        raise ValueError(f"negative_mask has length {neg.shape[0]}, expected {s.shape[0]}")
    low, high = float(band_low), float(band_high)
    num_positives = int(pos.sum())
    caught = int((s[pos] >= low).sum())
    recall_lower = clopper_pearson_lower(caught, num_positives, 0.95) if num_positives else 0.0
    return {
        "target_recall": float(target_recall),
        "threshold": low,
        "recall_at_threshold": caught / num_positives if num_positives else float("nan"),
        "precision_at_threshold": _precision_at(s, pos, low),
        "negative_recall_at_threshold": float((s[neg] < low).mean()) if neg.any() else float("nan"),
        "recall_cp95_lower": recall_lower,
        "num_positives": num_positives,
        "pits_needed": pits_needed_for_recall_claim(target_recall) if target_recall < 1.0 else None,
        "claim_supported": bool(recall_lower >= target_recall),
        "band_low": low,
        "band_high": high,
        "band_fraction": float(((s >= low) & (s < high)).mean()),
        "band_precision_high": _precision_at(s, pos, high),
    }
