"""Tests for zoolab.heads.retinanet and zoolab.losses.detection.

Parameter counts use the real ConvNeXt-S architecture on the meta device; behaviour uses timm's tiny
``test_convnext`` at 128x128.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.retinanet import RetinaNet, RetinaNetHead

from zoolab.adapters.freeze import Frozen, FullFineTune
from zoolab.adapters.lora import LoRA
from zoolab.backbones.timm_features import TimmFeatures
from zoolab.errors import ZoolabError
from zoolab.heads.retinanet import RetinaNetDetector, detection_parameter_counts
from zoolab.losses.detection import RetinaNetLoss

CONF = Path(__file__).resolve().parents[2] / "conf"


def _tiny_detector(adapter=None, **kwargs) -> RetinaNetDetector:
    torch.manual_seed(0)
    backbone = TimmFeatures("test_convnext")
    if adapter is not None:
        backbone = adapter.apply(backbone)
    return RetinaNetDetector(backbone, num_classes=3, image_size=[128, 128], **kwargs)


def _convnext_small_detector(adapter) -> RetinaNetDetector:
    with torch.device("meta"):
        return RetinaNetDetector(adapter.apply(TimmFeatures("convnext_small")), num_classes=6)


# --- architecture and counts ---------------------------------------------------------------------------


def test_neck_and_head_match_the_mmdet_parameter_counts():
    detector = _convnext_small_detector(Frozen())
    counts = detection_parameter_counts(detector)
    assert counts["neck"] == {"total": 4_474_880, "trainable": 4_474_880}
    assert counts["head"] == {"total": 4_928_090, "trainable": 4_928_090}
    assert counts["backbone"] == {"total": 49_453_152, "trainable": 0, "lora": 0}
    assert counts["total"] == 49_453_152 + 9_402_970 and counts["trainable"] == 9_402_970  # linear probe
    assert isinstance(detector.head, RetinaNetHead)
    assert detector.head.classification_head.cls_logits.out_channels == 9 * 6  # 0-based, no background
    assert detector.anchor_generator.num_anchors_per_location() == [9] * 5
    assert detector.transform.fixed_size == (800, 800)
    assert detector.transform.image_mean == pytest.approx([0.485, 0.456, 0.406])
    assert (detector.score_thresh, detector.nms_thresh, detector.detections_per_img) == (0.05, 0.5, 100)


def test_full_finetune_trains_every_detector_parameter():
    counts = detection_parameter_counts(_convnext_small_detector(FullFineTune()))
    assert counts["trainable"] == counts["total"] == 58_856_122


# --- forward: training and inference -------------------------------------------------------------------


def _targets():
    return [
        {"boxes": torch.tensor([[10.0, 12.0, 60.0, 50.0]]), "labels": torch.tensor([2])},
        {
            "boxes": torch.tensor([[5.0, 5.0, 40.0, 70.0], [50.0, 20.0, 90.0, 44.0]]),
            "labels": torch.tensor([0, 1]),
        },
    ]


def test_train_mode_gives_finite_losses_and_grads_only_where_trainable():
    detector = _tiny_detector(LoRA(r=2, targets=["fc2"])).train()
    torch.manual_seed(1)
    losses = detector([torch.rand(3, 100, 150), torch.rand(3, 90, 110)], _targets())
    assert set(losses) == {"classification", "bbox_regression"}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    for name, param in detector.named_parameters():
        if not param.requires_grad:
            assert param.grad is None, name
        elif ".lora_A." in name:  # lora_B starts at zero, so A's first gradient is exactly zero
            assert param.grad is not None and param.grad.abs().sum() == 0, name
        else:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
    trainable = {n.split(".")[0] for n, p in detector.named_parameters() if p.requires_grad}
    assert trainable == {"backbone", "neck", "head"}
    assert detector.backbone.model.stages_0.blocks[0].mlp.fc2.base_layer.weight.grad is None


def _upsample(image: torch.Tensor, sy: int, sx: int) -> torch.Tensor:
    return image.repeat_interleave(sy, dim=1).repeat_interleave(sx, dim=2)


def test_eval_returns_boxes_in_each_image_s_original_pixels():
    detector = _tiny_detector(score_thresh=0.0, detections_per_img=20).eval()
    torch.manual_seed(2)
    first, second = torch.rand(3, 128, 128), torch.rand(3, 128, 128)
    # Exact 2x copies: resizing them back to 128x128 gives bit-identical inputs, so the detections must
    # be the 128x128 ones scaled by (2, 2) for a 256x256 image and by (2, 1) for a 128 (h) x 256 (w) one.
    with torch.no_grad():
        reference = detector([first, second])
        scaled = detector([_upsample(first, 2, 2), _upsample(second, 1, 2)])
    for ref, out, (sx, sy), (h, w) in zip(reference, scaled, [(2, 2), (2, 1)], [(256, 256), (128, 256)]):
        assert len(out["boxes"]) == 20
        assert torch.equal(out["labels"], ref["labels"]) and torch.allclose(out["scores"], ref["scores"])
        expected = ref["boxes"] * torch.tensor([sx, sy, sx, sy])
        assert torch.allclose(out["boxes"], expected, atol=1e-3)
        assert out["boxes"][:, 0::2].min() >= 0 and out["boxes"][:, 2].max() <= w
        assert out["boxes"][:, 1::2].min() >= 0 and out["boxes"][:, 3].max() <= h
    assert reference[0]["boxes"][:, 2].max() <= 128


def test_score_thresh_is_a_runtime_attribute():
    detector = _tiny_detector(detections_per_img=7).eval()
    images = [torch.rand(3, 64, 80)]
    with torch.no_grad():
        detector.score_thresh = 0.0
        assert len(detector(images)[0]["scores"]) == 7
        detector.score_thresh = 0.5  # a random head scores about the 0.01 prior
        assert len(detector(images)[0]["scores"]) == 0


# --- loss -----------------------------------------------------------------------------------------------


def _focal(x: float, y: float, alpha: float = 0.25, gamma: float = 2.0) -> float:
    p = 1.0 / (1.0 + math.exp(-x))
    p_t, alpha_t = (p, alpha) if y == 1.0 else (1.0 - p, 1.0 - alpha)
    return -alpha_t * (1.0 - p_t) ** gamma * math.log(p_t)


ANCHORS = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 5.0, 5.0]])
LOGITS = [[[0.0, 1.0], [-1.0, 2.0], [3.0, 3.0]], [[1.0, -1.0], [0.5, 0.0], [-2.0, 0.0]]]
DELTAS = [[[0.0] * 4] * 3, [[0.1, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, -0.2], [0.0] * 4]]
TINY_TARGETS = [
    {"boxes": torch.tensor([[2.0, 0.0, 12.0, 10.0]]), "labels": torch.tensor([1])},
    {
        "boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]),
        "labels": torch.tensor([0, 1]),
    },
]
# image 0: anchor 0 positive (gt 0), anchor 1 background, anchor 2 ignored; image 1: two positives.
MATCHED = [torch.tensor([0, -1, -2]), torch.tensor([0, 1, -1])]


def _tiny_loss(loss: RetinaNetLoss) -> dict[str, torch.Tensor]:
    outputs = {"cls_logits": torch.tensor(LOGITS), "bbox_regression": torch.tensor(DELTAS)}
    coder = det_utils.BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
    return loss(TINY_TARGETS, outputs, [ANCHORS, ANCHORS], MATCHED, coder)


def test_batch_and_image_normalisation_against_a_hand_computation():
    one_hot = [[[0, 1], [0, 0], None], [[1, 0], [0, 1], [0, 0]]]  # None: ignored anchor

    def focal_sum(image: int, alpha: float = 0.25, gamma: float = 2.0) -> float:
        valid = [(xs, ys) for xs, ys in zip(LOGITS[image], one_hot[image]) if ys is not None]
        return sum(_focal(x, y, alpha, gamma) for xs, ys in valid for x, y in zip(xs, ys))

    cls_sums = [focal_sum(0), focal_sum(1)]
    # L1 on deltas: image 0's gt is its anchor shifted by 0.2 widths in x (prediction 0); image 1's
    # gts equal their anchors, so the predictions 0.1 and -0.2 are the errors.
    box_sums, positives = [0.2, 0.1 + 0.2], [1, 2]

    batch = _tiny_loss(RetinaNetLoss(normalize="batch"))
    assert batch["classification"].item() == pytest.approx(sum(cls_sums) / 3, rel=1e-6)
    assert batch["bbox_regression"].item() == pytest.approx(sum(box_sums) / sum(positives), rel=1e-6)

    image = _tiny_loss(RetinaNetLoss(normalize="image"))
    per_image = [c / n for c, n in zip(cls_sums, positives)]
    assert image["classification"].item() == pytest.approx(sum(per_image) / 2, rel=1e-6)
    assert image["bbox_regression"].item() == pytest.approx(
        sum(b / n for b, n in zip(box_sums, positives)) / 2, rel=1e-6)

    smooth = _tiny_loss(RetinaNetLoss(box_loss="smooth_l1"))  # beta 1: 0.5 d^2 for |d| < 1
    assert smooth["bbox_regression"].item() == pytest.approx((0.02 + 0.005 + 0.02) / 3, rel=1e-5)
    alpha_half = _tiny_loss(RetinaNetLoss(alpha=0.5, gamma=0.0))  # plain BCE / 2
    bce = focal_sum(0, 0.5, 0.0) + focal_sum(1, 0.5, 0.0)
    assert alpha_half["classification"].item() == pytest.approx(bce / 3, rel=1e-6)
    assert torch.isfinite(_tiny_loss(RetinaNetLoss(box_loss="giou"))["bbox_regression"])


def test_image_normalisation_equals_torchvision_and_batch_differs_on_a_real_batch():
    detector = _tiny_detector().train()
    torch.manual_seed(4)
    images, targets = [torch.rand(3, 100, 150), torch.rand(3, 90, 110)], _targets()
    batch, targets_resized = detector.transform(images, targets)
    features = detector.features(batch.tensors)
    head_outputs = detector.head(features)
    anchors = detector.anchor_generator(batch, features)

    torchvision_losses = RetinaNet.compute_loss(detector, targets_resized, head_outputs, anchors)
    detector.loss = RetinaNetLoss(normalize="image")
    ours = detector.compute_loss(targets_resized, head_outputs, anchors)
    for key in ("classification", "bbox_regression"):
        assert torch.allclose(ours[key], torchvision_losses[key], rtol=1e-5)
    detector.loss = RetinaNetLoss(normalize="batch")
    batch_losses = detector.compute_loss(targets_resized, head_outputs, anchors)
    assert not torch.allclose(batch_losses["classification"], ours["classification"])


def test_loss_and_detector_reject_bad_values():
    with pytest.raises(ZoolabError, match="loss.box_loss"):
        RetinaNetLoss(box_loss="iou")
    with pytest.raises(ZoolabError, match=r"loss.normalize.*\['batch', 'image'\]"):
        RetinaNetLoss(normalize="anchors")
    with pytest.raises(ZoolabError, match="loss.alpha"):
        RetinaNetLoss(alpha=1.5)
    with pytest.raises(ZoolabError, match="3 feature levels"):
        RetinaNetDetector(TimmFeatures("test_convnext", out_indices=[0, 1, 2, 3]), num_classes=3)
    detector = _tiny_detector().train()
    with pytest.raises(ZoolabError, match="needs targets"):
        detector([torch.rand(3, 32, 32)])
    degenerate = [{"boxes": torch.tensor([[10.0, 10.0, 10.0, 20.0]]), "labels": torch.tensor([0])}]
    with pytest.raises(ZoolabError, match="image 0 has a box with no width"):
        detector([torch.rand(3, 32, 32)], degenerate)


# --- config files ---------------------------------------------------------------------------------------


def test_config_files_build_the_components_with_their_documented_defaults():
    backbone_cfg = OmegaConf.load(CONF / "backbone" / "convnext_small_dinov3.yaml")
    assert backbone_cfg.name == "convnext_small.dinov3_lvd1689m" and backbone_cfg.pretrained is True
    in12k = OmegaConf.load(CONF / "backbone" / "convnext_small_in12k.yaml")
    assert in12k.name == "convnext_small.in12k_ft_in1k"
    backbone = instantiate(backbone_cfg, name="test_convnext", pretrained=False)
    assert backbone.out_indices == [1, 2, 3]

    adapter = instantiate(OmegaConf.load(CONF / "adapter" / "lora.yaml"))
    assert (adapter.r, adapter.alpha, adapter.dropout, adapter.targets, adapter.unfreeze, adapter.lr) == (
        8, 16.0, 0.0, ["fc2"], [], None,
    )
    loss = instantiate(OmegaConf.load(CONF / "loss" / "retinanet_focal.yaml"))
    assert (loss.alpha, loss.gamma, loss.box_loss, loss.normalize) == (0.25, 2.0, "l1", "batch")

    head = instantiate(OmegaConf.load(CONF / "head" / "retinanet.yaml"))
    detector = head(backbone=adapter.apply(backbone), num_classes=6, loss=loss)
    assert detector.image_size == [800, 800] and detector.loss is loss
    assert (detector.score_thresh, detector.nms_thresh) == (0.05, 0.5)
    assert (detector.detections_per_img, detector.topk_candidates) == (100, 1000)
