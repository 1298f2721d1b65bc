"""Calibration: top-label ECE, temperature scaling and reliability diagrams (PNG bytes).

Guo et al., "On Calibration of Modern Neural Networks", ICML 2017; the ECE binning and the temperature
fit (start at T = 1.5, LBFGS with lr 0.01 on the validation NLL) follow ``gpleiss/temperature_scaling``.
Here log T is optimised so that T stays positive, in float64 and with a strong-Wolfe line search:
with a fixed step of lr = 0.01 times the quasi-Newton step, 50 iterations stop around T = 1.67 when
the true T is 2. Scaling by T does not change the argmax, so accuracy and F1 are unchanged; it
matters once probabilities are thresholded.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["expected_calibration_error", "fit_temperature", "reliability_png"]


def _as_numpy(values: np.ndarray | Tensor) -> np.ndarray:
    return values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)


def _bin_stats(probs: np.ndarray | Tensor, labels: np.ndarray | Tensor,
               n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin: sample count, accuracy and mean confidence (0 for empty bins)."""
    p = _as_numpy(probs).astype(np.float64)
    y = _as_numpy(labels).astype(np.int64)
    if p.ndim != 2 or y.shape != p.shape[:1]:
        raise ValueError(f"expected probs [N, C] and labels [N], got {p.shape} and {y.shape}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    upper_edges = np.linspace(0.0, 1.0, n_bins + 1)[1:]
    # Bin b holds lower_b < conf <= upper_b; conf == 0 falls in bin 0, rounding above 1 in the last.
    bins = np.minimum(np.searchsorted(upper_edges, confidence, side="left"), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins).astype(np.float64)
    safe = np.maximum(counts, 1.0)
    accuracy = np.bincount(bins, weights=correct, minlength=n_bins) / safe
    mean_conf = np.bincount(bins, weights=confidence, minlength=n_bins) / safe
    return counts, accuracy, mean_conf


def expected_calibration_error(probs: np.ndarray | Tensor, labels: np.ndarray | Tensor,
                               n_bins: int = 15) -> float:
    """Top-label expected calibration error.

    conf_i = max_c probs[i, c] and correct_i = [argmax_c probs[i, c] == labels[i]]. The interval [0, 1]
    is cut into ``n_bins`` equal-width bins and sample i belongs to bin b iff
    b/n_bins < conf_i <= (b+1)/n_bins (a confidence of exactly 0 goes to the first bin). Then

        ECE = sum_b (|B_b| / N) * |mean_{i in B_b} correct_i - mean_{i in B_b} conf_i|

    over non-empty bins. This is the gpleiss ``_ECELoss`` definition; torchmetrics'
    ``MulticlassCalibrationError`` uses [lower, upper) bins instead and can differ on bin edges.
    ``probs`` must already be probabilities (apply softmax to logits first).
    """
    counts, accuracy, mean_conf = _bin_stats(probs, labels, n_bins)
    return float(np.sum(counts / counts.sum() * np.abs(accuracy - mean_conf)))


def fit_temperature(logits: Tensor, labels: Tensor, max_iter: int = 50) -> float:
    """T > 0 minimising NLL(softmax(logits / T), labels); fit on validation logits, never on test."""
    logits = torch.as_tensor(logits).detach().double()
    labels = torch.as_tensor(labels).detach().long().to(logits.device)
    log_t = torch.tensor(math.log(1.5), dtype=torch.float64, device=logits.device, requires_grad=True)
    # The line search lets lr=0.01 be a first trial step, not the step (see the module docstring).
    optimizer = torch.optim.LBFGS([log_t], lr=0.01, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def reliability_png(probs: np.ndarray | Tensor, labels: np.ndarray | Tensor, n_bins: int = 15,
                    title: str = "", probs_before: np.ndarray | Tensor | None = None) -> bytes:
    """Accuracy per confidence bin (bars, with each bin's sample count above it) against the diagonal, as
    PNG bytes; ``probs_before`` (the same samples before temperature scaling) adds their per-bin accuracy
    as a line, so the effect of the temperature is visible. Nothing is written."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts, accuracy, _ = _bin_stats(probs, labels, n_bins)
    ece = expected_calibration_error(probs, labels, n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    after = "after T" if probs_before is not None else "accuracy"

    fig = Figure(figsize=(5.0, 4.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.bar(edges[:-1], np.where(counts > 0, accuracy, 0.0), width=1.0 / n_bins, align="edge",
           edgecolor="black", label=f"{after} (ECE {ece:.4f})")
    for left, count, value in zip(edges[:-1], counts, accuracy):
        if count:
            ax.text(left + 0.5 / n_bins, min(value, 0.93) + 0.015, str(int(count)), ha="center", fontsize=6)
    title_ece = f"ECE {ece:.4f}"
    if probs_before is not None:
        before_counts, before_accuracy, before_conf = _bin_stats(probs_before, labels, n_bins)
        before_ece = expected_calibration_error(probs_before, labels, n_bins)
        filled = before_counts > 0
        ax.plot(before_conf[filled], before_accuracy[filled], marker="o", color="tab:orange",
                label=f"before T (ECE {before_ece:.4f})")
        title_ece = f"ECE {before_ece:.4f} -> {ece:.4f} with T"
    ax.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="gray", label="perfect calibration")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("confidence (numbers: samples per bin)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title} · {title_ece}" if title else title_ece, fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
