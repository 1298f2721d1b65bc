"""ForegroundEvaluator: the foreground report on the transformed logits, calibration (ECE, temperature,
reliability figure) for the final evaluation, the raw logits for the temperature fit, and reset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoolab.evaluators.foreground import ForegroundEvaluator
from zoolab.metrics.calibration import expected_calibration_error
from zoolab.metrics.foreground import foreground_report

NAMES = ["a", "b", "background"]
# predictions (argmax) a, b, b, background; labels a, a, b, background
LOGITS = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 3.0, 0.5], [0.0, 0.0, 1.0]])
LABELS = torch.tensor([0, 0, 1, 2])


def _fed(**kwargs) -> ForegroundEvaluator:
    evaluator = ForegroundEvaluator(NAMES, "background", **kwargs)
    evaluator.process(logits=LOGITS[:2], labels=LABELS[:2])
    evaluator.process(logits=LOGITS[2:], labels=LABELS[2:])
    return evaluator


def test_validation_report_matches_hand_computation():
    metrics = _fed(calibration=False).evaluate().metrics
    # a: tp 1, support 2, predicted 1 -> F1 2/3; b: tp 1, support 1, predicted 2 -> F1 2/3
    assert metrics["macro_f1_fg"] == pytest.approx(2 / 3) and metrics["accuracy"] == pytest.approx(3 / 4)
    assert "ece" not in metrics and "temperature" not in metrics


def test_calibrated_report_ece_temperature_and_figure():
    evaluation = _fed(to_logits=lambda z: z / 2.0, temperature=2.0, split="test").evaluate()
    probs = (LOGITS / 2.0).softmax(1).numpy()
    expected = foreground_report(LABELS.numpy(), probs.argmax(1), NAMES, "background")
    expected["ece"] = expected_calibration_error(probs, LABELS.numpy(), n_bins=15)
    expected["temperature"] = 2.0
    assert evaluation.metrics == expected
    assert list(evaluation.metrics)[-2:] == ["ece", "temperature"]
    assert list(evaluation.figures) == ["reliability_test.png"]
    assert evaluation.figures["reliability_test.png"].startswith(b"\x89PNG\r\n\x1a\n")


def test_to_logits_decides_the_predictions():
    shift = torch.tensor([0.0, 0.0, 10.0])  # everything becomes background
    metrics = _fed(to_logits=lambda z: z + shift, calibration=False).evaluate().metrics
    assert metrics["macro_f1_fg"] == 0.0 and metrics["accuracy"] == pytest.approx(1 / 4)


def test_collected_returns_the_raw_logits():
    raw, labels = _fed(to_logits=lambda z: z * 100).collected()
    assert torch.equal(raw, LOGITS) and torch.equal(labels, LABELS)


def test_reset_forgets_earlier_batches():
    evaluator = _fed(calibration=False)
    evaluator.evaluate()
    evaluator.reset()
    evaluator.process(logits=LOGITS[2:], labels=LABELS[2:])
    metrics = evaluator.evaluate().metrics
    assert metrics == foreground_report(LABELS[2:].numpy(), LOGITS[2:].argmax(1).numpy(), NAMES, "background")
    assert metrics["num_samples"] == 2 and metrics["accuracy"] == 1.0
    evaluator.reset()
    with pytest.raises(ValueError, match="no batch"):
        evaluator.evaluate()


def test_calibration_needs_the_split_name():
    with pytest.raises(ValueError, match="split"):
        _fed().evaluate()


def test_temperature_does_not_change_predictions():
    plain = _fed(split="val").evaluate().metrics
    tempered = _fed(to_logits=lambda z: z / 3.0, split="val").evaluate().metrics
    assert tempered["per_class"] == plain["per_class"] and tempered["ece"] != plain["ece"]
    assert np.isfinite(tempered["ece"])
