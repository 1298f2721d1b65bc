"""Embedding classifiers: the foreground-only report and, for the final evaluation, calibration (ECE of
the deployed probabilities, the temperature, the reliability diagram).

The evaluator keeps the model's raw logits: ``to_logits`` (the task's post-hoc logit adjustment and
temperature) is applied to all of them at :meth:`ForegroundEvaluator.evaluate`, and :meth:`collected`
hands the raw logits back for the temperature fit.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from zoolab.evaluators.base import Evaluation, Evaluator, gather_rows

__all__ = ["ForegroundEvaluator"]


class ForegroundEvaluator(Evaluator):
    """``process(logits, labels)`` per batch (raw logits); ``evaluate()`` gives ``foreground_report``.

    With ``calibration`` the predictions are the argmax of ``softmax(to_logits(logits))`` and the report
    gains ``ece`` (15 bins), ``temperature`` (when given) and the figure ``reliability_<split>.png``;
    without it (the validation score during fit) the predictions are the argmax of ``to_logits(logits)``
    and nothing else is computed.

    Args:
        class_names: label order. background: the class left out of the averages (None: none).
        to_logits: raw logits -> the logits predictions come from (identity when None).
        calibration: also report calibration (see above). temperature: the reported temperature.
        n_bins: ECE / reliability bins. split: the split's name (figure name and title).
    """

    def __init__(self, class_names: list[str], background: str | None = None,
                 to_logits: Callable[[torch.Tensor], torch.Tensor] | None = None, calibration: bool = True,
                 temperature: float | None = None, n_bins: int = 15, split: str | None = None) -> None:
        self.class_names = list(class_names)
        self.background = background
        self.to_logits = to_logits or (lambda logits: logits)
        self.calibration = calibration
        self.temperature = temperature
        self.n_bins = n_bins
        self.split = split
        self.reset()

    def reset(self) -> None:
        self._logits: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def process(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self._logits.append(logits.detach())
        self._labels.append(labels.detach())

    def collected(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every processed raw logit and label since the last reset (of every DDP rank), concatenated."""
        if not self._logits:
            raise ValueError("nothing collected: no batch was processed since the last reset")
        return (gather_rows(torch.cat(self._logits), self.num_samples),
                gather_rows(torch.cat(self._labels), self.num_samples))

    def evaluate(self) -> Evaluation:
        from zoolab.metrics.foreground import foreground_report

        raw, labels = self.collected()
        if not self.calibration:
            predictions = self.to_logits(raw).argmax(1).cpu().numpy()
            return Evaluation(foreground_report(labels.cpu().numpy(), predictions, self.class_names,
                                                self.background))
        if not self.split:
            raise ValueError("set the evaluator's split before evaluate(): it names the reliability figure")
        from zoolab.metrics.calibration import expected_calibration_error, reliability_png

        probs = self.to_logits(raw).softmax(1).cpu().numpy()
        y = labels.cpu().numpy()
        metrics = foreground_report(y, probs.argmax(1), self.class_names, self.background)
        metrics["ece"] = expected_calibration_error(probs, y, n_bins=self.n_bins)
        if self.temperature is not None:
            metrics["temperature"] = float(self.temperature)
        before = None
        if self.temperature is not None and float(self.temperature) != 1.0:  # deployed = decision / T: undo T
            before = (self.to_logits(raw) * float(self.temperature)).softmax(1).cpu().numpy()
        title = f"{self.split} · n={len(y)}" + (f" · T={float(self.temperature):.3f}" if before is not None else "")
        figures = {f"reliability_{self.split}.png": reliability_png(probs, y, n_bins=self.n_bins, title=title,
                                                                   probs_before=before)}
        return Evaluation(metrics, figures)
