"""Adapter-only weights of a LoRA detector: saved, reloaded onto a fresh base (``ckpt=adapter.safetensors``)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from zoolab.config import prepare_config
from zoolab.errors import ZoolabError
from zoolab.train import ADAPTER_CONTENT, build_task

CLASSES = ["ship", "aircraft", "car", "tank", "bridge", "harbor"]


def _task(compose, tmp_path, extra=()):
    overrides = ["+exp=sardet_lora_r8_fc2", "+smoke=cpu", "backbone.name=test_convnext", "head.fpn_channels=16",
                 *extra]
    cfg, choices = compose(overrides, tmp_path)
    cfg = prepare_config(cfg, overrides, choices.get("dataset"))
    L.seed_everything(0)
    return build_task(cfg, CLASSES)


def test_adapter_file_round_trips_onto_a_fresh_base(compose, tmp_path):
    trained = _task(compose, tmp_path)
    with torch.no_grad():  # stand-in for training: move every trained tensor
        for p in trained.detector.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p))
    path = trained.save_adapter(tmp_path / "adapter.safetensors")
    with safe_open(str(path), "pt") as handle:
        assert handle.metadata()["content"] == ADAPTER_CONTENT
        keys = set(handle.keys())
    assert any(".lora_A." in k for k in keys) and any(k.startswith("neck.") for k in keys)
    assert not any("base_layer" in k for k in keys)  # the frozen base is not in the file

    fresh = _task(compose, tmp_path)  # same seed: the same random "pretrained" base
    fresh.load_adapter_state_dict(load_file(str(path)))
    expected, loaded = trained.detector.state_dict(), fresh.detector.state_dict()
    assert expected.keys() == loaded.keys()
    assert all(torch.equal(expected[k], loaded[k]) for k in expected)


def test_adapter_of_another_rank_is_refused(compose, tmp_path):
    path = _task(compose, tmp_path).save_adapter(tmp_path / "adapter.safetensors")
    other = _task(compose, tmp_path, ["adapter.r=4"])
    with pytest.raises(ZoolabError, match="do not match"):
        other.load_adapter_state_dict(load_file(str(path)))
