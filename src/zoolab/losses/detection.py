"""RetinaNet losses: sigmoid focal classification loss plus a box loss, with a choice of normaliser.

``normalize="batch"`` is MMDetection's (the SAR zoo's original): both losses are summed over every anchor
of every image in the batch and divided once by the batch's total number of positive anchors (each image
counting at least one, as MMDetection's ``SamplingResult.num_pos`` does for images without positives).
``normalize="image"`` is torchvision's: each image's sums are divided by that image's positives, then the
per-image losses are averaged. The two agree when every image has the same number of positives.

Anchors whose best IoU falls between the matcher's thresholds are ignored in the classification loss;
only positive anchors enter the box loss (on the anchor-relative deltas, or on decoded boxes for GIoU).
"""

from __future__ import annotations

import torch
from torchvision.models.detection import _utils as det_utils
from torchvision.ops import sigmoid_focal_loss

from zoolab.errors import ZoolabError

__all__ = ["RetinaNetLoss"]

BOX_LOSSES = ("l1", "smooth_l1", "giou")
NORMALIZERS = ("batch", "image")


class RetinaNetLoss:
    """Focal + box loss for a RetinaNet head, consumed by ``zoolab.heads.retinanet.RetinaNetDetector``.

    Args:
        alpha: focal-loss weight of positives in [0, 1] (0.25 in the paper).
        gamma: focal-loss focusing exponent (2.0).
        box_loss: ``l1`` on box deltas (MMDet RetinaNet), ``smooth_l1`` (beta 1) or ``giou`` on decoded boxes.
        normalize: ``batch`` (sum / positives in the whole batch, MMDet) or ``image`` (torchvision).
    """

    def __init__(
        self, alpha: float = 0.25, gamma: float = 2.0, box_loss: str = "l1", normalize: str = "batch"
    ) -> None:
        if box_loss not in BOX_LOSSES:
            raise ZoolabError(
                f"unknown box loss '{box_loss}'", where="loss.box_loss", fix=f"use one of {list(BOX_LOSSES)}"
            )
        if normalize not in NORMALIZERS:
            raise ZoolabError(
                f"unknown loss normalisation '{normalize}'",
                where="loss.normalize",
                fix=f"use one of {list(NORMALIZERS)}",
            )
        if not 0.0 <= alpha <= 1.0:
            raise ZoolabError(f"focal alpha {alpha} is outside [0, 1]", where="loss.alpha", fix="use 0.25")
        if gamma < 0.0:
            raise ZoolabError(f"focal gamma {gamma} is negative", where="loss.gamma", fix="use 2.0")
        self.alpha, self.gamma = float(alpha), float(gamma)
        self.box_loss, self.normalize = box_loss, normalize

    def __repr__(self) -> str:
        return (
            f"RetinaNetLoss(alpha={self.alpha}, gamma={self.gamma}, box_loss={self.box_loss!r}, "
            f"normalize={self.normalize!r})"
        )

    def __call__(
        self,
        targets: list[dict[str, torch.Tensor]],
        head_outputs: dict[str, torch.Tensor],
        anchors: list[torch.Tensor],
        matched_idxs: list[torch.Tensor],
        box_coder: det_utils.BoxCoder,
    ) -> dict[str, torch.Tensor]:
        """Losses ``{classification, bbox_regression}`` for one batch.

        Args:
            targets: per image ``boxes`` [N, 4] xyxy (resized-image pixels) and 0-based ``labels`` [N].
            head_outputs: ``cls_logits`` [B, A, K] and ``bbox_regression`` [B, A, 4].
            anchors: per image [A, 4] xyxy.
            matched_idxs: per image [A] ground-truth index, -1 background, -2 ignored.
            box_coder: encodes boxes as deltas relative to anchors.
        """
        cls_sums, box_sums, positives = [], [], []
        for target, logits, deltas, image_anchors, matched in zip(
            targets, head_outputs["cls_logits"], head_outputs["bbox_regression"], anchors, matched_idxs
        ):
            foreground = matched >= 0
            gt_index = matched[foreground]
            classes = torch.zeros_like(logits)
            classes[foreground, target["labels"][gt_index]] = 1.0
            valid = matched != det_utils.Matcher.BETWEEN_THRESHOLDS
            cls_sums.append(
                sigmoid_focal_loss(logits[valid], classes[valid], self.alpha, self.gamma, reduction="sum")
            )
            matched_boxes = target["boxes"][gt_index]
            box_sums.append(
                det_utils._box_loss(
                    self.box_loss, box_coder, image_anchors[foreground], matched_boxes, deltas[foreground]
                )
            )
            positives.append(foreground.sum())
        cls_sums, box_sums, positives = torch.stack(cls_sums), torch.stack(box_sums), torch.stack(positives)
        if self.normalize == "batch":
            total = positives.clamp(min=1).sum()
            return {"classification": cls_sums.sum() / total, "bbox_regression": box_sums.sum() / total}
        per_image = positives.clamp(min=1)
        return {
            "classification": (cls_sums / per_image).mean(),
            "bbox_regression": (box_sums / per_image).mean(),
        }
