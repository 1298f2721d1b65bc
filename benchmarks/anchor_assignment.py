"""How MMDetection's and torchvision's anchor rules differ on SAR-like boxes: random boxes of 6-126 px
(the small end of SARDet-100K) on 800x800 images, the RetinaNet anchors of each style on P3-P7, and for
each assigner the anchors it assigns differently and the boxes left without a positive anchor.

    python benchmarks/anchor_assignment.py --images 100
"""

from __future__ import annotations

import argparse

import torch
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import box_iou

from zoolab.heads.anchors import retinanet_anchor_generator, retinanet_assigner

SIZE = 800
STRIDES = (8, 16, 32, 64, 128)


def anchors_of(style: str) -> torch.Tensor:
    features = [torch.zeros(1, 1, SIZE // s, SIZE // s) for s in STRIDES]
    images = ImageList(torch.zeros(1, 3, SIZE, SIZE), [(SIZE, SIZE)])
    return retinanet_anchor_generator(style)(images, features)[0]


def random_boxes(generator: torch.Generator, count: int) -> torch.Tensor:
    sides = 6 + torch.rand(count, 2, generator=generator) * 120
    corners = torch.rand(count, 2, generator=generator) * (SIZE - sides)
    return torch.cat([corners, corners + sides], dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100)
    options = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    anchors = {style: anchors_of(style) for style in ("mmdet", "torchvision")}
    boxes_total, differing, unmatched = 0, 0, {"mmdet": 0, "torchvision": 0}
    for _ in range(options.images):
        boxes = random_boxes(generator, int(torch.randint(3, 15, (1,), generator=generator)))
        boxes_total += len(boxes)
        matched = {}
        for style in ("mmdet", "torchvision"):
            matched[style] = retinanet_assigner(style)(box_iou(boxes, anchors["mmdet"]))
            positives = set(matched[style][matched[style] >= 0].tolist())
            unmatched[style] += len(boxes) - len(positives)
        differing += int((matched["mmdet"] != matched["torchvision"]).sum())
    print(f"{options.images} images, {boxes_total} boxes of 6-126 px, MMDetection anchor sizes")
    print(f"anchors assigned differently by the two rules: {differing}")
    print(f"boxes without a positive anchor: mmdet {unmatched['mmdet']}, torchvision {unmatched['torchvision']}")
    mm, tv = anchors["mmdet"], anchors["torchvision"]
    print(f"anchor sizes: largest |mmdet - torchvision| corner difference {float((mm - tv).abs().max()):.2f} px")


if __name__ == "__main__":
    main()
