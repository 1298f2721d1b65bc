"""Painted detections of a trained detector (the report's E0010/E0011 "visualize detections" rows).

``python -m zoolab +exp=sardet_lora_r16_fc1fc2 task=visualize ckpt=PATH [task.split=val task.num_images=16
task.score_thresh=0.3]`` builds the experiment's model exactly as training did, loads ``PATH`` (a Lightning
``.ckpt`` of the run, or its exported ``model.safetensors`` with LoRA merged), runs the first
``num_images`` images of ``split`` and writes one PNG per image to ``<run>/visualizations/<split>/``:
ground truth in one colour, predictions above ``score_thresh`` in a colour per class with
``label score``. The file list goes to ``run.json`` (``visualizations``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from zoolab.errors import ZoolabError
from zoolab.runfolder import RunRecord

__all__ = ["GT_COLOUR", "CLASS_COLOURS", "paint_detections", "visualize_detections"]

log = logging.getLogger(__name__)
GT_COLOUR = "#00ff00"
CLASS_COLOURS = ("#ff3b30", "#0a84ff", "#ffd60a", "#bf5af2", "#ff9f0a", "#64d2ff", "#ff2d55", "#30d158")


def paint_detections(image: torch.Tensor, gt_boxes: torch.Tensor, boxes: torch.Tensor, scores: torch.Tensor,
                     labels: torch.Tensor, class_names: list[str], width: int = 2) -> torch.Tensor:
    """uint8 ``[3, H, W]`` image with ground-truth boxes (``GT_COLOUR``, no text) under the predicted ones
    (``CLASS_COLOURS`` by label, captioned ``name score``). ``image`` is float in [0, 1], any channel count."""
    from torchvision.utils import draw_bounding_boxes

    canvas = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    canvas = canvas.expand(3, -1, -1) if canvas.shape[0] == 1 else canvas[:3]
    if len(gt_boxes):
        canvas = draw_bounding_boxes(canvas, gt_boxes.float(), colors=GT_COLOUR, width=width)
    if len(boxes):
        captions = [f"{class_names[int(c)]} {float(s):.2f}" for c, s in zip(labels, scores)]
        colours = [CLASS_COLOURS[int(c) % len(CLASS_COLOURS)] for c in labels]
        canvas = draw_bounding_boxes(canvas, boxes.float(), labels=captions, colors=colours, width=width)
    return canvas


def _write_png_atomic(image: torch.Tensor, path: Path) -> None:
    from torchvision.io import write_png

    tmp = path.with_name(f".{path.name}.tmp")
    write_png(image, str(tmp))
    tmp.replace(path)


def visualize_detections(cfg: DictConfig, run_dir: Path, record: RunRecord) -> dict:
    """The ``task=visualize`` runner: checkpoint -> first N images of a split -> painted PNGs."""
    from zoolab.train import build_task, checkpoint_path, load_checkpoint, skip_pretrained_for_full_checkpoint

    if not cfg.get("ckpt"):
        raise ZoolabError("task=visualize needs a trained checkpoint and none was given", where="ckpt",
                          fix="add ckpt=<run>/checkpoints/best.ckpt (or model.safetensors) of a detection run")
    path = checkpoint_path(cfg)
    split, count, score_thresh = str(cfg.task.split), int(cfg.task.num_images), float(cfg.task.score_thresh)
    if count < 1:
        raise ZoolabError(f"task.num_images={count} must be at least 1", where="task.num_images", fix="use e.g. 16")
    with record.phase("setup"):
        datamodule = instantiate(cfg.dataset)
        datamodule.setup()
        if split not in datamodule.eval_splits:
            raise ZoolabError(f"split '{split}' is not an evaluation split of this dataset",
                              where="task.split", fix=f"use one of {datamodule.eval_splits}")
        dataset = datamodule.dataset(split)
        skip_pretrained_for_full_checkpoint(cfg)
        task = build_task(cfg, datamodule.class_names)
        load_checkpoint(task, path)
    record.update(evaluated_checkpoint=str(path), params=task.parameter_counts())

    detector = task.detector.eval()
    detector.score_thresh = score_thresh
    out_dir = run_dir / "visualizations" / split
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with record.phase("visualize"), torch.no_grad():
        for index in range(min(count, len(dataset))):
            image, target = dataset[index]
            (prediction,) = detector([image])
            keep = prediction["scores"] >= score_thresh
            painted = paint_detections(image, target["boxes"], prediction["boxes"][keep],
                                       prediction["scores"][keep], prediction["labels"][keep], task.class_names)
            png = out_dir / f"{int(target['image_id']):08d}.png"
            _write_png_atomic(painted, png)
            written.append(png.relative_to(run_dir).as_posix())
    log.info("wrote %d painted images to %s", len(written), out_dir)
    record.update(visualizations=written, visualized_split=split, visualize_score_thresh=score_thresh)
    return {"visualizations": written}
