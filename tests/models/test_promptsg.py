"""Tests for zoolab.models.promptsg (paper and clipfh modes) and zoolab.heads.bnneck, on a tiny CLIP."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from zoolab.backbones.open_clip_backbone import OpenClipBackbone
from zoolab.errors import ZoolabError
from zoolab.heads.arcface import ArcFaceClassifier
from zoolab.heads.bnneck import BNNeckHead
from zoolab.losses.reid import ReidLoss
from zoolab.models.promptsg import PromptSG

TINY_VIT = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "width": 64, "layers": 2, "head_width": 32,
                                            "patch_size": 16},
            "text_cfg": {"width": 64, "layers": 2, "heads": 2}}
LABELS = torch.tensor([0, 0, 1, 1, 2, 2])


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def backbone() -> OpenClipBackbone:
    torch.manual_seed(0)
    return OpenClipBackbone("ViT-B-16", image_size=[32, 32], model_cfg=TINY_VIT)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255


def make(mode: str, **kwargs) -> PromptSG:
    torch.manual_seed(1)
    layers = {"self_layers": 3} if mode == "clipfh" else {}
    return PromptSG(embed_dim=32, token_dim=64, mode=mode, inversion_hidden=32, num_heads=4,
                    **(layers | kwargs))


def reid_step(model, backbone, images, loss=None):
    """One re-ID forward/backward with ID (ArcFace BNNeck) + triplet only: no SupCon term."""
    torch.manual_seed(2)
    head = BNNeckHead(32, 3, reduction_dim=16)
    loss = loss or ReidLoss(id_weight=1.0, triplet_weight=1.0, supcon_weight=0.0)
    backbone.zero_grad(set_to_none=True)
    model.zero_grad(set_to_none=True)
    outputs = model(backbone, images, training=True)
    total, parts = loss(outputs, head(outputs["feature"], LABELS), LABELS, 1.0)
    total.backward()
    return outputs, parts


def perturb_pseudo_tokens(model) -> None:
    """Change every pseudo-token by a random direction. (A constant shift would not do: the text
    transformer's LayerNorms make the EOT feature invariant to adding c * 1 to one token.)"""
    last = model.inversion[-2]
    last.weight += 0.5 * torch.randn(last.weight.shape, generator=torch.Generator().manual_seed(3))


def grad_norms(module) -> list[float]:
    return [0.0 if p.grad is None else float(p.grad.abs().sum()) for p in module.parameters()]


# -------------------------------------------------------------------------------------------- paper
def test_paper_output_dict(backbone, images):
    model = make("paper").eval()
    with torch.no_grad():
        out = model(backbone, images, training=True)
    assert out["feature"].shape == (6, 32) and out["image_feature"].shape == (6, 32)
    assert out["text_feature"].shape == (6, 32) and out["pseudo_token"].shape == (6, 64)


def test_paper_prompt_path_is_alive_in_the_forward(backbone, images):
    model = make("paper").eval()
    with torch.no_grad():
        base = model(backbone, images, training=True)["feature"]
        model.template = "A captured frame showing a persons {} hand during surveillance."
        other_template = model(backbone, images, training=True)["feature"]
        model.template = "A photo of a {} person."
        perturb_pseudo_tokens(model)
        other_pseudo = model(backbone, images, training=True)["feature"]
    assert (base - other_template).abs().max() > 1e-3
    assert (base - other_pseudo).abs().max() > 1e-3


def test_paper_reid_loss_trains_inversion_and_text_side_modules(backbone, images):
    model = make("paper").train()
    reid_step(model, backbone, images)
    assert min(grad_norms(model.inversion)) > 0, "every inversion MLP parameter gets gradient from ID/triplet"
    assert min(grad_norms(model.cross)) > 0
    assert float(model.cross[0].attn.in_proj_weight.grad[:32].abs().sum()) > 0  # the query projection
    assert all(p.grad is None for p in backbone.text.parameters())
    assert sum(grad_norms(backbone.visual)) > 0


def test_paper_inference_uses_the_cached_simplified_prompt(backbone, images):
    model = make("paper").eval()
    with torch.no_grad():
        out = model(backbone, images, training=False)
        simplified = backbone.encode_text(["A photo of a person."])
        assert torch.allclose(out["text_feature"], simplified.expand(6, -1))
        first = model.cached_text_features(backbone, ("A photo of a person.",))
        assert model.cached_text_features(backbone, ("A photo of a person.",)) is first
        model.template = "A photo of a {} hand."  # the training prompt does not matter at inference
        assert torch.equal(model(backbone, images, training=False)["feature"], out["feature"])
        model.inference_template = "A photo of a hand."
        changed = model(backbone, images, training=False)
        assert torch.allclose(changed["text_feature"][0], backbone.encode_text(["A photo of a hand."])[0])
        assert (changed["feature"] - out["feature"]).abs().max() > 1e-3
        backbone.load_state_dict(backbone.state_dict())  # new weights: the cached feature is recomputed
        assert model.cached_text_features(backbone, ("A photo of a person.",)) is not first


def test_paper_without_inference_template_composes_at_inference_too(backbone, images):
    model = make("paper", inference_template=None).eval()
    with torch.no_grad():
        assert torch.equal(model(backbone, images, training=False)["feature"],
                           model(backbone, images, training=True)["feature"])


# ------------------------------------------------------------------------------------------- clipfh
def test_clipfh_dead_prompt_path_is_reproduced(backbone, images):
    model = make("clipfh").eval()
    with torch.no_grad():
        base = model(backbone, images, training=True)
        model.template = "A captured frame showing a persons {} hand during surveillance."
        other = model(backbone, images, training=True)
        perturb_pseudo_tokens(model)
        other_pseudo = model(backbone, images, training=True)
    assert (base["text_feature"] - other["text_feature"]).abs().max() > 1e-3  # the prompts differ ...
    assert (base["feature"] - other["feature"]).abs().max() == 0.0  # ... the feature does not
    assert (base["feature"] - other_pseudo["feature"]).abs().max() == 0.0
    assert torch.allclose(base["feature"].norm(dim=1), torch.ones(6), atol=1e-5)


def test_clipfh_inversion_gets_exactly_zero_gradient_from_id_and_triplet(backbone, images):
    model = make("clipfh").train()
    outputs, _ = reid_step(model, backbone, images)
    assert max(grad_norms(model.inversion)) == 0.0
    assert sum(grad_norms(model.blocks)) > 0 and sum(grad_norms(backbone.visual)) > 0
    # the SupCon term (weight 0 in every logged CLIP-FH run) is the only one that could reach it
    supcon = ReidLoss(id_weight=0.0, triplet_weight=0.0, supcon_weight=1.0)
    reid_step(model, backbone, images, loss=supcon)
    assert sum(grad_norms(model.inversion)) > 0


def test_clipfh_feature_is_out_proj_of_v_proj_of_the_global_token(backbone, images):
    model = make("clipfh").eval()
    with torch.no_grad():
        out = model(backbone, images, training=True)
        attn = model.cross_attention
        w_v, b_v = attn.in_proj_weight[64:], attn.in_proj_bias[64:]
        x = attn.out_proj(F.linear(out["image_feature"], w_v, b_v))[:, None].expand(-1, 3, -1)
        for block in model.blocks:
            x = block(x)
        expected = F.normalize(x.mean(dim=1), dim=1)
    assert torch.allclose(out["feature"], expected, atol=1e-5)


def test_invalid_promptsg_settings_are_clear_errors():
    with pytest.raises(ZoolabError, match="mode"):
        PromptSG(32, 64, mode="both")
    with pytest.raises(ZoolabError, match="exactly one"):
        PromptSG(32, 64, template="A photo of a person.")
    with pytest.raises(ZoolabError, match="clipfh"):
        PromptSG(32, 64, mode="clipfh", cross_layers=2, num_heads=4)
    with pytest.raises(ZoolabError, match="divisible"):
        PromptSG(32, 64, num_heads=5)


# ------------------------------------------------------------------------------------------- BNNeck
def test_bnneck_frozen_bias_and_linear_classifier_init():
    torch.manual_seed(0)
    head = BNNeckHead(512, 1000, reduction_dim=None, classifier="linear")
    assert isinstance(head.reduction, torch.nn.Identity) and head.bn.num_features == 512
    assert not head.bn.bias.requires_grad and head.bn.weight.requires_grad
    assert head.classifier.bias is None
    assert 0.00095 < float(head.classifier.weight.detach().std()) < 0.00105
    features = torch.randn(4, 512)
    assert torch.allclose(head(features), head.neck_feature(features) @ head.classifier.weight.T)


def test_bnneck_arcface_logits_match_the_arcface_classifier():
    torch.manual_seed(0)
    head = BNNeckHead(32, 5, reduction_dim=16, s=20.0, m=0.3)
    assert isinstance(head.classifier, ArcFaceClassifier)
    assert (head.classifier.s, head.classifier.m) == (20.0, 0.3)
    features, labels = torch.randn(6, 32), torch.tensor([0, 1, 2, 3, 4, 0])
    neck = head.neck_feature(features)
    assert neck.shape == (6, 16)
    assert torch.allclose(head(features, labels), head.classifier(neck, labels))
    assert torch.allclose(head(features), 20.0 * head.classifier.cosine(neck))
    with pytest.raises(ZoolabError, match="classifier"):
        BNNeckHead(32, 5, classifier="cosface")


def test_bnneck_train_neck_false_freezes_reduction_and_bn_but_bn_stats_update():
    torch.manual_seed(0)
    head = BNNeckHead(32, 5, reduction_dim=16, train_neck=False).train()
    frozen = list(head.reduction.parameters()) + list(head.bn.parameters())
    assert frozen and not any(p.requires_grad for p in frozen)
    assert all(p.requires_grad for p in head.classifier.parameters())
    before = head.bn.running_mean.clone()
    head(torch.randn(8, 32) + 3.0, torch.arange(8) % 5).sum().backward()
    assert not torch.equal(head.bn.running_mean, before)
    assert all(p.grad is None for p in frozen)
