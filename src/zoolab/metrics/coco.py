"""COCO bbox mAP with MMDetection ``CocoMetric`` semantics, on faster_coco_eval or pycocotools.

Detections (xyxy, 0-based labels, original pixels) are converted to COCO result dicts (xywh, the JSON's
category id of each label, score), capped at the 100 best per image so that COCO's ``maxDets=[1, 10,
100]`` agrees with MMDetection's ``[100, 300, 1000]``, and evaluated against the split's original JSON
restricted to the evaluated images and to the configured categories (as ``CocoMetric`` does with
``params.imgIds`` / ``params.catIds``). Both backends give the same numbers (see below); faster_coco_eval is the
default because it is faster on validation-sized sets (see ``benchmarks/coco_eval.py``).

Undefined values keep COCO's convention: a size bucket (or class) without ground truth scores ``-1``.

The two backends agree to the last bit or two: pycocotools divides by ``tp + fp + np.spacing(1)``, so its
precision is ``1 - 2.2e-16`` where faster_coco_eval's is exactly 1, and the 12 stats can differ by ~1e-16.
:func:`evaluate_coco` therefore rounds to ``ROUND_DECIMALS`` (far below any meaningful difference, far
above float noise) so both return the same numbers; :func:`coco_stats` returns the raw values.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zoolab.errors import ZoolabError

__all__ = ["evaluate_coco", "coco_stats", "detections_to_coco_results", "precision_recall_png", "STAT_NAMES",
           "METRIC_KEYS", "BACKENDS", "RECALL_POINTS"]

log = logging.getLogger(__name__)
BACKENDS = ("faster_coco_eval", "pycocotools")
MAX_DETS_PER_IMAGE = 100
ROUND_DECIMALS = 10
RECALL_POINTS = np.linspace(0.0, 1.0, 101)  # COCO's interpolation points
STAT_NAMES = ("mAP", "mAP_50", "mAP_75", "mAP_s", "mAP_m", "mAP_l",
              "AR_1", "AR_10", "AR_100", "AR_s", "AR_m", "AR_l")
METRIC_KEYS = tuple(f"coco/bbox_{name}" for name in STAT_NAMES[:6])


def _numpy(values) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _flat_detections(detections: Sequence[dict], category_ids: np.ndarray):
    """Per-image arrays checked and concatenated: (image ids, boxes xyxy, scores, labels, image position)."""
    ids, boxes, scores, labels, position = [], [], [], [], []
    for index, det in enumerate(detections):
        b = _numpy(det["boxes"]).astype(np.float64).reshape(-1, 4)
        s = _numpy(det["scores"]).astype(np.float64).reshape(-1)
        c = _numpy(det["labels"]).astype(np.int64).reshape(-1)
        if not len(b) == len(s) == len(c):
            raise ZoolabError(f"image {det['image_id']}: {len(b)} boxes, {len(s)} scores and "
                              f"{len(c)} labels", where="evaluate_coco detections",
                              fix="return one score and one label per box")
        if len(c) and (c.min() < 0 or c.max() >= len(category_ids)):
            raise ZoolabError(f"image {det['image_id']}: labels {sorted(set(c.tolist()))} are outside "
                              f"0..{len(category_ids) - 1}", where="evaluate_coco detections",
                              fix="predict 0-based labels in dataset.classes order")
        boxes.append(b), scores.append(s), labels.append(c)
        ids.append(np.full(len(c), int(det["image_id"]), dtype=np.int64))
        position.append(np.full(len(c), index, dtype=np.int64))
    if not ids:
        return (np.empty(0, np.int64), np.empty((0, 4)), np.empty(0), np.empty(0, np.int64), np.empty(0, np.int64))
    return (np.concatenate(ids), np.concatenate(boxes), np.concatenate(scores), np.concatenate(labels),
            np.concatenate(position))


def _kept_results(detections: Sequence[dict], category_ids: Sequence[int], max_per_image: int):
    """Arrays (image ids, JSON category ids, xywh boxes, scores) of the ``max_per_image`` best-scored
    boxes of each image, images in input order and each image's boxes best score first (ties in input
    order): the order a per-image loop would give, computed on all boxes at once."""
    category_ids = np.asarray(category_ids, dtype=np.int64)
    ids, boxes, scores, labels, position = _flat_detections(detections, category_ids)
    order = np.lexsort((-scores, position))  # by image position, then score descending; stable
    first = np.r_[0, np.flatnonzero(np.diff(position[order])) + 1]
    rank = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
    keep = order[rank < max_per_image]
    xywh = boxes[keep]
    xywh[:, 2:] -= xywh[:, :2]
    return ids[keep], category_ids[labels[keep]], xywh, scores[keep]


def detections_to_coco_results(detections: Sequence[dict], category_ids: Sequence[int],
                               max_per_image: int = MAX_DETS_PER_IMAGE) -> list[dict]:
    """Per-image ``{image_id, boxes xyxy, scores, labels}`` -> COCO result dicts (xywh, JSON category id,
    score), keeping the ``max_per_image`` best-scored boxes of each image across classes, images in input
    order and each image's boxes best score first."""
    ids, cats, xywh, scores = _kept_results(detections, category_ids, max_per_image)
    return [{"image_id": i, "category_id": c, "bbox": b, "score": s}
            for i, c, b, s in zip(ids.tolist(), cats.tolist(), xywh.tolist(), scores.tolist())]


