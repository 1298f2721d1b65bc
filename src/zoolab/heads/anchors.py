"""Anchor sizes and anchor-to-box assignment of the SAR zoo's MMDetection RetinaNet, in torchvision's
conventions (so torchvision's RetinaNet, box coder and loss code use them unchanged).

- :func:`retinanet_anchor_generator`: per level P3-P7 the sizes ``octave_base_scale * stride * 2**(i/3)``
  (i = 0, 1, 2; base 4: 32, 40.32, 50.80 on P3 ... 512, 645.1, 812.7 on P7) at ratios 0.5/1/2, unrounded
  as MMDetection makes them (``mmdet``); ``torchvision`` keeps torchvision's integer sizes and rounded
  base anchors (32, 40, 50; 64, 80, 101; ...).
- :class:`MaxIoUAssigner`: MMDetection's rule with ``pos_iou_thr`` 0.5, ``neg_iou_thr`` 0.4,
  ``min_pos_iou`` 0 and ``gt_max_assign_all``: an anchor whose best IoU is >= 0.5 goes to that box, < 0.4
  is background, otherwise ignored; then every box takes **all** anchors that reach its own highest IoU,
  boxes later in the list overriding earlier ones. torchvision's low-quality matching instead gives such
  an anchor to whichever box it overlaps most, so a small box whose best anchor a bigger box also covers
  can end with no positive anchor.
"""

from __future__ import annotations

import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection._utils import Matcher

from zoolab.errors import ZoolabError

__all__ = ["MaxIoUAssigner", "UnroundedAnchorGenerator", "retinanet_anchor_generator", "retinanet_assigner"]

STRIDES = (8, 16, 32, 64, 128)          # P3-P7
ASPECT_RATIOS = (0.5, 1.0, 2.0)
SCALES_PER_OCTAVE = 3
OCTAVE_BASE_SCALE = 4
STYLES = ("mmdet", "torchvision")


class UnroundedAnchorGenerator(AnchorGenerator):
    """torchvision's generator without rounding the base anchors (MMDetection keeps them fractional)."""

    def generate_anchors(self, scales, aspect_ratios, dtype=torch.float32, device=torch.device("cpu")):
        scales = torch.as_tensor(scales, dtype=dtype, device=device)
        aspect_ratios = torch.as_tensor(aspect_ratios, dtype=dtype, device=device)
        h_ratios = torch.sqrt(aspect_ratios)
        w_ratios = 1 / h_ratios
        ws = (w_ratios[:, None] * scales[None, :]).view(-1)
        hs = (h_ratios[:, None] * scales[None, :]).view(-1)
        return torch.stack([-ws, -hs, ws, hs], dim=1) / 2


def _check_style(style: str, where: str) -> None:
    if style not in STYLES:
        raise ZoolabError(f"unknown {where.rsplit('.', 1)[-1]} style '{style}'", where=where,
                          fix=f"use one of {', '.join(STYLES)}")


def retinanet_anchor_generator(style: str = "mmdet") -> AnchorGenerator:
    """Nine anchors per location on P3-P7 (3 scales x 3 ratios), in ``style``'s sizes."""
    _check_style(style, "head.anchors")
    ratios = (ASPECT_RATIOS,) * len(STRIDES)
    if style == "torchvision":
        sizes = tuple((x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in (32, 64, 128, 256, 512))
        return AnchorGenerator(sizes, ratios)
    sizes = tuple(tuple(OCTAVE_BASE_SCALE * stride * 2 ** (i / SCALES_PER_OCTAVE) for i in range(SCALES_PER_OCTAVE))
                  for stride in STRIDES)
    return UnroundedAnchorGenerator(sizes, ratios)


class MaxIoUAssigner:
    """IoU matrix ``[boxes, anchors]`` -> per anchor the box index, ``-1`` background, ``-2`` ignored
    (torchvision's ``Matcher`` output), by MMDetection's ``MaxIoUAssigner`` rule (module docstring)."""

    def __init__(self, pos_iou_thr: float = 0.5, neg_iou_thr: float = 0.4, min_pos_iou: float = 0.0,
                 gt_max_assign_all: bool = True) -> None:
        self.pos_iou_thr, self.neg_iou_thr = pos_iou_thr, neg_iou_thr
        self.min_pos_iou, self.gt_max_assign_all = min_pos_iou, gt_max_assign_all

    def __call__(self, iou: torch.Tensor) -> torch.Tensor:
        num_boxes, num_anchors = iou.shape
        matched = torch.full((num_anchors,), Matcher.BETWEEN_THRESHOLDS, dtype=torch.int64, device=iou.device)
        if num_boxes == 0:
            return matched.fill_(Matcher.BELOW_LOW_THRESHOLD)
        best_iou, best_box = iou.max(dim=0)
        matched[(best_iou >= 0) & (best_iou < self.neg_iou_thr)] = Matcher.BELOW_LOW_THRESHOLD
        positive = best_iou >= self.pos_iou_thr
        matched[positive] = best_box[positive]

        box_best = iou.max(dim=1).values                              # each box's highest IoU
        if self.gt_max_assign_all:
            takes = iou == box_best[:, None]                          # every anchor at that IoU
        else:
            takes = torch.zeros_like(iou, dtype=torch.bool)
            takes[torch.arange(num_boxes, device=iou.device), iou.argmax(dim=1)] = True
        takes &= (box_best >= self.min_pos_iou)[:, None]
        # The last box that takes an anchor wins (MMDetection assigns box by box, in order).
        order = torch.arange(1, num_boxes + 1, device=iou.device)[:, None]
        last = (takes * order).max(dim=0).values
        matched[last > 0] = last[last > 0] - 1
        return matched


def retinanet_assigner(style: str = "mmdet"):
    """MMDetection's assigner (``mmdet``) or torchvision's ``Matcher(0.5, 0.4, low-quality matches)``."""
    _check_style(style, "head.assigner")
    if style == "torchvision":
        return Matcher(0.5, 0.4, allow_low_quality_matches=True)
    return MaxIoUAssigner()
