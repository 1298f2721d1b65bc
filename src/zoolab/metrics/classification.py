"""Multiclass classification report and confusion-matrix figure (PNG bytes).

``classification_report`` returns a flat, JSON-ready dict (python scalars and lists only) with
macro precision / recall / F1 over *all* classes, per-class scores and the confusion matrix
(rows true, columns predicted). Conventions follow scikit-learn's ``classification_report`` with
``labels=range(C)`` and ``zero_division=0``: a class that is never predicted (or never present)
scores 0 for the undefined ratio and still counts in the macro mean, and macro F1 is the mean of
per-class F1 values, not the F1 of macro precision and recall.
"""

from __future__ import annotations

import io
import textwrap

import numpy as np
import torch

__all__ = ["classification_report", "confusion_matrix", "confusion_matrix_png", "normalized_confusion"]


def _as_labels(y: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    array = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    return array.astype(np.int64)


def confusion_matrix(y_true: np.ndarray | torch.Tensor, y_pred: np.ndarray | torch.Tensor,
                     num_classes: int) -> np.ndarray:
    """Return the ``[C, C]`` count matrix with rows = true class and columns = predicted class."""
    true, pred = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    if true.shape != pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {true.shape[0]} vs {pred.shape[0]}")
    for name, labels in (("y_true", true), ("y_pred", pred)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{name} has labels outside [0, {num_classes}): "
                             f"min {labels.min()}, max {labels.max()}")
    counts = np.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def classification_report(y_true: np.ndarray | torch.Tensor, y_pred: np.ndarray | torch.Tensor,
                          class_names: list[str]) -> dict:
    """Summarise multiclass predictions.

    Args:
        y_true: true class indices, shape ``[N]``.
        y_pred: predicted class indices, shape ``[N]``.
        class_names: one name per class index; its length fixes the number of classes.

    Returns:
        ``accuracy``, macro ``f1``, ``precision`` and ``recall``; ``per_class`` mapping each name
        to ``{precision, recall, f1, support}``; ``confusion_matrix`` as a list of lists (rows
        true, columns predicted); ``num_samples``.
    """
    if not class_names:
        raise ValueError("class_names is empty; pass one name per class index")
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"class_names has duplicates: {class_names}")
    cm = confusion_matrix(y_true, y_pred, len(class_names))
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    precision = _safe_ratio(tp, cm.sum(axis=0))
    recall = _safe_ratio(tp, support)
    f1 = _safe_ratio(2 * precision * recall, precision + recall)
    num_samples = int(cm.sum())
    per_class = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
    }
    return {
        "accuracy": float(tp.sum() / num_samples) if num_samples else 0.0,
        "f1": float(f1.mean()),
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "num_samples": num_samples,
    }


def normalized_confusion(cm: list[list[int]]) -> np.ndarray:
    """Each row divided by its total (the share of each true class predicted as each class); empty rows 0."""
    counts = np.asarray(cm, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def confusion_matrix_png(cm: list[list[int]], class_names: list[str], title: str = "",
                         normalize: bool = False) -> bytes:
    """``cm`` (rows true, columns predicted) drawn with annotated counts, as PNG bytes; ``normalize``
    colours and labels each cell by its share of the true class's row (recall on the diagonal), with the
    count below.

    Nothing is written: the caller decides where the figure goes. Rendering uses the Agg canvas
    directly, which works headless and leaves the caller's pyplot backend and figure list untouched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = np.asarray(cm)
    if counts.shape != (len(class_names), len(class_names)):
        raise ValueError(f"cm has shape {counts.shape}, expected ({len(class_names)}, {len(class_names)}) "
                         "to match class_names")
    shown = normalized_confusion(counts) if normalize else counts
    side = 1.0 + 0.9 * len(class_names)
    fig = Figure(figsize=(side + 1.5, side + 0.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, labels=class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, labels=class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (rows sum to 1)" if normalize else "true")
    if title:   # centred on the figure and wrapped to its width (about 9 characters per inch at this size)
        fig.suptitle("\n".join(textwrap.wrap(title, width=max(24, int(9 * (side + 1.5))))), fontsize=9)
    dark_above = (1.0 if normalize else shown.max()) / 2 if shown.size else 0
    for (row, col), value in np.ndenumerate(shown):
        text = f"{value:.2f}\n({counts[row, col]})" if normalize else str(value)
        ax.text(col, row, text, ha="center", va="center", fontsize=8,
                color="white" if value > dark_above else "black")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()
