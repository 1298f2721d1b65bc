"""Image classification: accuracy, macro and per-class P/R/F1, the confusion matrix (JSON and figure) and,
for the positive (pit) class, the threshold analysis.

The pit band is fitted on ``val`` and the same frozen band is reported on every later split: an evaluator
of split ``val`` fits it and keeps it in :attr:`ClassificationEvaluator.band`, and the task hands that band
to the evaluators of the splits that follow. A split evaluated before any band was fitted gets its own
analysis (``fitted_on`` names that split) and fits nothing.
"""

from __future__ import annotations

import numpy as np
import torch

from zoolab.evaluators.base import Evaluation, Evaluator, gather_rows

__all__ = ["ClassificationEvaluator", "threshold_metrics"]


def threshold_metrics(split: str, probs: np.ndarray, labels: np.ndarray, class_names: list[str],
                      positive_class: str, target_recall: float, target_precision: float,
                      band: dict | None) -> tuple[dict, dict | None]:
    """(threshold analysis of ``split``, the band later splits reuse): ``val`` (or any split while no band
    is fitted) gets a fresh analysis; other splits are scored with the frozen ``band``."""
    from zoolab.metrics.threshold import evaluate_band, threshold_analysis

    pos = class_names.index(positive_class)
    scores, is_positive = probs[:, pos], labels == pos
    negative = labels == 0 if pos != 0 else labels != pos  # class 0 is "clean" in the report's order
    if split == "val" or band is None:
        analysis = threshold_analysis(scores, is_positive, target_recall, target_precision, negative_mask=negative)
        if split == "val":
            band = {k: analysis[k] for k in ("band_low", "band_high")}
        analysis["fitted_on"] = split
        return analysis, band
    result = evaluate_band(scores, is_positive, **band, negative_mask=negative)
    result["fitted_on"] = "val"
    return result, band


class ClassificationEvaluator(Evaluator):
    """``process(logits, labels)`` per batch; ``evaluate()`` gives the classification report (plus
    ``threshold`` when ``positive_class`` is set) and ``confusion_matrix_<split>.png``.

    Args:
        class_names: label order.
        positive_class: the class analysed for recall thresholds (None: no threshold analysis).
        target_recall, target_precision: the band's targets.
        band: ``{band_low, band_high}`` fitted on val earlier, reused by splits other than ``val``.
        split: the split's name (may be set later, before :meth:`evaluate`).
    """

    def __init__(self, class_names: list[str], positive_class: str | None = None, target_recall: float = 0.99,
                 target_precision: float = 0.99, band: dict | None = None, split: str | None = None,
                 run_name: str = "") -> None:
        self.class_names = list(class_names)
        self.run_name = run_name  # the experiment, in figure titles
        self.positive_class = positive_class if positive_class in self.class_names else None
        self.target_recall, self.target_precision = target_recall, target_precision
        self.band = dict(band) if band else None
        self.split = split
        self.reset()

    def reset(self) -> None:
        self._probs: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def process(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self._probs.append(logits.detach().float().softmax(dim=1).cpu())
        self._labels.append(labels.detach().cpu())

    def evaluate(self) -> Evaluation:
        from zoolab.metrics.classification import classification_report, confusion_matrix_png

        if not self._probs:
            raise ValueError("nothing to evaluate: no batch was processed since the last reset")
        if not self.split:
            raise ValueError("set the evaluator's split before evaluate(): val fits the pit band, others reuse it")
        split = self.split
        probs = gather_rows(torch.cat(self._probs), self.num_samples).numpy()
        labels = gather_rows(torch.cat(self._labels), self.num_samples).numpy()
        metrics = classification_report(labels, probs.argmax(axis=1), self.class_names)
        title = " · ".join(p for p in (self.run_name, split, f"accuracy {metrics['accuracy']:.1%}",
                                        f"n={len(labels)}") if p)
        figures = {f"confusion_matrix_{split}{suffix}.png":
                   confusion_matrix_png(metrics["confusion_matrix"], self.class_names, title=title, normalize=normalize)
                   for suffix, normalize in (("", False), ("_normalized", True))}
        if self.positive_class is not None:
            metrics["threshold"], self.band = threshold_metrics(
                split, probs, labels, self.class_names, self.positive_class, self.target_recall,
                self.target_precision, self.band)
        return Evaluation(metrics, figures)
