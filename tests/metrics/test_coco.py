"""Tests for zoolab.metrics.coco: hand-computed answers, backend parity, MMDetection CocoMetric semantics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from zoolab.errors import ZoolabError
from zoolab.metrics.coco import METRIC_KEYS, coco_stats, detections_to_coco_results, evaluate_coco

BACKENDS = ["faster_coco_eval", "pycocotools"]
# COCO's 101-point interpolation: precision 0.5 held up to recall 0.5 covers recall points 0.00..0.50.
HALF_AP = 51 * 0.5 / 101


def _write(path: Path, images, annotations, categories) -> Path:
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def _images(n, size=(640, 480)):
    return [{"id": i, "file_name": f"{i}.jpg", "width": size[0], "height": size[1]} for i in range(1, n + 1)]


def _ann(ann_id, image_id, category_id, xywh, iscrowd=0):
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": list(xywh),
            "area": xywh[2] * xywh[3], "iscrowd": iscrowd}


def _det(image_id, boxes_xyxy, scores, labels):
    return {"image_id": image_id, "boxes": np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4),
            "scores": np.asarray(scores, dtype=np.float32), "labels": np.asarray(labels, dtype=np.int64)}


def _xyxy(xywh):
    x, y, w, h = xywh
    return [x, y, x + w, y + h]


# Two classes whose JSON ids (7, 2) are not the label order; GT of every COCO size bucket, one crowd
# region and one annotation of a category ("bridge", id 5) that is not configured.
CATEGORIES = [{"id": 2, "name": "aircraft"}, {"id": 5, "name": "bridge"}, {"id": 7, "name": "ship"}]
CLASSES, CATEGORY_IDS = ["ship", "aircraft"], [7, 2]
GT = [  # (image, category id, xywh)
    (1, 7, (10, 10, 20, 20)),      # small (400 px^2)
    (1, 2, (100, 100, 50, 40)),    # medium (2,000)
    (2, 7, (200, 150, 120, 100)),  # large (12,000)
    (2, 2, (20, 300, 30, 25)),     # small
    (3, 7, (300, 50, 60, 60)),     # medium
]


@pytest.fixture
def sized_gt(tmp_path) -> Path:
    anns = [_ann(i + 1, img, cat, box) for i, (img, cat, box) in enumerate(GT)]
    anns.append(_ann(90, 3, 7, (500, 300, 80, 80), iscrowd=1))
    anns.append(_ann(91, 1, 5, (400, 400, 50, 50)))
    return _write(tmp_path / "gt.json", _images(3), anns, CATEGORIES)


def _perfect():
    dets = []
    for image_id in (1, 2, 3):
        rows = [(box, CATEGORY_IDS.index(cat)) for img, cat, box in GT if img == image_id]
        boxes, labels = [_xyxy(b) for b, _ in rows], [label for _, label in rows]
        dets.append(_det(image_id, boxes, [0.9] * len(rows), labels))
    return dets


@pytest.mark.parametrize("backend", BACKENDS)
def test_perfect_detections_score_one_everywhere(sized_gt, backend):
    dets = _perfect()
    # image 3 also gets a (lower-scored) box on its crowd region: ignored, not a false positive
    dets[2] = _det(3, [_xyxy(GT[4][2]), [500, 300, 580, 380]], [0.9, 0.5], [0, 0])
    metrics = evaluate_coco(sized_gt, dets, CATEGORY_IDS, CLASSES, backend=backend)
    assert {k: metrics[k] for k in METRIC_KEYS} == {k: 1.0 for k in METRIC_KEYS}
    assert metrics["classwise"] == {"ship": 1.0, "aircraft": 1.0}
    stats = coco_stats(sized_gt, dets, CATEGORY_IDS, backend)
    np.testing.assert_allclose(stats, np.ones(12), rtol=0, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_computed_ap_with_a_false_positive_ranked_first(tmp_path, backend):
    anns = [_ann(1, 1, 3, (10, 10, 20, 20)), _ann(2, 1, 3, (50, 50, 20, 20))]
    gt = _write(tmp_path / "gt.json", _images(1), anns, [{"id": 3, "name": "ship"}])
    # FP (score 0.9) far from both GTs, then a TP on GT 2 with IoU 20*18.4/400 = 0.92.
    dets = [_det(1, [[200, 200, 220, 220], [50, 50, 70, 68.4]], [0.9, 0.8], [0, 0])]
    stats = coco_stats(gt, dets, [3], backend)
    # TP at IoU thresholds .50-.90 (9 of 10): precision 0.5 up to recall 0.5, nothing at .95.
    expected = [0.9 * HALF_AP, HALF_AP, HALF_AP, 0.9 * HALF_AP, -1, -1,
                0.0, 0.45, 0.45, 0.45, -1, -1]  # AR@1 sees only the FP; AR = 0.5 recall x 9/10
    np.testing.assert_allclose(stats, expected, rtol=0, atol=1e-12)
    metrics = evaluate_coco(gt, dets, [3], ["ship"], backend=backend)
    assert metrics["coco/bbox_mAP"] == pytest.approx(0.9 * HALF_AP, abs=1e-10)  # rounded to 10 decimals
    assert metrics["classwise"] == {"ship": pytest.approx(0.9 * HALF_AP, abs=1e-10)}


def _random_fixture(tmp_path: Path, n_images: int = 50, seed: int = 0):
    rng = np.random.default_rng(seed)
    categories = [{"id": cid, "name": f"c{cid}"} for cid in (4, 1, 9)]
    anns, dets = [], []
    for image_id in range(1, n_images + 1):
        rows = []
        for _ in range(rng.integers(0, 6)):
            w, h = rng.uniform(4, 200, size=2)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            cat = int(rng.choice([4, 1, 9]))
            anns.append(_ann(len(anns) + 1, image_id, cat, (x, y, w, h), iscrowd=int(rng.random() < 0.05)))
            rows.append((x, y, w, h, cat))
        boxes, scores, labels = [], [], []
        for x, y, w, h, cat in rows:  # jittered true positives, sometimes with the wrong class
            if rng.random() < 0.8:
                jitter = rng.normal(0, 0.08, size=4) * [w, h, w, h]
                boxes.append([x + jitter[0], y + jitter[1], x + w + jitter[2], y + h + jitter[3]])
                label = [4, 1, 9].index(cat) if rng.random() < 0.85 else int(rng.integers(0, 3))
                scores.append(rng.uniform(0.3, 1.0))
                labels.append(label)
        for _ in range(rng.integers(0, 8)):  # false positives
            x, y = rng.uniform(0, 600, size=2)
            boxes.append([x, y, x + rng.uniform(5, 150), y + rng.uniform(5, 150)])
            scores.append(rng.uniform(0.0, 0.7))
            labels.append(int(rng.integers(0, 3)))
        dets.append(_det(image_id, np.reshape(boxes, (-1, 4)), scores, labels))
    gt = _write(tmp_path / "random.json", _images(n_images), anns, categories)
    return gt, dets, [4, 1, 9], ["c4", "c1", "c9"]


def test_backends_agree_on_a_random_fixture_and_match_raw_pycocotools(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, dets, category_ids, names = _random_fixture(tmp_path)
    fast = coco_stats(gt, dets, category_ids, "faster_coco_eval")
    slow = coco_stats(gt, dets, category_ids, "pycocotools")
    # Float-noise only: pycocotools' precision carries an np.spacing(1) in its denominator.
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-15)
    assert 0.2 < fast[0] < 0.9 and (fast[3:6] > 0).all()  # a non-trivial fixture
    assert evaluate_coco(gt, dets, category_ids, names, "faster_coco_eval") == \
        evaluate_coco(gt, dets, category_ids, names, "pycocotools")  # identical once rounded

    coco_gt = COCO(str(gt))  # the library alone, default params (all images, all categories)
    raw = COCOeval(coco_gt, coco_gt.loadRes(detections_to_coco_results(dets, category_ids)), "bbox")
    raw.evaluate(), raw.accumulate(), raw.summarize()
    np.testing.assert_array_equal(slow, np.asarray(raw.stats))
    # zoolab builds the results object itself (no loadRes); the library's own loading gives the same bits
    from faster_coco_eval import COCO as FastCOCO
    from faster_coco_eval import COCOeval_faster

    fast_gt = FastCOCO(str(gt))
    raw_fast = COCOeval_faster(fast_gt, fast_gt.loadRes(detections_to_coco_results(dets, category_ids)), "bbox",
                               print_function=lambda *a: None)
    raw_fast.evaluate(), raw_fast.accumulate(), raw_fast.summarize()
    np.testing.assert_array_equal(fast, np.asarray(raw_fast.stats[:12]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_detections_give_zero_not_a_crash(sized_gt, backend):
    no_boxes = [_det(i, np.zeros((0, 4)), [], []) for i in (1, 2, 3)]
    for dets in (no_boxes, []):  # an empty list evaluates every image of the JSON
        metrics = evaluate_coco(sized_gt, dets, CATEGORY_IDS, CLASSES, backend=backend)
        assert {k: metrics[k] for k in METRIC_KEYS} == {k: 0.0 for k in METRIC_KEYS}
        assert metrics["classwise"] == {"ship": 0.0, "aircraft": 0.0}


@pytest.mark.parametrize("backend", BACKENDS)
def test_undefined_buckets_and_classes_keep_cocos_minus_one(tmp_path, backend):
    gt = _write(tmp_path / "gt.json", _images(1), [_ann(1, 1, 7, (10, 10, 20, 20))], CATEGORIES)
    dets = [_det(1, [[10, 10, 30, 30]], [0.5], [0])]
    metrics = evaluate_coco(gt, dets, CATEGORY_IDS, CLASSES, backend=backend)
    assert metrics["coco/bbox_mAP"] == 1.0 and metrics["coco/bbox_mAP_s"] == 1.0
    assert metrics["coco/bbox_mAP_m"] == -1.0 and metrics["coco/bbox_mAP_l"] == -1.0
    assert metrics["classwise"] == {"ship": 1.0, "aircraft": -1.0}  # no aircraft in the ground truth


def test_classwise_follows_label_order_not_json_ids(sized_gt):
    dets = _perfect()
    dets[0] = _det(1, [_xyxy(GT[1][2])], [0.9], [1])  # image 1 loses its small ship
    metrics = evaluate_coco(sized_gt, dets, CATEGORY_IDS, CLASSES, classwise=True)
    assert list(metrics["classwise"]) == ["ship", "aircraft"]
    ship_ap = 67 / 101  # recall 2/3: precision 1 on recall points 0.00..0.66, 0 above
    assert metrics["classwise"]["ship"] == pytest.approx(ship_ap, abs=1e-10)
    assert metrics["classwise"]["aircraft"] == 1.0
    assert metrics["coco/bbox_mAP"] == pytest.approx((ship_ap + 1.0) / 2, abs=1e-10)
    assert "classwise" not in evaluate_coco(sized_gt, dets, CATEGORY_IDS, CLASSES, classwise=False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_at_most_100_detections_per_image_across_classes(tmp_path, backend):
    gt = _write(tmp_path / "gt.json", _images(1), [_ann(1, 1, 2, (300, 300, 40, 40))], CATEGORIES)
    fp_boxes = [[i, i, i + 10, i + 10] for i in range(100)]
    boxes = fp_boxes + [[300, 300, 340, 340]]
    scores = list(np.linspace(0.99, 0.5, 100)) + [0.1]
    dets = [_det(1, boxes, scores, [0] * 100 + [1])]  # 100 ship FPs outrank the aircraft TP
    assert len(detections_to_coco_results(dets, CATEGORY_IDS)) == 100
    metrics = evaluate_coco(gt, dets, CATEGORY_IDS, CLASSES, backend=backend)
    assert metrics["classwise"]["aircraft"] == 0.0  # COCO alone caps per class and would give 1.0
    dets[0]["scores"][-1] = 1.0
    assert evaluate_coco(gt, dets, CATEGORY_IDS, CLASSES, backend=backend)["classwise"]["aircraft"] == 1.0


def test_only_images_in_detections_are_evaluated_unless_image_ids_are_given(tmp_path):
    anns = [_ann(1, 1, 7, (10, 10, 20, 20)), _ann(2, 2, 7, (50, 50, 20, 20))]
    gt = _write(tmp_path / "gt.json", _images(2), anns, CATEGORIES)
    dets = [_det(1, [[10, 10, 30, 30]], [0.9], [0])]
    assert evaluate_coco(gt, dets, CATEGORY_IDS, CLASSES)["coco/bbox_mAP"] == 1.0
    both = evaluate_coco(gt, dets, CATEGORY_IDS, CLASSES, image_ids=[1, 2])
    assert both["coco/bbox_mAP"] == pytest.approx(51 / 101, abs=1e-10)  # recall 1/2 at precision 1


def test_torch_tensors_are_accepted(sized_gt):
    keys = ("boxes", "scores", "labels")
    dets = [{"image_id": torch.tensor(d["image_id"]), **{k: torch.from_numpy(d[k]) for k in keys}} for d in _perfect()]
    assert evaluate_coco(sized_gt, dets, CATEGORY_IDS, CLASSES)["coco/bbox_mAP"] == 1.0


def test_bad_inputs_raise_clear_errors(sized_gt):
    with pytest.raises(ZoolabError, match=r"image ids \[42\]"):
        evaluate_coco(sized_gt, [_det(42, [[0, 0, 5, 5]], [0.5], [0])], CATEGORY_IDS, CLASSES)
    with pytest.raises(ZoolabError, match="outside 0..1"):
        evaluate_coco(sized_gt, [_det(1, [[0, 0, 5, 5]], [0.5], [2])], CATEGORY_IDS, CLASSES)
    with pytest.raises(ZoolabError, match="category ids \\[8\\]"):
        evaluate_coco(sized_gt, _perfect(), [7, 8], CLASSES)
    with pytest.raises(ZoolabError, match="unknown COCO backend"):
        evaluate_coco(sized_gt, _perfect(), CATEGORY_IDS, CLASSES, backend="torchmetrics")


def _per_image_reference(detections, category_ids, cap=100):
    """The obvious loop: per image, best scores first (ties in input order), at most ``cap``."""
    out = []
    for det in detections:
        boxes, scores, labels = (np.asarray(det[k], dtype=float) for k in ("boxes", "scores", "labels"))
        for i in np.argsort(-scores, kind="stable")[:cap]:
            x1, y1, x2, y2 = boxes[i]
            out.append({"image_id": int(det["image_id"]), "category_id": int(category_ids[int(labels[i])]),
                        "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(scores[i])})
    return out


def test_flat_conversion_equals_a_per_image_loop():
    rng = np.random.default_rng(3)
    detections = []
    for image_id in (9, 2, 5, 7):  # not sorted: image order must be kept
        n = {9: 130, 2: 0, 5: 40, 7: 101}[image_id]
        scores = rng.choice([0.1, 0.5, 0.9], size=n)  # many ties
        xy = rng.random((n, 2)) * 50
        detections.append({"image_id": image_id, "boxes": np.hstack([xy, xy + rng.random((n, 2)) * 20 + 1]),
                           "scores": scores, "labels": rng.integers(0, 3, n)})
    fast = detections_to_coco_results(detections, [11, 12, 13])
    slow = _per_image_reference(detections, [11, 12, 13])
    assert len(fast) == 100 + 40 + 100
    assert [r["image_id"] for r in fast] == [r["image_id"] for r in slow]
    for a, b in zip(fast, slow):
        assert a["category_id"] == b["category_id"] and a["score"] == b["score"]
        np.testing.assert_allclose(a["bbox"], b["bbox"], rtol=0, atol=1e-12)
