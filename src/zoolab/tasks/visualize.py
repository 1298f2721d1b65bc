"""Painting detections onto images (the procedure of ``task=visualize`` is ``zoolab.families.visualize``)."""

from __future__ import annotations

import torch

__all__ = ["GT_COLOUR", "CLASS_COLOURS", "paint_detections"]

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
