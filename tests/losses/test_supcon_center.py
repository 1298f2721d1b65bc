"""Tests for zoolab.losses.supcon and zoolab.losses.center against hand-written formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoolab.losses.center import CenterLoss
from zoolab.losses.supcon import SupConLoss


def _supcon_numpy(features: np.ndarray, labels: np.ndarray, temperature: float, base: float,
                  class_weights: np.ndarray | None = None) -> float:
    """Mean over anchors with positives of -(t/base)/|P(i)| sum_p log(exp(s_ip) / sum_{a!=i} exp(s_ia)),
    weighted by the anchor's class weight when ``class_weights`` is given."""
    z = features / np.linalg.norm(features, axis=1, keepdims=True)
    n = len(labels)
    per_anchor, weights = [], []
    for i in range(n):
        positives = [p for p in range(n) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        weights.append(1.0 if class_weights is None else class_weights[labels[i]])
        denominator = sum(np.exp(z[i] @ z[a] / temperature) for a in range(n) if a != i)
        log_probs = [np.log(np.exp(z[i] @ z[p] / temperature) / denominator) for p in positives]
        per_anchor.append(-(temperature / base) * np.mean(log_probs))
    return float(np.average(per_anchor, weights=weights))


FEATURES = np.array([[2.0, 0.0], [0.6, 0.8], [0.0, 3.0], [-0.8, 0.6]])


def test_supcon_matches_hand_formula_on_four_samples() -> None:
    labels = np.array([0, 0, 1, 1])
    loss = SupConLoss(temperature=0.5, base_temperature=1.0)(torch.tensor(FEATURES), torch.tensor(labels))
    assert loss.item() == pytest.approx(_supcon_numpy(FEATURES, labels, 0.5, 1.0), rel=1e-10)


def test_class_weighted_supcon_matches_hand_formula() -> None:
    features = np.array([[2.0, 0.0], [0.6, 0.8], [0.0, 3.0], [-0.8, 0.6], [0.3, -0.9], [1.0, 1.0]])
    labels = np.array([0, 0, 0, 1, 1, 2])  # class 2 has no positive: left out of both sums
    weights = np.array([0.5, 2.0, 7.0])
    loss = SupConLoss(temperature=0.5)(torch.tensor(features), torch.tensor(labels), torch.tensor(weights))
    assert loss.item() == pytest.approx(_supcon_numpy(features, labels, 0.5, 0.07, weights), rel=1e-10)
    assert loss.item() != pytest.approx(_supcon_numpy(features, labels, 0.5, 0.07), rel=1e-3)


def test_supcon_default_temperatures_and_scale() -> None:
    labels = np.array([0, 1, 0, 1])
    loss = SupConLoss()(torch.tensor(FEATURES), torch.tensor(labels))
    assert loss.item() == pytest.approx(_supcon_numpy(FEATURES, labels, 0.07, 0.07), rel=1e-10)
    scaled = SupConLoss(temperature=0.07, base_temperature=0.14)(torch.tensor(FEATURES), torch.tensor(labels))
    assert scaled.item() == pytest.approx(loss.item() / 2, rel=1e-10)


def test_supcon_leaves_anchors_without_positive_out() -> None:
    features = torch.tensor(FEATURES[:3], requires_grad=True)
    labels = np.array([0, 0, 1])  # class 1 has a single sample
    loss = SupConLoss(temperature=0.5)(features, torch.tensor(labels))
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(_supcon_numpy(FEATURES[:3], labels, 0.5, 0.07), rel=1e-10)
    loss.backward()
    assert torch.isfinite(features.grad).all()


def test_supcon_without_any_positive_is_zero_with_grad() -> None:
    features = torch.tensor(FEATURES, requires_grad=True)
    loss = SupConLoss()(features, torch.tensor([0, 1, 2, 3]))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(features.grad, torch.zeros_like(features))


def test_center_loss_hand_example() -> None:
    loss_fn = CenterLoss(num_classes=2, feat_dim=2)
    assert isinstance(loss_fn.centers, torch.nn.Parameter) and loss_fn.centers.shape == (2, 2)
    with torch.no_grad():
        loss_fn.centers.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    features = torch.tensor([[1.0, 0.0], [1.0, 3.0], [0.0, 2.0]])
    loss = loss_fn(features, torch.tensor([0, 1, 1]))
    assert loss.item() == pytest.approx((1.0 + 4.0 + 2.0) / 3)  # no 1/2 factor
    loss.backward()
    # d/dc_k = -(2/B) sum_{i: y_i = k} (x_i - c_k)
    torch.testing.assert_close(loss_fn.centers.grad, torch.tensor([[-2 / 3, 0.0], [2 / 3, -2.0]]))


def test_center_loss_rejects_wrong_feature_width() -> None:
    with pytest.raises(ValueError, match="features"):
        CenterLoss(3, 4)(torch.zeros(2, 5), torch.tensor([0, 1]))
