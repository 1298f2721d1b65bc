"""CocoEvaluator: detections collected from detector-style outputs, scored as metrics.coco.evaluate_coco
scores them, with score_thresh / num_images added; reset."""

from __future__ import annotations

import json

import pytest
import torch

from zoolab.evaluators.coco import CocoEvaluator
from zoolab.metrics.coco import METRIC_KEYS, evaluate_coco

CLASSES, CATEGORY_IDS = ["ship", "aircraft"], [7, 2]
GT = {1: [(7, (10, 10, 40, 40))], 2: [(2, (100, 100, 50, 40)), (7, (200, 150, 120, 100))]}


@pytest.fixture
def annotations(tmp_path):
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 480} for i in GT]
    anns = [{"id": 10 * i + k, "image_id": i, "category_id": c, "bbox": list(b), "area": b[2] * b[3], "iscrowd": 0}
            for i, boxes in GT.items() for k, (c, b) in enumerate(boxes)]
    categories = [{"id": 2, "name": "aircraft"}, {"id": 7, "name": "ship"}]
    path = tmp_path / "val.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": categories}))
    return path


def _perfect(image_id):
    boxes = [[x, y, x + w, y + h] for _, (x, y, w, h) in GT[image_id]]
    labels = [CATEGORY_IDS.index(c) for c, _ in GT[image_id]]
    return ({"boxes": torch.tensor(boxes, dtype=torch.float32), "scores": torch.full((len(boxes),), 0.9),
             "labels": torch.tensor(labels)}, {"image_id": torch.tensor(image_id)})


def _wrong(image_id):
    return ({"boxes": torch.tensor([[600.0, 400.0, 630.0, 470.0]]), "scores": torch.tensor([0.8]),
             "labels": torch.tensor([0])}, {"image_id": image_id})


def _feed(evaluator, pairs):
    outputs, targets = zip(*pairs)
    evaluator.process(outputs=list(outputs), targets=list(targets))


def test_perfect_detections_score_one_with_the_test_keys(annotations):
    evaluator = CocoEvaluator(annotations, CATEGORY_IDS, CLASSES, backend="pycocotools", classwise=True,
                              score_thresh=0.0)
    _feed(evaluator, [_perfect(1)])
    _feed(evaluator, [_perfect(2)])
    metrics = evaluator.evaluate().metrics
    assert metrics["coco/bbox_mAP"] == 1.0 and metrics["coco/bbox_mAP_50"] == 1.0
    assert metrics["classwise"] == {"ship": 1.0, "aircraft": 1.0}
    assert list(metrics)[-3:] == ["classwise", "score_thresh", "num_images"]
    assert metrics["score_thresh"] == 0.0 and metrics["num_images"] == 2
    assert list(evaluator.evaluate().figures) == ["pr_curves.png"]


def test_pr_curves_show_the_evaluated_precision(annotations):
    import io

    import numpy as np
    from PIL import Image

    pairs = [_perfect(1), _perfect(2), _wrong(1)]  # ship: 2 GT found at 0.9, one false ship at 0.8
    metrics = evaluate_coco(annotations, [{"image_id": int(t["image_id"]), **o} for o, t in pairs], CATEGORY_IDS,
                            CLASSES, backend="pycocotools", pr_curves=True)
    ship, aircraft = metrics["pr_curves"]["ship"], metrics["pr_curves"]["aircraft"]
    assert len(ship) == 101 and ship[0] == 1.0 and ship[-1] == 1.0  # the false box ranks after both hits
    assert aircraft == [1.0] * 101
    evaluator = CocoEvaluator(annotations, CATEGORY_IDS, CLASSES, backend="pycocotools")
    evaluator.split = "val"
    _feed(evaluator, pairs)
    evaluation = evaluator.evaluate()
    assert "pr_curves" not in evaluation.metrics
    image = Image.open(io.BytesIO(evaluation.figures["pr_curves_val.png"])).convert("L")
    assert image.size == (660, 495) and np.asarray(image, dtype=float).std() > 10


def test_same_numbers_as_evaluate_coco(annotations):
    pairs = [_perfect(1), _wrong(2)]
    evaluator = CocoEvaluator(annotations, CATEGORY_IDS, CLASSES, classwise=False)
    _feed(evaluator, pairs)
    metrics = evaluator.evaluate().metrics
    detections = [{"image_id": int(t["image_id"]), **o} for o, t in pairs]
    expected = evaluate_coco(annotations, detections, CATEGORY_IDS, CLASSES, classwise=False)
    assert metrics == {**expected, "num_images": 2}
    assert set(metrics) == {*METRIC_KEYS, "num_images"}  # validation: no classwise, no score_thresh
    assert 0.0 < metrics["coco/bbox_mAP"] < 1.0


def test_reset_keeps_only_the_second_batch(annotations):
    evaluator = CocoEvaluator(annotations, CATEGORY_IDS, CLASSES, classwise=False)
    _feed(evaluator, [_wrong(1), _wrong(2)])
    assert evaluator.evaluate().metrics["coco/bbox_mAP"] == 0.0
    evaluator.reset()
    _feed(evaluator, [_perfect(1), _perfect(2)])
    metrics = evaluator.evaluate().metrics
    assert metrics["coco/bbox_mAP"] == 1.0 and metrics["num_images"] == 2
