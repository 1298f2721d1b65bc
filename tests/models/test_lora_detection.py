"""Tests for zoolab.backbones.timm_features and zoolab.adapters.lora.

Exact trainable counts come from the SAR zoo's ledger (docs/detection.md) and are checked on the real
ConvNeXt-S architecture built on the meta device (no memory, no forward). Behaviour is tested on timm's
tiny ``test_convnext`` (dims 24/32/48/64, depths 1/2/4/2, Linear fc1/fc2).
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from zoolab.adapters.lora import LoRA, load_lora_state_dict, lora_state_dict, merge_lora
from zoolab.backbones.timm_features import TimmFeatures
from zoolab.errors import ZoolabError
from zoolab.heads.retinanet import RetinaNetDetector, detection_parameter_counts

NECK_AND_HEAD = 4_474_880 + 4_928_090


def _convnext_small_meta() -> TimmFeatures:
    with torch.device("meta"):
        return TimmFeatures("convnext_small", pretrained=False)


def _tiny(**kwargs) -> TimmFeatures:
    torch.manual_seed(0)
    return TimmFeatures("test_convnext", pretrained=False, **kwargs)


def _trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _layer_scale_one(module: nn.Module) -> None:
    """Random ConvNeXt blocks scale their MLP branch by gamma=1e-6, which would hide any LoRA effect."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith(".gamma"):
                param.fill_(1.0)


def _randomise_lora_b(module: nn.Module, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if ".lora_B." in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.1)


# --- TimmFeatures -------------------------------------------------------------------------------------


def test_timm_features_levels_channels_and_normalisation():
    tiny = _tiny()
    assert tiny.out_channels == [32, 48, 64] and tiny.reductions == [8, 16, 32]
    assert tiny.mean == [0.5, 0.5, 0.5] and tiny.std == [0.5, 0.5, 0.5]  # test_convnext's pretrained cfg
    maps = tiny(torch.rand(2, 3, 64, 96))
    assert [tuple(m.shape) for m in maps] == [(2, 32, 8, 12), (2, 48, 4, 6), (2, 64, 2, 3)]
    small = _convnext_small_meta()
    assert small.out_channels == [192, 384, 768]
    assert small.mean == pytest.approx([0.485, 0.456, 0.406])
    assert small.std == pytest.approx([0.229, 0.224, 0.225])
    assert sum(p.numel() for p in small.parameters()) == 49_453_152
    assert "stages_2.blocks.13.mlp.fc2" in dict(small.model.named_modules())


