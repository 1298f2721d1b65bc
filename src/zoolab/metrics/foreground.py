"""Foreground-only classification report: per-class P/R/F1 and macro/weighted averages without background.

Every per-class count is taken over *all* samples, so predicting background on a foreground sample is a
false negative for that sample's class and predicting a foreground class on a background sample is a
false positive for the predicted class. Only the averages leave the background class out, as in
``sklearn.metrics.f1_score(y, y_hat, labels=FG, average='macro', zero_division=0)``.

Choice: FG is the set of foreground classes *present in y_true* (support > 0). A foreground class that
never occurs in y_true has an undefined recall; it is still listed in ``per_class`` (with zeros) but
is left out of the macro averages. Passing every foreground class to sklearn's ``labels=`` instead
would average such classes in as 0.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

__all__ = ["foreground_report"]


def _indices(values: np.ndarray | Tensor | list[int], name: str, num_classes: int) -> np.ndarray:
    array = values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D class indices, got shape {array.shape}")
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes}), got range [{array.min()}, {array.max()}]")
    return array.astype(np.int64)


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (sklearn's zero_division=0)."""
    return np.divide(numerator, denominator, out=np.zeros_like(numerator, dtype=np.float64),
                     where=denominator > 0)


def foreground_report(y_true: np.ndarray | Tensor | list[int], y_pred: np.ndarray | Tensor | list[int],
                      class_names: list[str], background: str | None) -> dict:
    """Report on integer labels indexing ``class_names``; ``background=None`` means all classes are fg.

    Keys: ``macro_f1_fg``, ``weighted_f1_fg`` (support-weighted), ``macro_precision_fg``,
    ``macro_recall_fg``, ``accuracy`` (all samples, background included), ``per_class``
    ({name: {precision, recall, f1, support}} for every class) and ``num_samples``.
    """
    num_classes = len(class_names)
    if background is not None and background not in class_names:
        raise ValueError(f"background {background!r} is not one of the class names {class_names}")
    y = _indices(y_true, "y_true", num_classes)
    y_hat = _indices(y_pred, "y_pred", num_classes)
    if y.shape != y_hat.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y.size} vs {y_hat.size}")

    tp = np.bincount(y[y == y_hat], minlength=num_classes).astype(np.float64)
    support = np.bincount(y, minlength=num_classes).astype(np.float64)
    predicted = np.bincount(y_hat, minlength=num_classes).astype(np.float64)
    precision = _safe_ratio(tp, predicted)
    recall = _safe_ratio(tp, support)
    f1 = _safe_ratio(2 * tp, support + predicted)  # = 2PR / (P + R), and 0 where that is undefined

    fg = np.array([name != background for name in class_names]) & (support > 0)
    fg_support = support[fg].sum()

    def macro(values: np.ndarray) -> float:
        return float(values[fg].mean()) if fg.any() else 0.0

    return {
        "macro_f1_fg": macro(f1),
        "weighted_f1_fg": float((f1[fg] * support[fg]).sum() / fg_support) if fg_support else 0.0,
        "macro_precision_fg": macro(precision),
        "macro_recall_fg": macro(recall),
        "accuracy": float((y == y_hat).mean()) if y.size else 0.0,
        "per_class": {
            name: {"precision": float(precision[c]), "recall": float(recall[c]), "f1": float(f1[c]),
                   "support": int(support[c])}
            for c, name in enumerate(class_names)
        },
        "num_samples": int(y.size),
    }
