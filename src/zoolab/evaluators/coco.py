"""Detection: per-image detections collected batch by batch, scored by ``zoolab.metrics.coco.evaluate_coco``
against the split's own annotation file (categories mapped by the dataset's ``category_ids``)."""

from __future__ import annotations

from pathlib import Path

from zoolab.evaluators.base import Evaluation, Evaluator, gather_rows

__all__ = ["CocoEvaluator"]


class CocoEvaluator(Evaluator):
    """``process(outputs, targets)`` per batch: the detector's per-image ``boxes`` / ``scores`` / ``labels``
    and the targets' ``image_id``; ``evaluate()`` gives the six ``coco/bbox_*`` values, ``classwise`` APs
    (when ``classwise``), ``score_thresh`` (when given) and ``num_images``, and the figure
    ``pr_curves_<split>.png`` (per-class precision-recall at IoU 0.5).

    Args:
        annotation_file: the split's COCO JSON. category_ids: label index -> JSON category id.
        class_names: label order. backend: ``faster_coco_eval`` or ``pycocotools``.
        classwise: add per-class APs. score_thresh: the detector's score threshold, reported as is.
    """

    def __init__(self, annotation_file: str | Path, category_ids: list[int], class_names: list[str],
                 backend: str = "faster_coco_eval", classwise: bool = True,
                 score_thresh: float | None = None) -> None:
        self.annotation_file = annotation_file
        self.category_ids = list(category_ids)
        self.class_names = list(class_names)
        self.backend = backend
        self.classwise = classwise
        self.score_thresh = score_thresh
        self.reset()

    def reset(self) -> None:
        self.detections: list[dict] = []

    def process(self, outputs: list[dict], targets: list[dict]) -> None:
        for output, target in zip(outputs, targets, strict=True):
            self.detections.append({
                "image_id": int(target["image_id"]),
                "boxes": output["boxes"].detach().float().cpu(),
                "scores": output["scores"].detach().float().cpu(),
                "labels": output["labels"].detach().cpu(),
            })

    def evaluate(self) -> Evaluation:
        from zoolab.metrics.coco import evaluate_coco, precision_recall_png

        detections = gather_rows(self.detections, self.num_samples)  # every DDP rank's images
        metrics = evaluate_coco(self.annotation_file, detections, category_ids=self.category_ids,
                                class_names=self.class_names, backend=self.backend, classwise=self.classwise,
                                pr_curves=True)
        curves = metrics.pop("pr_curves")
        if self.score_thresh is not None:
            metrics["score_thresh"] = self.score_thresh
        metrics["num_images"] = len(detections)
        name = f"pr_curves_{self.split}.png" if self.split else "pr_curves.png"
        title = " · ".join(p for p in (self.split, f"mAP@0.5 {metrics['coco/bbox_mAP_50']:.3f}",
                                        f"{len(detections)} images") if p)
        return Evaluation(metrics, {name: precision_recall_png(curves, title=f"precision-recall (IoU 0.5) · {title}")})