def _results_api(coco_gt, detections: Sequence[dict], category_ids: Sequence[int], coco_cls):
    """The detections as the library's results object, built as ``loadRes`` builds it for boxes (each
    result gets ``area`` w*h, ``id`` from 1 and ``iscrowd`` 0; images and categories from the GT) but with
    those fields computed on arrays, and without the box-outline polygon ``loadRes`` also adds as
    ``segmentation``, which bbox evaluation never reads (see benchmarks/coco_eval.py for the cost)."""
    ids, cats, xywh, scores = _kept_results(detections, category_ids, MAX_DETS_PER_IMAGE)
    area = (xywh[:, 2] * xywh[:, 3]).tolist()
    results = [{"image_id": i, "category_id": c, "bbox": b, "score": s, "area": a, "id": n, "iscrowd": 0}
               for n, (i, c, b, s, a) in enumerate(zip(ids.tolist(), cats.tolist(), xywh.tolist(),
                                                        scores.tolist(), area), start=1)]
    api = coco_cls()
    api.dataset = {"images": list(coco_gt.dataset["images"]),
                   "categories": copy.deepcopy(coco_gt.dataset["categories"]), "annotations": results}
    api.createIndex()
    return api


def _backend_classes(backend: str):
    if backend == "faster_coco_eval":
        from faster_coco_eval import COCO, COCOeval_faster

        return COCO, COCOeval_faster
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval
    raise ZoolabError(f"unknown COCO backend '{backend}'", where="evaluate_coco backend",
                      fix=f"use one of {list(BACKENDS)}")


@contextlib.contextmanager
def _without_cyclic_gc():
    """Pause Python's cyclic garbage collector while millions of result dicts are built and indexed.

    Each allocation burst makes the collector walk every live container again (generation 2 grows with
    the dicts themselves), which doubles the cost of the conversion and of the library's index building.
    Reference counting still frees everything acyclic; the collector resumes, as it was, on exit."""
    import gc

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextlib.contextmanager
def _quiet():
    """Route the evaluators' stdout chatter (pycocotools prints) to the debug log."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield
    if buffer.getvalue().strip():
        log.debug("COCO evaluator output:\n%s", buffer.getvalue().rstrip())


def _run_cocoeval(annotation_file, detections, category_ids, backend, image_ids):
    """Load GT and results, evaluate, accumulate and summarise; returns the evaluator."""
    coco_cls, eval_cls = _backend_classes(backend)
    with _quiet(), _without_cyclic_gc():
        coco_gt = coco_cls(str(annotation_file))
        known = set(coco_gt.getImgIds())
        if image_ids is None:
            image_ids = [int(d["image_id"]) for d in detections] or sorted(known)
        unknown = sorted(set(int(i) for i in image_ids) - known)
        if unknown:
            raise ZoolabError(f"image ids {unknown[:5]} are not in {annotation_file}",
                              where="evaluate_coco detections", fix="evaluate against the split's own JSON")
        missing_cats = sorted(set(int(c) for c in category_ids) - set(coco_gt.getCatIds()))
        if missing_cats:
            raise ZoolabError(f"category ids {missing_cats} are not in {annotation_file}",
                              where="evaluate_coco category_ids", fix="pass dataset(split).category_ids")
        coco_dt = _results_api(coco_gt, detections, category_ids, coco_cls)
        quiet = {"print_function": log.debug} if backend == "faster_coco_eval" else {}
        evaluator = eval_cls(coco_gt, coco_dt, "bbox", **quiet)
        evaluator.params.imgIds = sorted(set(int(i) for i in image_ids))
        evaluator.params.catIds = [int(c) for c in category_ids]
        evaluator.params.maxDets = [1, 10, MAX_DETS_PER_IMAGE]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    log.info("COCO evaluation (%s): %d images, %d detections", backend, len(evaluator.params.imgIds),
             len(coco_dt.dataset["annotations"]))
    return evaluator


def coco_stats(annotation_file: str | Path, detections: Sequence[dict], category_ids: Sequence[int],
               backend: str = "faster_coco_eval", image_ids: Sequence[int] | None = None) -> np.ndarray:
    """COCO's full 12-number summary (AP, AP50, AP75, APs/m/l, AR1/10/100, ARs/m/l) for parity checks."""
    evaluator = _run_cocoeval(annotation_file, detections, category_ids, backend, image_ids)
    return np.asarray(evaluator.stats[:12], dtype=np.float64)


