"""Tests for the re-ID losses: batch-hard triplet, symmetric image-text SupCon and the combined ReidLoss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoolab.errors import ZoolabError
from zoolab.losses.image_text import SymmetricSupConLoss
from zoolab.losses.reid import ReidLoss
from zoolab.losses.triplet import BatchHardTripletLoss, pairwise_euclidean

# Four points in the plane: d01 = 1, d02 = 3, d03 = 2, d12 = 2, d13 = sqrt(5), d23 = sqrt(13).
POINTS = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# ------------------------------------------------------------------------------------------ triplet
def test_pairwise_euclidean_known_distances():
    dist = pairwise_euclidean(POINTS)
    expected = torch.tensor([[0, 1, 3, 2], [1, 0, 2, math.sqrt(5)], [3, 2, 0, math.sqrt(13)],
                             [2, math.sqrt(5), math.sqrt(13), 0]])
    assert torch.allclose(dist, expected, atol=1e-5)
    assert torch.equal(dist.diagonal(), torch.zeros(4))


def test_batch_hard_triplet_hand_computed():
    labels = torch.tensor([0, 0, 1, 1])
    # anchors 0, 1: d_ap = 1, d_an = 2 -> relu(1 - 2 + 0.3) = 0; anchors 2, 3: d_ap = sqrt(13), d_an = 2.
    expected = 2 * (math.sqrt(13) - 2 + 0.3) / 4
    assert math.isclose(float(BatchHardTripletLoss(margin=0.3)(POINTS, labels)), expected, rel_tol=1e-5)
    soft = (2 * softplus(1 - 2) + 2 * softplus(math.sqrt(13) - 2)) / 4
    assert math.isclose(float(BatchHardTripletLoss(margin=None)(POINTS, labels)), soft, rel_tol=1e-5)


def test_batch_hard_triplet_exclude_self_and_the_clipfh_quirk():
    labels = torch.tensor([0, 0, 1, 2])  # anchors 2 and 3 have no other sample of their identity
    # exclude_self: only anchors 0 and 1 count: relu(1 - 2 + 1.5) = 0.5 each.
    assert math.isclose(float(BatchHardTripletLoss(margin=1.5)(POINTS, labels)), 0.5, rel_tol=1e-5)
    # quirk #13: anchors 2 and 3 count with d_ap = 0 (relu(0 - 2 + 1.5) = 0), diluting the mean.
    quirk = BatchHardTripletLoss(margin=1.5, exclude_self=False)
    assert math.isclose(float(quirk(POINTS, labels)), (0.5 + 0.5 + 0 + 0) / 4, rel_tol=1e-5)
    points = POINTS.clone().requires_grad_(True)
    quirk(points, labels).backward()
    assert torch.isfinite(points.grad).all()


def test_batch_hard_triplet_without_valid_anchor_is_zero_in_graph():
    points = POINTS.clone().requires_grad_(True)
    loss = BatchHardTripletLoss()(points, torch.tensor([0, 1, 2, 3]))
    assert loss.item() == 0.0 and loss.requires_grad


# ------------------------------------------------------------------------------------------- SupCon
def test_symmetric_supcon_hand_computed_2x2():
    image = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    text = torch.tensor([[2.0, 0.0], [2.0, 2.0]])  # normalised inside
    c = 1 / math.sqrt(2)  # logits [[1, c], [0, c]]
    i2t = -((1 - math.log(math.e + math.exp(c))) + (c - math.log(1 + math.exp(c)))) / 2
    t2i = -((1 - math.log(math.e + 1)) + (c - math.log(2 * math.exp(c)))) / 2
    loss = SymmetricSupConLoss(temperature=1.0)(image, text, torch.tensor([0, 1]))
    assert math.isclose(float(loss), (i2t + t2i) / 2, rel_tol=1e-5)


def test_symmetric_supcon_same_label_averages_over_all_positives():
    image = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    text = torch.tensor([[2.0, 0.0], [2.0, 2.0]])
    t, c = 0.5, 1 / math.sqrt(2)
    logits = [[1 / t, c / t], [0.0, c / t]]

    def mean_log_prob(row):
        lse = math.log(sum(math.exp(v) for v in row))
        return sum(v - lse for v in row) / len(row)

    i2t = -(mean_log_prob(logits[0]) + mean_log_prob(logits[1])) / 2
    cols = [[logits[0][0], logits[1][0]], [logits[0][1], logits[1][1]]]
    t2i = -(mean_log_prob(cols[0]) + mean_log_prob(cols[1])) / 2
    loss = SymmetricSupConLoss(temperature=t)(image, text, torch.tensor([3, 3]))
    assert math.isclose(float(loss), (i2t + t2i) / 2, rel_tol=1e-5)


# ---------------------------------------------------------------------------------------- ReidLoss
@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    outputs = {"feature": torch.randn(8, 6, generator=g), "image_feature": torch.randn(8, 6, generator=g),
               "text_feature": torch.randn(8, 6, generator=g), "pseudo_token": None}
    return outputs, torch.randn(8, 4, generator=g), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])


def test_reid_loss_weighted_sum_and_parts(batch):
    outputs, logits, labels = batch
    loss = ReidLoss(id_weight=0.2, label_smoothing=0.1, triplet_weight=1.0, supcon_weight=0.5)
    total, parts = loss(outputs, logits, labels, 1.0)
    assert set(parts) == {"loss/id", "loss/triplet", "loss/supcon"}
    ce = F.cross_entropy(logits, labels, label_smoothing=0.1)
    tri = BatchHardTripletLoss(0.3)(outputs["feature"], labels)
    sc = SymmetricSupConLoss(1.0)(outputs["image_feature"], outputs["text_feature"], labels)
    assert torch.allclose(parts["loss/id"], ce) and torch.allclose(parts["loss/triplet"], tri)
    assert torch.allclose(total, 0.2 * ce + tri + 0.5 * sc)


def test_reid_loss_supcon_ramp_follows_epoch_fraction(batch):
    outputs, logits, labels = batch
    loss = ReidLoss(id_weight=1.0, triplet_weight=0.0, supcon_weight=0.5, supcon_ramp=True)
    total, parts = loss(outputs, logits, labels, 0.25)
    assert torch.allclose(total, parts["loss/id"] + 0.5 * 0.25 * parts["loss/supcon"])
    total0, _ = loss(outputs, logits, labels, 0.0)
    assert torch.allclose(total0, parts["loss/id"])


def test_reid_loss_center_needs_bind(batch):
    outputs, logits, labels = batch
    loss = ReidLoss(center_weight=3e-4)
    with pytest.raises(ZoolabError, match="bind"):
        loss(outputs, logits, labels, 1.0)
    loss.bind(num_classes=4, feat_dim=6)
    total, parts = loss(outputs, logits, labels, 1.0)
    center = (outputs["feature"] - loss.center.centers[labels]).pow(2).sum(dim=1).mean()
    assert torch.allclose(parts["loss/center"], center)
    assert torch.allclose(total, parts["loss/id"] + parts["loss/triplet"] + 3e-4 * center)
    assert ReidLoss().bind(4, 6).center is None


def test_reid_loss_auto_balance_uses_learned_log_variances(batch):
    outputs, logits, labels = batch
    loss = ReidLoss(id_weight=1.0, triplet_weight=2.0, auto_balance=True)
    assert loss.log_vars.shape == (2,) and loss.log_vars.requires_grad
    total, parts = loss(outputs, logits, labels, 1.0)
    assert torch.allclose(total, parts["loss/id"] + 2.0 * parts["loss/triplet"])  # s = 0 at the start
    with torch.no_grad():
        loss.log_vars.copy_(torch.tensor([math.log(2.0), 0.0]))
    total, parts = loss(outputs, logits, labels, 1.0)
    expected = parts["loss/id"] / 2 + math.log(2.0) + 2.0 * parts["loss/triplet"]
    assert torch.allclose(total, expected)
    total.backward()
    assert loss.log_vars.grad is not None and float(loss.log_vars.grad.abs().sum()) > 0


def test_reid_loss_bad_settings_are_clear_errors(batch):
    outputs, logits, labels = batch
    with pytest.raises(ZoolabError):
        ReidLoss(id_weight=0.0, triplet_weight=0.0)
    with pytest.raises(ZoolabError):
        ReidLoss(triplet_weight=-1.0)
    with pytest.raises(ZoolabError, match="text feature"):
        ReidLoss(supcon_weight=0.5)(dict(outputs, text_feature=None), logits, labels, 1.0)
