"""Tests for zoolab.metrics.foreground: foreground-only averages with background FP/FN rules."""

from __future__ import annotations

import numpy as np
import pytest

from zoolab.metrics.foreground import foreground_report

NAMES = ["bg", "a", "b"]
#                  0  1  2  3  4  5  6  7
Y_TRUE = np.array([0, 0, 1, 1, 1, 2, 2, 0])
Y_PRED = np.array([0, 1, 1, 0, 1, 2, 1, 2])
# idx 1: bg predicted as a -> FP for a; idx 7: bg as b -> FP for b; idx 3: a predicted bg -> FN for a.


def test_foreground_report_hand_example() -> None:
    report = foreground_report(Y_TRUE, Y_PRED, NAMES, background="bg")
    per_class = report["per_class"]
    assert per_class["a"] == pytest.approx({"precision": 2 / 4, "recall": 2 / 3, "f1": 4 / 7, "support": 3})
    assert per_class["b"] == pytest.approx({"precision": 1 / 2, "recall": 1 / 2, "f1": 1 / 2, "support": 2})
    assert per_class["bg"] == pytest.approx({"precision": 1 / 2, "recall": 1 / 3, "f1": 2 / 5, "support": 3})
    assert report["macro_f1_fg"] == pytest.approx((4 / 7 + 1 / 2) / 2)
    assert report["weighted_f1_fg"] == pytest.approx((3 * 4 / 7 + 2 * 1 / 2) / 5)
    assert report["macro_precision_fg"] == pytest.approx(1 / 2)
    assert report["macro_recall_fg"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert report["accuracy"] == pytest.approx(4 / 8)
    assert report["num_samples"] == 8


def test_without_background_all_classes_are_averaged() -> None:
    report = foreground_report(Y_TRUE, Y_PRED, NAMES, background=None)
    assert report["macro_f1_fg"] == pytest.approx((2 / 5 + 4 / 7 + 1 / 2) / 3)


def test_fg_class_absent_from_y_true_is_listed_but_not_averaged() -> None:
    y_pred = Y_PRED.copy()
    y_pred[6] = 3  # b predicted as c, a class with no true samples
    report = foreground_report(Y_TRUE, y_pred, [*NAMES, "c"], background="bg")
    assert report["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    f1_a = 2 * 2 / (3 + 3)  # a: tp 2, support 3, predicted 3 (idx 1, 2, 4)
    assert report["macro_f1_fg"] == pytest.approx((f1_a + 1 / 2) / 2)


def test_background_must_be_a_class_name() -> None:
    with pytest.raises(ValueError, match="background"):
        foreground_report(Y_TRUE, Y_PRED, NAMES, background="void")
    with pytest.raises(ValueError, match="y_pred"):
        foreground_report(Y_TRUE, Y_PRED + 1, NAMES, background="bg")
