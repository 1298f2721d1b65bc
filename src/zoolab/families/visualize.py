"""Painted detections of a trained detector (the report's E0010/E0011 "visualize detections" rows).

``python -m zoolab +exp=sardet_lora_r16_fc1fc2 task=visualize ckpt=PATH [task.split=val]`` builds the
experiment's model exactly as training did, loads ``PATH`` (a Lightning ``.ckpt`` of the run, its
exported ``model.safetensors`` or its ``adapter.safetensors``) and paints every image of ``split`` into
``<run>/visualizations/<split>/`` (one PNG per image: ground truth in one colour, predictions above
``score_thresh`` in a colour per class with ``label score``, a legend below), with ``metrics.json`` beside
them: the COCO metrics of the painted images (every prediction, as the final evaluation counts them),
the image count and the export time per image. ``task.num_images=N`` paints only the first N (a quick
look); ``task.sample=N`` paints N images drawn by ``task.sample_seed`` from the split's image ids, the same
for every model (``visualizations/<split>_sample<N>/``, the original's ``sample500`` repack). The file
list goes to ``run.json`` (``visualizations``); the metrics also go to the run's ``<split>_metrics.json``.
"""

from __future__ import annotations

import logging
import time

import torch

from zoolab.errors import ZoolabError
from zoolab.families.base import Family
from zoolab.metrics.coco import evaluate_coco
from zoolab.tasks.visualize import paint_detections, sample_image_ids, with_legend

__all__ = ["VisualizeFamily"]

log = logging.getLogger(__name__)


def _count(value, key: str) -> int | None:
    if value is None:
        return None
    if int(value) < 1:
        raise ZoolabError(f"{key}={value} must be at least 1", where=key, fix=f"use e.g. {key}=16, or {key}=null")
    return int(value)


class VisualizeFamily(Family):
    needs_checkpoint = True
    exports_weights = False

    def build_datamodule(self):
        task = self.cfg.task
        first, sample = _count(task.num_images, "task.num_images"), _count(task.get("sample"), "task.sample")
        if first is not None and sample is not None:
            raise ZoolabError("task.num_images and task.sample are both set", where="task.num_images / task.sample",
                              fix="keep one: num_images=N paints the first N images, sample=N a seeded draw of N")
        datamodule = super().build_datamodule()
        split = str(task.split)
        if split not in datamodule.eval_splits:
            raise ZoolabError(f"split '{split}' is not an evaluation split of this dataset",
                              where="task.split", fix=f"use one of {datamodule.eval_splits}")
        return datamodule

    def _selection(self, dataset) -> tuple[list[int], str]:
        """Dataset indices to paint and the folder name under ``visualizations/``."""
        task, split = self.cfg.task, str(self.cfg.task.split)
        if task.get("sample") is not None:
            wanted = set(sample_image_ids(dataset.image_ids, int(task.sample), int(task.get("sample_seed") or 0)))
            return [i for i, image_id in enumerate(dataset.image_ids) if image_id in wanted], f"{split}_sample{task.sample}"
        count = len(dataset) if task.num_images is None else min(int(task.num_images), len(dataset))
        return list(range(count)), split

    def evaluate(self, task, trainer, datamodule, out):
        split, score_thresh = str(self.cfg.task.split), float(self.cfg.task.score_thresh)
        dataset = datamodule.dataset(split)
        indices, folder = self._selection(dataset)
        detector = task.detector.eval()
        detector.score_thresh = 0.0  # every prediction counts in the metrics; only those above score_thresh are drawn
        written, detections = [], []
        start = time.perf_counter()
        with torch.no_grad():
            for index in indices:
                image, target = dataset[index]
                (prediction,) = detector([image])
                detections.append({"image_id": int(target["image_id"]), **prediction})
                keep = prediction["scores"] >= score_thresh
                painted = paint_detections(image, target["boxes"], prediction["boxes"][keep],
                                           prediction["scores"][keep], prediction["labels"][keep], task.class_names)
                relative = f"visualizations/{folder}/{int(target['image_id']):08d}.png"
                out.write_png(relative, with_legend(painted, task.class_names))
                written.append(relative)
        seconds = (time.perf_counter() - start) / max(1, len(indices))
        metrics = evaluate_coco(dataset.annotation_file, detections, dataset.category_ids, task.class_names,
                                image_ids=[d["image_id"] for d in detections])
        out.write_json(f"visualizations/{folder}/metrics.json",
                       {**metrics, "images": len(written), "split": split, "score_thresh_drawn": score_thresh,
                        "seconds_per_image": round(seconds, 4)})
        log.info("wrote %d painted images to %s (%.2f s per image)", len(written), out.path(f"visualizations/{folder}"),
                 seconds)
        out.record.update(visualizations=written, visualized_split=split, visualize_score_thresh=score_thresh,
                          visualize_seconds_per_image=round(seconds, 4))
        return {split: metrics}

    def deployment_metrics(self, task, datamodule, out) -> dict:
        return {}