def _classwise_ap(evaluator, category_ids: Sequence[int], class_names: Sequence[str]) -> dict[str, float]:
    """Per class: mean precision over IoU .50:.95 and recall points, area all, 100 dets (MMDetection's)."""
    precision = evaluator.eval["precision"]  # [IoU, recall, category (sorted ids), area, maxDets]
    order = [int(c) for c in evaluator.params.catIds]
    per_class = {}
    for name, cat_id in zip(class_names, category_ids):
        values = precision[:, :, order.index(int(cat_id)), 0, -1]
        values = values[values > -1]
        per_class[str(name)] = round(float(values.mean()), ROUND_DECIMALS) if values.size else -1.0
    return per_class


def _pr_curves(evaluator, category_ids: Sequence[int], class_names: Sequence[str]) -> dict[str, list[float]]:
    """Per class: COCO's interpolated precision at the 101 recall points, IoU 0.5, all areas, 100 dets
    (``-1`` where the class reaches no such recall; ``[]`` for a class without ground truth)."""
    precision = evaluator.eval["precision"]
    iou_index = int(np.argmin(np.abs(np.asarray(evaluator.params.iouThrs) - 0.5)))
    order = [int(c) for c in evaluator.params.catIds]
    curves = {}
    for name, cat_id in zip(class_names, category_ids):
        values = precision[iou_index, :, order.index(int(cat_id)), 0, -1]
        curves[str(name)] = [] if (values == -1).all() else [round(float(v), 6) for v in values]
    return curves


def precision_recall_png(curves: dict[str, list[float]], title: str = "") -> bytes:
    """One precision-recall line per class (AP@0.5 in the legend), as PNG bytes; no file is written."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, values in curves.items():
        if not values:
            continue
        precision = np.asarray(values, dtype=np.float64)
        ap = float(np.clip(precision, 0, None).mean())
        reached = precision >= 0
        ax.plot(RECALL_POINTS[reached], precision[reached], label=f"{name} (AP50 {ap:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title or "precision-recall at IoU 0.5", fontsize=9)
    if ax.lines:
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def evaluate_coco(
    annotation_file: str | Path,
    detections: list[dict],
    category_ids: list[int],
    class_names: list[str],
    backend: str = "faster_coco_eval",
    classwise: bool = True,
    image_ids: list[int] | None = None,
    pr_curves: bool = False,
) -> dict:
    """COCO bbox metrics of per-image detections against a split's annotation file.

    Args:
        annotation_file: the split's COCO JSON (``dataset(split).annotation_file``).
        detections: one dict **per evaluated image, even with no boxes**: ``image_id`` (COCO id),
            ``boxes`` [N, 4] xyxy in original pixels, ``scores`` [N], ``labels`` [N] 0-based in class order.
            Images absent from the list are not evaluated (their ground truth is ignored).
        category_ids: label index -> JSON category id (``dataset(split).category_ids``).
        class_names: names for the classwise AP, in label order.
        backend: ``faster_coco_eval`` or ``pycocotools`` (identical numbers).
        classwise: also return ``classwise: {class_name: AP}``.
        image_ids: evaluate exactly these images instead of those in ``detections`` (if ``detections`` is
            empty and this is None, every image of the JSON is evaluated).
        pr_curves: also return ``pr_curves``: per class, precision at COCO's 101 recall points (IoU 0.5).

    Returns:
        ``coco/bbox_mAP``, ``_50``, ``_75``, ``_s``, ``_m``, ``_l`` as floats rounded to 10 decimals
        (``-1`` where COCO leaves a value undefined), plus ``classwise`` and ``pr_curves`` when asked.
    """
    if len(category_ids) != len(class_names):
        raise ZoolabError(f"{len(category_ids)} category ids for {len(class_names)} class names",
                          where="evaluate_coco", fix="pass dataset(split).category_ids and its class_names")
    evaluator = _run_cocoeval(annotation_file, detections, category_ids, backend, image_ids)
    metrics: dict = {key: round(float(value), ROUND_DECIMALS)
                     for key, value in zip(METRIC_KEYS, evaluator.stats[:6])}
    if classwise:
        metrics["classwise"] = _classwise_ap(evaluator, category_ids, class_names)
    if pr_curves:
        metrics["pr_curves"] = _pr_curves(evaluator, category_ids, class_names)
    return metrics