def test_timm_features_loads_a_local_weights_file_into_the_feature_model(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(3)
    full = timm.create_model("test_convnext", pretrained=False)
    state = {k: v.contiguous() for k, v in full.state_dict().items()}
    path = tmp_path / "test_convnext.safetensors"
    save_file(state, str(path))

    loaded = TimmFeatures("test_convnext", pretrained=True, weights=str(path))
    assert torch.equal(loaded.model.stem_0.weight, state["stem.0.weight"])
    assert torch.equal(
        loaded.model.stages_2.blocks[3].mlp.fc2.weight, state["stages.2.blocks.3.mlp.fc2.weight"]
    )
    assert not torch.equal(_tiny().model.stem_0.weight, state["stem.0.weight"])  # random init differs


def test_timm_features_errors_name_the_key():
    with pytest.raises(ZoolabError, match="unknown timm model 'convnext_smal'.*close matches: convnext_sm"):
        TimmFeatures("convnext_smal")
    with pytest.raises(ZoolabError, match="backbone.weights"):
        TimmFeatures("test_convnext", pretrained=True, weights="/nonexistent/weights.safetensors")
    with pytest.raises(ZoolabError, match="backbone.out_indices"):
        TimmFeatures("test_convnext", out_indices=[1, 2, 7])


# --- exact counts of the ledger -----------------------------------------------------------------------

# (r, targets, unfreeze) -> (LoRA params, backbone trainable, detector trainable in M as in the ledger)
LEDGER = [
    (8, ["fc2"], [], 541_440, 541_440, "9.944"),  # E0013
    (16, ["fc2"], [], 1_082_880, 1_082_880, "10.486"),  # E0004
    (16, ["fc1", "fc2"], [], 2_165_760, 2_165_760, "11.569"),  # E0002
    (4, ["fc1", "fc2"], [], 541_440, 541_440, "9.944"),  # E0005
    (16, ["fc2"], ["stages_3"], 1_082_880, 9_473_280, "18.876"),  # E0016
    (8, ["fc2"], ["stages_3"], 541_440, 8_931_840, "18.335"),  # E0018
    (16, ["fc1", "fc2"], ["stages_3"], 2_165_760, 3_469_056, "12.872"),  # E0007
]


@pytest.mark.parametrize("r, targets, unfreeze, lora, backbone_trainable, ledger_m", LEDGER)
def test_lora_counts_match_the_ledger(r, targets, unfreeze, lora, backbone_trainable, ledger_m):
    backbone = LoRA(r=r, targets=targets, unfreeze=unfreeze).apply(_convnext_small_meta())
    with torch.device("meta"):
        counts = detection_parameter_counts(RetinaNetDetector(backbone, num_classes=6))
    assert counts["backbone"]["lora"] == lora == 67_680 * r * len(targets)
    assert counts["backbone"]["trainable"] == backbone_trainable
    assert counts["backbone"]["total"] == 49_453_152 + lora
    assert counts["trainable"] == NECK_AND_HEAD + backbone_trainable
    assert f"{counts['trainable'] / 1e6:.3f}" == ledger_m


def test_stage3_unfreeze_keeps_wrapped_base_weights_frozen_on_the_real_architecture():
    backbone = LoRA(r=16, targets=["fc2"], unfreeze=["stages_3"]).apply(_convnext_small_meta())
    stage3 = dict(backbone.model.stages_3.named_parameters())
    frozen = {n for n, p in stage3.items() if not p.requires_grad}
    assert frozen == {f"blocks.{b}.mlp.fc2.base_layer.{w}" for b in range(3) for w in ("weight", "bias")}
    non_lora = sum(p.numel() for n, p in stage3.items() if p.requires_grad and "lora_" not in n)
    assert non_lora == 8_390_400  # stage 3 without its fc2 base weights
    # unfreezing *all* of stage 3 instead would have given 16,553,472 backbone trainable params
    assert _trainable(backbone) != 16_553_472


# --- LoRA behaviour on test_convnext -------------------------------------------------------------------


def test_lora_starts_as_identity_and_changes_the_output_once_b_is_non_zero():
    backbone = _tiny()
    _layer_scale_one(backbone)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        before = backbone(x)
        LoRA(r=4, targets=["fc1", "fc2"]).apply(backbone)
        at_init = backbone(x)
        _randomise_lora_b(backbone)
        after = backbone(x)
    assert all(torch.equal(a, b) for a, b in zip(before, at_init))  # lora_B starts at zero
    assert (after[-1] - before[-1]).abs().max() > 0.1


def test_lora_freezes_everything_but_the_adapters_with_alpha_2r_by_default():
    backbone = LoRA(r=4, targets=["fc2"]).apply(_tiny())
    trainable = {n for n, p in backbone.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert len(trainable) == 2 * 9  # A and B for the 9 blocks' fc2
    # r * (in + out) per fc2, sum of block widths 24 + 2*32 + 4*48 + 2*64 = 408: 5 * r * 408
    assert _trainable(backbone) == 5 * 4 * 408 == 8_160
    fc2 = backbone.model.stages_0.blocks[0].mlp.fc2
    assert fc2.scaling["default"] == 2.0  # alpha = 2r -> alpha / r = 2
    assert LoRA(r=4, alpha=4.0).apply(_tiny()).model.stages_0.blocks[0].mlp.fc2.scaling["default"] == 1.0


def test_unfreeze_trains_the_stage_but_keeps_wrapped_base_weights_frozen():
    adapter = LoRA(r=4, targets=["fc2"], unfreeze=["stages_3"], lr=5e-4)
    backbone = adapter.apply(_tiny())
    _layer_scale_one(backbone)
    # stage 3 of test_convnext without its two fc2 layers: downsample 96 + 12,352, per block 20,032
    assert _trainable(backbone) == 8_160 + 52_512
    for name, param in backbone.model.named_parameters():
        in_stage3 = name.startswith("stages_3.")
        expected = ("lora_" in name) or (in_stage3 and ".base_layer." not in name)
        assert param.requires_grad == expected, name

    backbone(torch.rand(1, 3, 64, 64))[-1].square().mean().backward()
    base = backbone.model.stages_3.blocks[0].mlp.fc2.base_layer.weight
    assert base.grad is None
    assert backbone.model.stages_3.blocks[0].mlp.fc1.weight.grad is not None
    assert backbone.model.stages_3.blocks[0].mlp.fc2.lora_A["default"].weight.grad is not None

    groups = adapter.param_groups(backbone, lr=1e-4)
    assert [g["name"] for g in groups] == ["backbone.lora", "backbone.unfrozen"]
    assert [sum(p.numel() for p in g["params"]) for g in groups] == [8_160, 52_512]
    assert all(g["lr"] == 5e-4 for g in groups)
    assert all("lr" not in g for g in LoRA(r=4).param_groups(LoRA(r=4).apply(_tiny()), lr=1e-4))


def test_merge_lora_matches_the_unmerged_output_and_restores_the_plain_keys():
    plain = _tiny()
    _layer_scale_one(plain)
    backbone = LoRA(r=4, targets=["fc1", "fc2"], dropout=0.1).apply(copy.deepcopy(plain))
    _randomise_lora_b(backbone)
    backbone.eval()  # LoRA dropout off
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        unmerged = backbone(x)
        merged_model = merge_lora(copy.deepcopy(backbone))
        merged = merged_model(x)
        base = plain(x)
    assert max((a - b).abs().max().item() for a, b in zip(merged, unmerged)) < 1e-5
    assert (unmerged[-1] - base[-1]).abs().max() > 0.1  # the merge carried a real update
    assert list(merged_model.state_dict()) == list(plain.state_dict())
    assert type(merged_model.model.stages_1.blocks[0].mlp.fc1) is nn.Linear
    assert not hasattr(merged_model.model, "peft_config")
    reloaded = _tiny()
    reloaded.load_state_dict(merged_model.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.allclose(reloaded.eval()(x)[-1], merged[-1])


def test_lora_state_dict_round_trip():
    source = LoRA(r=2, targets=["fc1", "fc2"]).apply(_tiny())
    _layer_scale_one(source)
    _randomise_lora_b(source, seed=5)
    state = lora_state_dict(source)
    assert len(state) == 2 * 2 * 9  # A and B of fc1 and fc2 in 9 blocks, and nothing else
    assert all(".lora_A." in k or ".lora_B." in k for k in state)
    assert sum(v.numel() for v in state.values()) == 2 * 5 * 2 * 408

    target = copy.deepcopy(source)
    _randomise_lora_b(target, seed=6)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(target(x)[-1], source(x)[-1])
        load_lora_state_dict(target, state)
        assert torch.equal(target(x)[-1], source(x)[-1])

    with pytest.raises(ZoolabError, match="0 adapter tensors missing .*18 unexpected"):
        load_lora_state_dict(LoRA(r=2, targets=["fc2"]).apply(_tiny()), state)
    with pytest.raises(ZoolabError, match="same LoRA rank"):
        load_lora_state_dict(LoRA(r=4, targets=["fc1", "fc2"]).apply(_tiny()), state)


def test_lora_refuses_conv_mlp_models_and_bad_names():
    conv_mlp = _tiny(model_kwargs={"conv_mlp": True})  # fc1/fc2 are 1x1 Conv2d
    with pytest.raises(ZoolabError, match=r"targets \['fc2'\].*test_convnext.*9 Conv2d layers.*nn\.Linear"):
        LoRA().apply(conv_mlp)
    with pytest.raises(ZoolabError, match="match no layer"):
        LoRA(targets=["qkv"]).apply(_tiny())
    untouched = _tiny()
    with pytest.raises(ZoolabError, match="adapter.unfreeze.*stages_3"):
        LoRA(unfreeze=["stage3"]).apply(untouched)
    assert not lora_state_dict(untouched) and all(p.requires_grad for p in untouched.parameters())
    with pytest.raises(ZoolabError, match="already carries LoRA"):
        LoRA().apply(LoRA().apply(_tiny()))
    with pytest.raises(ZoolabError, match="adapter.r"):
        LoRA(r=0)
    with pytest.raises(ZoolabError, match="adapter.targets"):
        LoRA(targets=[])
