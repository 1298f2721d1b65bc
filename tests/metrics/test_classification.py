"""Tests for zoolab.metrics.classification against a hand-computed 3-class example and torchmetrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import (
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from zoolab.metrics.classification import classification_report, confusion_matrix_png, normalized_confusion

NAMES = ["clean", "maybe", "pit"]
# Class "pit" is never predicted, so its precision is 0/0 -> 0 and it still counts in the macro mean.
Y_TRUE = [0, 0, 0, 0, 1, 1, 1, 2, 2]
Y_PRED = [0, 0, 1, 0, 1, 1, 0, 1, 0]


def test_report_matches_hand_computation() -> None:
    report = classification_report(np.array(Y_TRUE), np.array(Y_PRED), NAMES)

    # rows = true, cols = predicted
    assert report["confusion_matrix"] == [[3, 1, 0], [1, 2, 0], [1, 1, 0]]
    # column sums 5, 4, 0; row sums 4, 3, 2
    precision = [3 / 5, 2 / 4, 0.0]
    recall = [3 / 4, 2 / 3, 0.0]
    f1 = [2 / 3, 4 / 7, 0.0]  # 2PR/(P+R): 0.9/1.35 and (2/3)/(7/6)
    for name, p, r, f, support in zip(NAMES, precision, recall, f1, [4, 3, 2]):
        assert report["per_class"][name] == pytest.approx(
            {"precision": p, "recall": r, "f1": f, "support": support})
    assert report["accuracy"] == pytest.approx(5 / 9)
    assert report["precision"] == pytest.approx(1.1 / 3)
    assert report["recall"] == pytest.approx(17 / 36)
    assert report["f1"] == pytest.approx(26 / 63)  # mean of per-class F1, not F1 of the means
    assert report["num_samples"] == 9


def test_report_is_json_ready_and_accepts_tensors() -> None:
    report = classification_report(torch.tensor(Y_TRUE), torch.tensor(Y_PRED), NAMES)
    assert json.loads(json.dumps(report)) == report
    for key in ("accuracy", "f1", "precision", "recall"):
        assert type(report[key]) is float
    assert type(report["per_class"]["pit"]["support"]) is int
    assert type(report["confusion_matrix"][0][0]) is int


def test_report_matches_torchmetrics_reference() -> None:
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (500,), generator=generator)
    preds = torch.where(torch.rand(500, generator=generator) < 0.6, target,
                        torch.randint(0, 4, (500,), generator=generator))
    report = classification_report(target, preds, ["a", "b", "c", "d"])
    kwargs = {"num_classes": 4, "average": "macro"}
    for key, reference in (("precision", multiclass_precision), ("recall", multiclass_recall),
                           ("f1", multiclass_f1_score)):
        assert report[key] == pytest.approx(reference(preds, target, **kwargs).item(), abs=1e-6)
    assert report["confusion_matrix"] == multiclass_confusion_matrix(preds, target, num_classes=4).tolist()


def test_report_rejects_labels_outside_class_names() -> None:
    with pytest.raises(ValueError, match="outside"):
        classification_report(np.array([0, 3]), np.array([0, 1]), NAMES)


def test_confusion_matrix_figure_is_png_bytes_and_writes_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cm = classification_report(np.array(Y_TRUE), np.array(Y_PRED), NAMES)["confusion_matrix"]
    data = confusion_matrix_png(cm, NAMES, title="val")
    assert isinstance(data, bytes) and data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="match class_names"):
        confusion_matrix_png([[1, 0], [0, 1]], NAMES)


def test_normalized_confusion_rows_are_shares_of_the_true_class() -> None:
    shares = normalized_confusion([[3, 1, 0], [0, 0, 0], [2, 2, 4]])
    np.testing.assert_allclose(shares, [[0.75, 0.25, 0.0], [0.0, 0.0, 0.0], [0.25, 0.25, 0.5]])


def test_confusion_matrix_pictures_open_and_are_not_blank() -> None:
    import io

    from PIL import Image

    cm = [[40, 2, 1], [3, 30, 5], [0, 4, 15]]
    for normalize in (False, True):
        image = Image.open(io.BytesIO(confusion_matrix_png(cm, NAMES, title="exp · val · accuracy 85.0%",
                                                           normalize=normalize))).convert("L")
        pixels = np.asarray(image, dtype=np.float64)
        assert image.size[0] >= 300 and image.size[1] >= 300
        assert pixels.std() > 20  # cells, labels and colour bar, not an empty canvas
    # the normalised picture shows 40 / 43 on the first diagonal cell
    assert normalized_confusion(cm)[0, 0] == pytest.approx(40 / 43)
