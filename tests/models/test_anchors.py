"""MMDetection's anchor sizes and MaxIoUAssigner, against a hand-written copy of MMDetection's rule on
crafted IoU matrices (ties, a box whose best anchor is also another box's best, no boxes), and on real
anchors of a RetinaNet."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection._utils import Matcher

from zoolab.heads.anchors import MaxIoUAssigner, retinanet_anchor_generator, retinanet_assigner


def mmdet_rule(iou: torch.Tensor, pos=0.5, neg=0.4, min_pos=0.0) -> list[int]:
    """MMDetection's assign_wrt_overlaps, written out box by box (1-based gt indices, 0 background,
    -1 ignored), returned in torchvision's convention (index, -1 background, -2 ignored)."""
    boxes, anchors = iou.shape
    assigned = [-1] * anchors
    for a in range(anchors):
        column = [float(iou[g, a]) for g in range(boxes)]
        best = max(column)
        if 0 <= best < neg:
            assigned[a] = 0
        if best >= pos:
            assigned[a] = column.index(best) + 1
    for g in range(boxes):
        row = [float(iou[g, a]) for a in range(anchors)]
        if max(row) >= min_pos:
            for a in range(anchors):
                if row[a] == max(row):
                    assigned[a] = g + 1
    return [Matcher.BETWEEN_THRESHOLDS if v == -1 else Matcher.BELOW_LOW_THRESHOLD if v == 0 else v - 1
            for v in assigned]


CASES = {
    "clear": [[0.7, 0.1, 0.45, 0.0], [0.0, 0.6, 0.2, 0.3]],
    # box 1's best anchor (0.35) is anchor 0, where box 0 has 0.6: MMDetection gives anchor 0 to box 1
    "shared_best_anchor": [[0.6, 0.1, 0.0], [0.35, 0.2, 0.1]],
    # box 0 reaches its best IoU at two anchors: both go to it
    "tie": [[0.3, 0.3, 0.1], [0.0, 0.2, 0.45]],
    # the same best anchor for both boxes with equal IoU: the later box wins
    "equal_best": [[0.55, 0.1], [0.55, 0.3]],
}


@pytest.mark.parametrize("name", list(CASES))
def test_assigner_follows_mmdetections_rule(name):
    iou = torch.tensor(CASES[name])
    assert MaxIoUAssigner()(iou).tolist() == mmdet_rule(iou)


def test_a_box_whose_best_anchor_is_shared_keeps_a_positive_anchor_only_with_mmdetections_rule():
    iou = torch.tensor(CASES["shared_best_anchor"])
    assert 1 in MaxIoUAssigner()(iou).tolist()
    torchvision = Matcher(0.5, 0.4, allow_low_quality_matches=True)(iou).tolist()
    assert 1 not in torchvision  # the anchor went to box 0, which overlaps it more


def test_an_image_without_boxes_is_all_background():
    matched = MaxIoUAssigner()(torch.zeros(0, 5))
    assert matched.tolist() == [Matcher.BELOW_LOW_THRESHOLD] * 5


def test_random_matrices_agree_with_the_written_out_rule():
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        iou = (torch.rand(4, 30, generator=generator) * 0.8).round(decimals=1)  # rounding makes ties
        assert MaxIoUAssigner()(iou).tolist() == mmdet_rule(iou)


def test_anchor_sizes_are_mmdetections():
    generator = retinanet_anchor_generator("mmdet")
    p3 = generator.cell_anchors[0]  # ratio-major: the ratio-1 anchors are rows 3-5
    sides = (p3[3:6, 2] - p3[3:6, 0]).tolist()
    assert sides == pytest.approx([32.0, 40.3175, 50.7968], abs=1e-3)
    p7 = generator.cell_anchors[4]
    assert (p7[3:6, 2] - p7[3:6, 0]).tolist() == pytest.approx([512.0, 645.08, 812.75], abs=1e-2)
    torchvision = retinanet_anchor_generator("torchvision").cell_anchors[0]
    assert (torchvision[3:6, 2] - torchvision[3:6, 0]).tolist() == [32.0, 40.0, 50.0]


def test_unknown_styles_are_refused():
    with pytest.raises(Exception, match="head.assigner"):
        retinanet_assigner("yolo")
    with pytest.raises(Exception, match="head.anchors"):
        retinanet_anchor_generator("yolo")
