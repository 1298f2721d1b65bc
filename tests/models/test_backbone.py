"""Tests for zoolab.backbones.timm_backbone: normalisation, feature width, names and local weights."""

from __future__ import annotations

import pytest
import timm
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from zoolab.backbones.timm_backbone import TimmBackbone, resolve_local_weights
from zoolab.config import CONF_DIR
from zoolab.errors import ZoolabError


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face hub cache: HF_HUB_CACHE is read when huggingface_hub is imported, so the
    module constant is patched too (try_to_load_from_cache reads ``constants.HF_HUB_CACHE`` per call)."""
    import huggingface_hub.constants

    cache = tmp_path / "hf-home" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(cache.parent))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def donor_state() -> dict[str, torch.Tensor]:
    """State dict of a randomly initialised resnet18 (with its 1000-class fc), distinct from a fresh init."""
    torch.manual_seed(1234)
    return {k: v.clone() for k, v in timm.create_model("resnet18", pretrained=False).state_dict().items()}


@pytest.mark.parametrize("name", ["resnet18", "vit_tiny_patch16_224.augreg_in21k_ft_in1k"])
def test_normalize_true_maps_0_255_with_the_models_own_mean_std(name):
    backbone = TimmBackbone(name, pretrained=False, normalize=True)
    data_cfg = timm.data.resolve_model_data_config(backbone.model)
    mean = torch.tensor(data_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(data_cfg["std"]).view(1, 3, 1, 1)
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    expected = (x.float() / 255.0 - mean) / std
    torch.testing.assert_close(backbone.preprocess(x), expected, rtol=1e-5, atol=1e-5)
    if name.startswith("vit_tiny"):  # a model whose weights are not ImageNet-normalised: 0 -> -1, 255 -> 1
        torch.testing.assert_close(backbone.preprocess(torch.tensor([0.0, 255.0]).view(2, 1, 1, 1).expand(2, 3, 1, 1)),
                                   torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1).expand(2, 3, 1, 1))


def test_normalize_false_passes_input_through_and_forward_uses_it():
    backbone = TimmBackbone("resnet18", pretrained=False, normalize=False).eval()
    x = torch.rand(2, 3, 32, 32) * 255
    assert torch.equal(backbone.preprocess(x), x)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), backbone.model(x))
    normalised = TimmBackbone("resnet18", pretrained=False, normalize=True).eval()
    normalised.load_state_dict(backbone.state_dict())
    with torch.no_grad():
        assert not torch.allclose(normalised(x), backbone(x))


def test_resnet18_has_512_features_and_no_classifier():
    backbone = TimmBackbone("resnet18", pretrained=False).eval()
    assert backbone.num_features == 512
    with torch.no_grad():
        assert backbone.forward_features(torch.rand(3, 3, 32, 32) * 255).shape == (3, 512)


def test_unknown_name_names_the_key_and_suggests_the_close_match():
    with pytest.raises(ZoolabError) as info:
        TimmBackbone("resnet5O", pretrained=False)
    assert info.value.where == "backbone.name"
    assert "resnet5O" in str(info.value)
    assert "resnet50" in info.value.fix


def test_missing_weights_file_raises_naming_backbone_weights(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(ZoolabError) as info:
        TimmBackbone("resnet18", pretrained=True, weights=str(missing))
    assert "backbone.weights" in str(info.value)
    assert str(missing) in str(info.value)


@pytest.mark.parametrize("keep_fc", [True, False], ids=["with-fc", "fc-removed"])
@pytest.mark.parametrize("name", ["resnet18", "resnet18.tv_in1k"])
def test_local_safetensors_weights_are_loaded_exactly(tmp_path, donor_state, keep_fc, name):
    state = donor_state if keep_fc else {k: v for k, v in donor_state.items() if not k.startswith("fc.")}
    weights = tmp_path / "r18.safetensors"
    save_file(state, str(weights))
    torch.manual_seed(0)
    backbone = TimmBackbone(name, pretrained=True, weights=str(weights))
    assert torch.equal(backbone.model.conv1.weight, donor_state["conv1.weight"])
    assert torch.equal(backbone.model.layer4[1].conv2.weight, donor_state["layer4.1.conv2.weight"])
    assert torch.equal(backbone.model.layer3[0].bn1.running_var, donor_state["layer3.0.bn1.running_var"])
    assert backbone.num_features == 512
    # the control: a fresh random init does not happen to match
    torch.manual_seed(0)
    assert not torch.equal(TimmBackbone(name).model.conv1.weight, donor_state["conv1.weight"])


@pytest.mark.parametrize("name", ["resnet18.tv_in1k", "resnet18"])
def test_pretrained_without_weights_or_cache_says_not_on_this_machine(empty_hf_cache, name):
    with pytest.raises(ZoolabError) as info:
        TimmBackbone(name, pretrained=True)
    message = str(info.value)
    assert "not on this machine" in message
    assert "backbone.weights" in message
    assert "never downloads" in message


def test_pretrained_without_weights_uses_the_local_hub_cache(empty_hf_cache, donor_state):
    """A file already in the HF hub cache layout is found without any network access."""
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = empty_hf_cache / "models--timm--resnet18.tv_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    snapshot = repo / "snapshots" / sha
    snapshot.mkdir(parents=True)
    save_file(donor_state, str(snapshot / "model.safetensors"))
    assert resolve_local_weights("resnet18.tv_in1k", None) == str(snapshot / "model.safetensors")
    backbone = TimmBackbone("resnet18.tv_in1k", pretrained=True)
    assert torch.equal(backbone.model.conv1.weight, donor_state["conv1.weight"])


@pytest.fixture(scope="module")
def dinov2() -> TimmBackbone:
    """The conf/backbone/dinov2_vits14.yaml backbone, random init."""
    cfg = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "backbone" / "dinov2_vits14.yaml"))
    assert cfg["name"] == "vit_small_patch14_dinov2.lvd142m" and cfg["global_pool"] == "token"
    return TimmBackbone(cfg["name"], pretrained=False, global_pool=cfg["global_pool"],
                        model_kwargs=cfg["model_kwargs"]).eval()


def test_dinov2_vits14_config_gives_384_features_at_224(dinov2):
    assert dinov2.num_features == 384
    with torch.no_grad():
        assert dinov2(torch.rand(1, 3, 224, 224) * 255).shape == (1, 384)


def test_dinov2_vits14_config_accepts_64_px_smoke_inputs(dinov2):
    with torch.no_grad():
        assert dinov2(torch.rand(2, 3, 64, 64) * 255).shape == (2, 384)


@pytest.mark.parametrize("name", ["mobilenetv3_large_100", "efficientnet_b0", "convnextv2_tiny"])
def test_num_features_is_the_pooled_output_width(name):
    backbone = TimmBackbone(name, input_size=32).eval()
    assert backbone(torch.rand(2, 3, 32, 32) * 255).shape == (2, backbone.num_features)
