"""Painted detections of a trained detector (the report's E0010/E0011 "visualize detections" rows).

``python -m zoolab +exp=sardet_lora_r16_fc1fc2 task=visualize ckpt=PATH [task.split=val task.num_images=16
task.score_thresh=0.3]`` builds the experiment's model exactly as training did, loads ``PATH`` (a Lightning
``.ckpt`` of the run, its exported ``model.safetensors`` or its ``adapter.safetensors``), runs the first
``num_images`` images of ``split`` and writes one PNG per image to ``<run>/visualizations/<split>/``:
ground truth in one colour, predictions above ``score_thresh`` in a colour per class with ``label score``.
The file list goes to ``run.json`` (``visualizations``).
"""

from __future__ import annotations

import logging

import torch

from zoolab.errors import ZoolabError
from zoolab.families.base import Family
from zoolab.tasks.visualize import paint_detections

__all__ = ["VisualizeFamily"]

log = logging.getLogger(__name__)


class VisualizeFamily(Family):
    needs_checkpoint = True
    exports_weights = False

    def build_datamodule(self):
        count = int(self.cfg.task.num_images)
        if count < 1:
            raise ZoolabError(f"task.num_images={count} must be at least 1", where="task.num_images",
                              fix="use e.g. 16")
        datamodule = super().build_datamodule()
        split = str(self.cfg.task.split)
        if split not in datamodule.eval_splits:
            raise ZoolabError(f"split '{split}' is not an evaluation split of this dataset",
                              where="task.split", fix=f"use one of {datamodule.eval_splits}")
        return datamodule

    def evaluate(self, task, trainer, datamodule, out):
        split, count = str(self.cfg.task.split), int(self.cfg.task.num_images)
        score_thresh = float(self.cfg.task.score_thresh)
        dataset = datamodule.dataset(split)
        detector = task.detector.eval()
        detector.score_thresh = score_thresh
        written = []
        with torch.no_grad():
            for index in range(min(count, len(dataset))):
                image, target = dataset[index]
                (prediction,) = detector([image])
                keep = prediction["scores"] >= score_thresh
                painted = paint_detections(image, target["boxes"], prediction["boxes"][keep],
                                           prediction["scores"][keep], prediction["labels"][keep], task.class_names)
                relative = f"visualizations/{split}/{int(target['image_id']):08d}.png"
                out.write_png(relative, painted)
                written.append(relative)
        log.info("wrote %d painted images to %s", len(written), out.path(f"visualizations/{split}"))
        out.record.update(visualizations=written, visualized_split=split, visualize_score_thresh=score_thresh)
        return {}

    def deployment_metrics(self, task) -> dict:
        return {}
