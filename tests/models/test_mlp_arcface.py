"""Tests for zoolab.heads.mlp (MLPHead, manifold-mixup hooks) and zoolab.heads.arcface."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

from zoolab.heads.arcface import ArcFaceClassifier
from zoolab.heads.mlp import MLPHead


def _x(batch: int = 4, dim: int = 16) -> torch.Tensor:
    return torch.randn(batch, dim, generator=torch.Generator().manual_seed(0))


def test_mlp_head_shapes_and_num_features() -> None:
    head = MLPHead(16, 5)
    x = _x()
    assert head(x).shape == (4, 5)
    assert head.features(x).shape == (4, 512)
    assert head.num_features == 512
    assert [tuple(h.shape) for h in head.hidden_states(x)] == [(4, 16), (4, 1024), (4, 512)]
    assert isinstance(head.classifier, nn.Linear) and head.classifier.in_features == 512


@pytest.mark.parametrize("hidden", [(32, 8), (8,), ()])
def test_forward_from_every_layer_matches_forward(hidden: tuple[int, ...]) -> None:
    head = MLPHead(16, 3, hidden=list(hidden), norm="layernorm", dropout=0.5).eval()
    x = _x()
    states = head.hidden_states(x)
    assert len(states) == len(hidden) + 1 and states[0] is x
    torch.testing.assert_close(states[-1], head.features(x))
    for k, h in enumerate(states):
        torch.testing.assert_close(head.forward_from(h, k), head(x))
    with pytest.raises(ValueError, match="layer"):
        head.forward_from(x, len(hidden) + 1)


def test_gelu_layernorm_dropout_blocks_in_order() -> None:
    head = MLPHead(16, 3, hidden=[8, 4], activation="gelu", norm="layernorm", dropout=0.1)
    for block, width in zip(head.blocks, [8, 4]):
        assert [type(m) for m in block] == [nn.Linear, nn.LayerNorm, nn.GELU, nn.Dropout]
        assert block.norm.normalized_shape == (width,)
    plain = MLPHead(16, 3, hidden=[8])
    assert [type(m) for m in plain.blocks[0]] == [nn.Linear, nn.ReLU]


def test_empty_hidden_is_a_linear_classifier() -> None:
    head = MLPHead(16, 3, hidden=[])
    x = _x()
    assert head.num_features == 16 and len(head.blocks) == 0
    assert sum(p.numel() for p in head.parameters()) == 16 * 3 + 3
    torch.testing.assert_close(head(x), x @ head.classifier.weight.T + head.classifier.bias)
    assert head.features(x) is x


def test_bad_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="activation"):
        MLPHead(4, 2, activation="tanh")
    with pytest.raises(ValueError, match="norm"):
        MLPHead(4, 2, norm="batchnorm")


def _arcface_2d(s: float = 10.0, m: float = 0.5) -> ArcFaceClassifier:
    arc = ArcFaceClassifier(2, 2, s=s, m=m)
    with torch.no_grad():
        arc.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 0.5]]))  # normalised inside to e_x, e_y
    return arc


def test_arcface_target_logit_has_angular_margin() -> None:
    theta = math.radians(30)
    features = 3.0 * torch.tensor([[math.cos(theta), math.sin(theta)]])
    logits = _arcface_2d()(features, torch.tensor([0]))
    expected = torch.tensor([[10.0 * math.cos(theta + 0.5), 10.0 * math.cos(math.radians(60))]])
    torch.testing.assert_close(logits, expected)


def test_arcface_inference_logits_are_scaled_cosines() -> None:
    theta = math.radians(30)
    features = torch.tensor([[math.cos(theta), math.sin(theta)]])
    expected = torch.tensor([[10.0 * math.cos(theta), 10.0 * math.sin(theta)]])
    torch.testing.assert_close(_arcface_2d()(features), expected)


def test_arcface_guard_when_theta_plus_margin_passes_pi() -> None:
    theta = math.radians(170)  # cos(170 deg) = -0.985 <= cos(pi - 0.5) = -0.878
    features = torch.tensor([[math.cos(theta), math.sin(theta)]])
    logits = _arcface_2d()(features, torch.tensor([0]))
    guarded = 10.0 * (math.cos(theta) - 0.5 * math.sin(math.pi - 0.5))
    assert logits[0, 0].item() == pytest.approx(guarded, rel=1e-5)
    assert logits[0, 0].item() != pytest.approx(10.0 * math.cos(theta + 0.5), rel=1e-2)


def test_arcface_weights_are_xavier_uniform() -> None:
    torch.manual_seed(0)
    arc = ArcFaceClassifier(256, 64)
    bound = math.sqrt(6.0 / (256 + 64))
    assert arc.weight.abs().max() <= bound and arc.weight.abs().max() > 0.9 * bound


def test_mlp_head_passes_labels_only_to_margin_classifiers() -> None:
    x, labels = _x(), torch.tensor([0, 1, 2, 1])
    head = MLPHead(16, 3, hidden=[8], classifier=functools.partial(ArcFaceClassifier, s=16.0)).eval()
    assert isinstance(head.classifier, ArcFaceClassifier) and head.classifier.s == 16.0
    h = head.features(x)
    torch.testing.assert_close(head(x, labels), head.classifier(h, labels))
    torch.testing.assert_close(head(x), 16.0 * head.classifier.cosine(h))
    assert not torch.allclose(head(x, labels), head(x))
    torch.testing.assert_close(head.forward_from(x, 0, labels=labels), head(x, labels))

    linear = MLPHead(16, 3, hidden=[8]).eval()
    torch.testing.assert_close(linear(x, labels), linear(x))  # nn.Linear never sees labels
