"""Painting detections onto images (the procedure of ``task=visualize`` is ``zoolab.families.visualize``)."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["GT_COLOUR", "CLASS_COLOURS", "paint_detections", "with_legend", "sample_image_ids"]

GT_COLOUR = "#00ff00"
CLASS_COLOURS = ("#ff3b30", "#0a84ff", "#ffd60a", "#bf5af2", "#ff9f0a", "#64d2ff", "#ff2d55", "#30d158")


def class_colour(label: int) -> str:
    return CLASS_COLOURS[int(label) % len(CLASS_COLOURS)]


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
        colours = [class_colour(c) for c in labels]
        canvas = draw_bounding_boxes(canvas, boxes.float(), labels=captions, colors=colours, width=width)
    return canvas


def with_legend(canvas: torch.Tensor, class_names: list[str], row_height: int = 14) -> torch.Tensor:
    """``canvas`` (uint8 ``[3, H, W]``) with a legend band below it: ground truth, then each class's colour."""
    from PIL import Image, ImageDraw

    entries = [("ground truth", GT_COLOUR)] + [(name, class_colour(i)) for i, name in enumerate(class_names)]
    width = int(canvas.shape[-1])
    per_row = max(1, width // 110)
    rows = -(-len(entries) // per_row)
    band = Image.new("RGB", (width, rows * row_height + 4), "black")
    draw = ImageDraw.Draw(band)
    for index, (name, colour) in enumerate(entries):
        x, y = (index % per_row) * (width // per_row) + 3, (index // per_row) * row_height + 2
        draw.rectangle([x, y + 2, x + 9, y + 11], outline=colour, width=2)
        draw.text((x + 13, y), name, fill="white")
    legend = torch.from_numpy(np.array(band)).permute(2, 0, 1)
    return torch.cat([canvas, legend], dim=1)


def sample_image_ids(image_ids: list[int], count: int, seed: int) -> list[int]:
    """``count`` image ids drawn without replacement by ``seed`` from the sorted ids, in id order: the
    same images for every model evaluated on the same split (a "sample500" repack)."""
    ids = sorted(int(i) for i in image_ids)
    if count >= len(ids):
        return ids
    picked = np.random.default_rng(seed).choice(len(ids), size=count, replace=False)
    return sorted(ids[i] for i in picked)
