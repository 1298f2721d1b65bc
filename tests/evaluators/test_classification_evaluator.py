"""ClassificationEvaluator: the report and figure of the processed batches, the pit band fitted on val and
reused by later splits, and reset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoolab.evaluators.base import Evaluation
from zoolab.evaluators.classification import ClassificationEvaluator
from zoolab.metrics.classification import classification_report
from zoolab.metrics.threshold import evaluate_band, threshold_analysis

NAMES = ["clean", "maybe", "cherry_pit"]
PNG = b"\x89PNG\r\n\x1a\n"


def _logits(probs) -> torch.Tensor:
    return torch.log(torch.tensor(probs, dtype=torch.float32))


# 6 samples: predictions clean, clean, maybe, pit, pit, clean; labels clean, maybe, maybe, pit, clean, pit.
PROBS = [[0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.2, 0.2, 0.6], [0.6, 0.1, 0.3]]
LABELS = [0, 1, 1, 2, 0, 2]


def _evaluator(split="val", **kwargs) -> ClassificationEvaluator:
    evaluator = ClassificationEvaluator(NAMES, positive_class="cherry_pit", target_recall=0.5,
                                        target_precision=0.9, split=split, **kwargs)
    evaluator.process(logits=_logits(PROBS[:4]), labels=torch.tensor(LABELS[:4]))  # two batches
    evaluator.process(logits=_logits(PROBS[4:]), labels=torch.tensor(LABELS[4:]))
    return evaluator


def test_report_and_figure_match_hand_computation():
    evaluation = _evaluator().evaluate()
    assert isinstance(evaluation, Evaluation)
    metrics = evaluation.metrics
    assert metrics["accuracy"] == pytest.approx(3 / 6)  # samples 0, 2 and 3 are right
    assert metrics["confusion_matrix"] == [[1, 0, 1], [1, 1, 0], [1, 0, 1]]
    assert metrics["per_class"]["maybe"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3),
                                             "support": 2}
    expected = classification_report(np.array(LABELS), np.array(PROBS).argmax(1), NAMES)
    assert {k: v for k, v in metrics.items() if k != "threshold"} == expected
    assert list(evaluation.figures) == ["confusion_matrix_val.png", "confusion_matrix_val_normalized.png"]
    assert evaluation.figures["confusion_matrix_val.png"].startswith(PNG)


def test_val_fits_the_band_and_later_splits_reuse_it():
    val = _evaluator("val")
    analysis = val.evaluate().metrics["threshold"]
    scores, labels = np.array(PROBS, dtype=np.float32)[:, 2], np.array(LABELS)
    # pit scores 0.8 and 0.3; target recall 0.5 allows one miss -> threshold 0.8
    expected = threshold_analysis(scores, labels == 2, 0.5, 0.9, negative_mask=labels == 0)
    assert analysis == pytest.approx({**expected, "fitted_on": "val"}, nan_ok=True)
    assert analysis["threshold"] == pytest.approx(0.8)
    assert val.band == {"band_low": analysis["band_low"], "band_high": analysis["band_high"]}

    test = ClassificationEvaluator(NAMES, "cherry_pit", 0.5, 0.9, band=val.band, split="test")
    test.process(logits=_logits([[0.1, 0.1, 0.8], [0.05, 0.05, 0.9], [0.5, 0.0, 0.5]]),
                 labels=torch.tensor([2, 2, 0]))
    frozen = test.evaluate().metrics["threshold"]
    assert frozen["fitted_on"] == "val" and frozen["threshold"] == pytest.approx(0.8)
    test_scores = np.array([[0.1, 0.1, 0.8], [0.05, 0.05, 0.9], [0.5, 0.0, 0.5]], dtype=np.float32)[:, 2]
    assert frozen == pytest.approx({**evaluate_band(test_scores, np.array([True, True, False]), **val.band,
                                                    negative_mask=np.array([False, False, True])),
                                    "fitted_on": "val"})
    assert test.band == val.band  # a test split never refits


def test_a_split_before_any_band_gets_its_own_analysis_and_fits_nothing():
    test = _evaluator("test")
    assert test.evaluate().metrics["threshold"]["fitted_on"] == "test"
    assert test.band is None


def test_no_positive_class_no_threshold():
    evaluator = ClassificationEvaluator(NAMES, positive_class=None, split="test")
    evaluator.process(logits=_logits(PROBS), labels=torch.tensor(LABELS))
    assert "threshold" not in evaluator.evaluate().metrics


def test_reset_forgets_earlier_batches():
    evaluator = _evaluator("test")
    first = evaluator.evaluate().metrics
    evaluator.reset()
    evaluator.process(logits=_logits(PROBS[2:5]), labels=torch.tensor(LABELS[2:5]))
    second = evaluator.evaluate().metrics
    assert first["num_samples"] == 6 and second["num_samples"] == 3
    expected = classification_report(np.array(LABELS[2:5]), np.array(PROBS[2:5]).argmax(1), NAMES)
    assert {k: v for k, v in second.items() if k != "threshold"} == expected
    assert second["accuracy"] == pytest.approx(2 / 3) and second["threshold"]["num_positives"] == 1
    evaluator.reset()
    with pytest.raises(ValueError, match="no batch"):
        evaluator.evaluate()


def test_the_split_must_be_named():
    evaluator = _evaluator(split=None)
    with pytest.raises(ValueError, match="split"):
        evaluator.evaluate()
