"""RetinaNet (Lin et al., "Focal Loss for Dense Object Detection", 2017) on a timm feature backbone.

Assembled from torchvision parts to match the SAR zoo's MMDetection RetinaNet (compared item by item in
docs/detection.md):
C3-C5 of a ``TimmFeatures`` backbone -> ``FeaturePyramidNetwork`` to 256 channels with P6/P7 computed from
C5 (``LastLevelP6P7``) -> the v1 ``RetinaNetHead`` (4 x conv3x3+ReLU per branch, no norm, prior 0.01) over
9 anchors per location. For ConvNeXt-S this is FPN 4,474,880 + head 4,928,090 = 9,402,970 parameters, the
9.403M neck + head the original zoo reports for every row. Anchor sizes and the anchor-to-box assignment
are MMDetection's by default (``anchors``/``assigner`` = ``mmdet``, see :mod:`zoolab.heads.anchors`;
``torchvision`` keeps torchvision's). Remaining differences to MMDet: P7 = conv(ReLU(P6)) (MMDet applies no
ReLU there) and the FPN's Kaiming init (MMDet: Xavier).

Images are resized to a fixed ``image_size`` without keeping the ratio (MMDet's ``Resize(800, 800,
keep_ratio=False)``) and normalised with the backbone weights' mean/std by torchvision's
``GeneralizedRCNNTransform``; detections are mapped back to each image's original pixels.

Contract: ``forward(images, targets)`` takes a list of float CHW tensors in [0, 1] (any sizes) and, in
training, targets with ``boxes`` (float [N, 4] xyxy, original pixels) and ``labels`` (int64 [N],
0-based, no background class). Train mode returns ``{"classification", "bbox_regression"}``; eval mode
returns one ``{"boxes", "scores", "labels"}`` dict per image.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.detection.retinanet import RetinaNet, RetinaNetHead
from torchvision.ops import boxes as box_ops
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelP6P7

from zoolab.errors import ZoolabError
from zoolab.heads.anchors import retinanet_anchor_generator, retinanet_assigner
from zoolab.losses.detection import RetinaNetLoss

__all__ = ["RetinaNetDetector", "detection_parameter_counts"]

# One size octave per level P3-P7, 3 scales x 3 ratios per location (zoolab.heads.anchors).
_BACKBONE_LEVELS = 3
_ANCHORS_PER_LOCATION = 9


class RetinaNetDetector(RetinaNet):
    """RetinaNet with ``.backbone`` (timm features, C3-C5), ``.neck`` (FPN + P6/P7) and ``.head``.

    Args:
        backbone: ``TimmFeatures`` with three levels (strides 8/16/32), ``out_channels``, ``mean``, ``std``.
        num_classes: number of object classes (no background; labels are 0-based column indices).
        loss: ``RetinaNetLoss``; None means its defaults (focal 0.25/2, L1, batch normalisation).
        fpn_channels: FPN width (256).
        image_size: ``[height, width]`` every image is resized to (ratio not kept), e.g. ``[800, 800]``.
        score_thresh: minimum score kept at inference; an attribute, so it can change between runs
            (0.05 for validation, 0.0 for the final evaluation).
        nms_thresh: class-wise NMS IoU threshold.
        detections_per_img: detections kept per image after NMS.
        topk_candidates: highest-scoring candidates kept per level before NMS.
        anchors: ``mmdet`` (fractional sizes 32, 40.32, 50.80, ...) or ``torchvision`` (32, 40, 50, ...).
        assigner: ``mmdet`` (MaxIoUAssigner, every box takes all anchors at its best IoU) or
            ``torchvision`` (Matcher with low-quality matches).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        loss: RetinaNetLoss | None = None,
        fpn_channels: int = 256,
        image_size: Sequence[int] = (800, 800),
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_img: int = 100,
        topk_candidates: int = 1000,
        anchors: str = "mmdet",
        assigner: str = "mmdet",
    ) -> None:
        levels = list(getattr(backbone, "out_channels", []))
        if len(levels) != _BACKBONE_LEVELS:
            raise ZoolabError(
                f"RetinaNet needs a backbone with 3 feature levels (C3-C5), got out_channels {levels}",
                where="backbone.out_indices",
                fix="use out_indices [1, 2, 3] for a ConvNeXt (strides 8, 16, 32)",
            )
        height, width = (int(s) for s in image_size)
        super().__init__(
            backbone,
            num_classes,
            min_size=min(height, width),
            max_size=max(height, width),
            image_mean=list(backbone.mean),
            image_std=list(backbone.std),
            anchor_generator=retinanet_anchor_generator(anchors),
            head=RetinaNetHead(fpn_channels, _ANCHORS_PER_LOCATION, num_classes),
            score_thresh=score_thresh,
            nms_thresh=nms_thresh,
            detections_per_img=detections_per_img,
            topk_candidates=topk_candidates,
            fixed_size=(width, height),  # torchvision reads fixed_size as (width, height)
        )
        # P6 from C5 as MMDet's add_extra_convs="on_input": LastLevelP6P7 takes C5 whenever C5's width
        # differs from fpn_channels (768 vs 256 for ConvNeXt-S), and P5 otherwise.
        p6p7 = LastLevelP6P7(levels[-1], fpn_channels)
        self.neck = FeaturePyramidNetwork(levels, fpn_channels, extra_blocks=p6p7)
        self.proposal_matcher = retinanet_assigner(assigner)
        self.loss = loss if loss is not None else RetinaNetLoss()
        self.num_classes = num_classes
        self.image_size = [height, width]

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Normalised, batched images -> pyramid levels P3-P7."""
        levels = self.backbone(images)
        pyramid = self.neck(OrderedDict((str(i), level) for i, level in enumerate(levels)))
        return list(pyramid.values())

    def forward(self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]] | None = None):
        """Train: dict of losses; eval: per-image detections in original pixels (see the module docstring)."""
        if self.training and targets is None:
            raise ZoolabError("RetinaNetDetector in train mode needs targets", where="detector.forward")
        original_sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in images]
        batch, targets = self.transform(images, targets)
        if targets is not None:
            _check_boxes(targets)
        features = self.features(batch.tensors)
        head_outputs = self.head(features)
        anchors = self.anchor_generator(batch, features)
        if self.training:
            return self.compute_loss(targets, head_outputs, anchors)
        detections = self._detections(head_outputs, anchors, features, batch.image_sizes)
        return self.transform.postprocess(detections, batch.image_sizes, original_sizes)

    def compute_loss(self, targets, head_outputs, anchors) -> dict[str, torch.Tensor]:
        """Match anchors to ground truth (IoU >= 0.5 positive, < 0.4 negative, then each box's best anchors;
        see ``assigner``)."""
        matched_idxs = []
        for anchors_per_image, target in zip(anchors, targets):
            if target["boxes"].numel() == 0:
                matched_idxs.append(torch.full_like(anchors_per_image[:, 0], -1, dtype=torch.int64))
                continue
            matched_idxs.append(self.proposal_matcher(box_ops.box_iou(target["boxes"], anchors_per_image)))
        return self.loss(targets, head_outputs, anchors, matched_idxs, self.box_coder)

    def _detections(self, head_outputs, anchors, features, image_sizes) -> list[dict[str, torch.Tensor]]:
        """Split the flat head outputs and anchors per level, then decode, threshold, top-k and NMS."""
        locations = [f.shape[-2] * f.shape[-1] for f in features]
        per_location = head_outputs["cls_logits"].shape[1] // sum(locations)
        sizes = [n * per_location for n in locations]
        split_outputs = {k: list(v.split(sizes, dim=1)) for k, v in head_outputs.items()}
        split_anchors = [list(a.split(sizes)) for a in anchors]
        return self.postprocess_detections(split_outputs, split_anchors, image_sizes)


def _check_boxes(targets: list[dict[str, torch.Tensor]]) -> None:
    for index, target in enumerate(targets):
        boxes = target["boxes"]
        if boxes.ndim != 2 or boxes.shape[-1] != 4:
            raise ZoolabError(
                f"target boxes of image {index} have shape {list(boxes.shape)}, expected [N, 4]",
                where="detection targets",
                fix="give boxes as float [N, 4] xyxy",
            )
        bad = (boxes[:, 2:] <= boxes[:, :2]).any(dim=1)
        if bad.any():
            raise ZoolabError(
                f"image {index} has a box with no width or height after resizing: {boxes[bad][0].tolist()}",
                where="detection targets",
                fix="drop degenerate boxes in the dataset (x2 > x1 and y2 > y1 are required)",
            )


def detection_parameter_counts(detector: RetinaNetDetector) -> dict:
    """Total and trainable parameters per component; ``backbone.lora`` counts the ``lora_*`` tensors."""
    from zoolab.params import count_parameters

    counts = count_parameters({"backbone": detector.backbone, "neck": detector.neck, "head": detector.head})
    parts = counts["per_component"]
    parts["backbone"]["lora"] = sum(p.numel() for n, p in detector.backbone.named_parameters() if "lora_" in n)
    return {**parts, "total": counts["total"], "trainable": counts["trainable"]}
