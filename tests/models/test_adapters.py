"""Tests for zoolab.adapters.freeze, the task's optimiser groups and zoolab.params.count_parameters."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from zoolab.adapters.freeze import Frozen, FullFineTune, PartialUnfreeze, freeze_norm_stats
from zoolab.backbones.timm_backbone import TimmBackbone
from zoolab.errors import ZoolabError
from zoolab.heads.linear import LinearHead
from zoolab.params import count_parameters
from zoolab.tasks.image_cls import ImageClassificationTask

CLASSES = ["cherry_clean", "cherry_pit"]
BASE_LR, WEIGHT_DECAY = 1e-3, 0.01


@pytest.fixture
def resnet18() -> TimmBackbone:
    return TimmBackbone("resnet18", pretrained=False)


def _trainable(module: nn.Module) -> dict[str, int]:
    return {n: p.numel() for n, p in module.named_parameters() if p.requires_grad}


def _batchnorms(module: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in module.named_modules() if isinstance(m, nn.BatchNorm2d)}


def _task(backbone: nn.Module, adapter) -> ImageClassificationTask:
    return ImageClassificationTask(
        backbone=backbone,
        head=partial(LinearHead),
        adapter=adapter,
        loss=nn.CrossEntropyLoss(),
        optimizer=partial(torch.optim.AdamW, lr=BASE_LR, weight_decay=WEIGHT_DECAY),
        class_names=CLASSES,
        latency={"enabled": False},
    )


def test_full_finetune_leaves_every_parameter_trainable(resnet18):
    resnet18.requires_grad_(False)  # FullFineTune must switch them back on
    model = FullFineTune().apply(resnet18)
    assert model is resnet18
    assert all(p.requires_grad for p in model.parameters())
    groups = FullFineTune().param_groups(model, BASE_LR)
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(p.numel() for p in model.parameters())
    assert all("lr" not in g for g in groups)


def test_frozen_has_no_trainable_backbone_params_and_stays_in_eval(resnet18):
    model = Frozen().apply(resnet18)
    assert sum(_trainable(model).values()) == 0
    assert Frozen().param_groups(model, BASE_LR) == []
    model.train()
    freeze_norm_stats(model)
    assert not any(m.training for m in model.modules())


def test_freeze_norm_stats_keeps_a_frozen_backbone_s_bn_statistics(resnet18):
    model = Frozen().apply(resnet18)
    model.train()
    freeze_norm_stats(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model(torch.rand(4, 3, 32, 32) * 255)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_partial_unfreeze_trains_exactly_layer4_at_its_own_lr(resnet18):
    adapter = PartialUnfreeze(trainable=["layer4"], lr={"layer4": 1e-5})
    model = adapter.apply(resnet18)
    trainable = _trainable(model)
    layer4 = {n: p.numel() for n, p in model.named_parameters() if n.startswith("model.layer4.")}
    assert trainable == layer4 and len(layer4) > 0

    groups = adapter.param_groups(model, BASE_LR)
    assert [g["name"] for g in groups] == ["backbone.layer4"]
    assert groups[0]["lr"] == 1e-5
    assert {id(p) for p in groups[0]["params"]} == {id(p) for n, p in model.named_parameters() if n in layer4}

    model.train()
    freeze_norm_stats(model)
    bns = _batchnorms(model)
    frozen_bns = {n: m for n, m in bns.items() if not n.startswith("model.layer4.")}
    assert "model.bn1" in frozen_bns and any(n.startswith("model.layer1.") for n in frozen_bns)
    assert all(not m.training for m in frozen_bns.values())
    assert all(m.training for n, m in bns.items() if n.startswith("model.layer4."))


def test_partial_unfreeze_without_lr_uses_the_base_lr(resnet18):
    adapter = PartialUnfreeze(trainable=["layer3", "layer4"], lr={"layer4": 1e-5})
    groups = {g["name"]: g for g in adapter.param_groups(adapter.apply(resnet18), BASE_LR)}
    assert set(groups) == {"backbone.layer3", "backbone.layer4"}
    assert "lr" not in groups["backbone.layer3"] and groups["backbone.layer4"]["lr"] == 1e-5


def test_partial_unfreeze_wrong_prefix_lists_the_valid_top_level_names(resnet18):
    with pytest.raises(ZoolabError) as info:
        PartialUnfreeze(trainable=["layer5"]).apply(resnet18)
    assert info.value.where == "adapter.trainable"
    assert "layer5" in info.value.what
    for name in ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4"):
        assert f"'{name}'" in info.value.fix


def test_partial_unfreeze_lr_keys_must_be_trainable():
    with pytest.raises(ZoolabError) as info:
        PartialUnfreeze(trainable=["layer4"], lr={"layer3": 1e-5})
    assert info.value.where == "adapter.lr"
    assert "layer3" in str(info.value)


def test_task_param_groups_split_out_1d_params_without_weight_decay(resnet18):
    task = _task(resnet18, PartialUnfreeze(trainable=["layer4"], lr={"layer4": 1e-5}))
    groups = task.param_groups()
    names = [g["name"] for g in groups]
    assert names == ["backbone.layer4", "backbone.layer4.no_decay", "head", "head.no_decay"]
    for group in groups:
        one_d = [p.ndim <= 1 for p in group["params"]]
        if group["name"].endswith(".no_decay"):
            assert all(one_d) and group["weight_decay"] == 0.0
        else:
            assert not any(one_d) and "weight_decay" not in group
    grouped = [p for g in groups for p in g["params"]]
    assert len({id(p) for p in grouped}) == len(grouped)  # no parameter twice
    assert {id(p) for p in grouped} == {id(p) for p in task.parameters() if p.requires_grad}

    optimizer = task.configure_optimizers()
    by_name = {g["name"]: g for g in optimizer.param_groups}
    assert by_name["backbone.layer4"]["lr"] == by_name["backbone.layer4.no_decay"]["lr"] == 1e-5
    assert by_name["head"]["lr"] == by_name["head.no_decay"]["lr"] == BASE_LR
    assert by_name["head"]["weight_decay"] == by_name["backbone.layer4"]["weight_decay"] == WEIGHT_DECAY
    assert by_name["head.no_decay"]["weight_decay"] == by_name["backbone.layer4.no_decay"]["weight_decay"] == 0.0


def test_task_with_frozen_backbone_optimises_only_the_head(resnet18):
    task = _task(resnet18, Frozen())
    optimizer = task.configure_optimizers()
    assert [g["name"] for g in optimizer.param_groups] == ["head", "head.no_decay"]
    assert [p.shape for g in optimizer.param_groups for p in g["params"]] == [(2, 512), (2,)]
    assert all(g["lr"] == BASE_LR for g in optimizer.param_groups)
    task.train()
    task.on_train_epoch_start()
    assert not any(m.training for m in task.backbone.modules())
    assert task.head.training


def _hand_counts(module: nn.Module) -> dict[str, int]:
    return {
        "total": sum(p.numel() for p in module.parameters()),
        "trainable": sum(p.numel() for p in module.parameters() if p.requires_grad),
    }


@pytest.mark.parametrize("adapter", ["frozen", "partial", "full"])
def test_parameter_counts_match_hand_sums_and_the_adapter(resnet18, adapter):
    task = _task(resnet18, {"frozen": Frozen(), "full": FullFineTune(),
                            "partial": PartialUnfreeze(trainable=["layer4"], lr={"layer4": 1e-5})}[adapter])
    counts = task.parameter_counts()
    assert counts == count_parameters({"backbone": task.backbone, "head": task.head})
    backbone, head = _hand_counts(task.backbone), _hand_counts(task.head)
    assert counts["per_component"] == {"backbone": backbone, "head": head}
    assert counts["total"] == backbone["total"] + head["total"] == sum(p.numel() for p in task.parameters())
    assert head == {"total": 512 * 2 + 2, "trainable": 512 * 2 + 2}
    layer4 = sum(p.numel() for p in task.backbone.model.layer4.parameters())
    expected_backbone_trainable = {"frozen": 0, "partial": layer4, "full": backbone["total"]}[adapter]
    assert counts["per_component"]["backbone"]["trainable"] == expected_backbone_trainable
    assert counts["trainable"] == expected_backbone_trainable + 512 * 2 + 2
    if adapter == "frozen":  # FC-only: the head is all that trains
        assert counts["trainable"] == 1026


def test_count_parameters_counts_shared_tensors_once():
    shared = nn.Linear(3, 4)
    counts = count_parameters({"a": nn.Sequential(shared), "b": nn.Sequential(shared, nn.Linear(4, 1))})
    assert counts["per_component"] == {"a": {"total": 16, "trainable": 16}, "b": {"total": 5, "trainable": 5}}
    assert counts["total"] == counts["trainable"] == 21
