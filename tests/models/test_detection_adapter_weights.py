"""Adapter-only weights of a LoRA detector: saved, reloaded onto a fresh base (``ckpt=adapter.safetensors``)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from zoolab.config import prepare_config
from zoolab.errors import ZoolabError
from zoolab.families.base import build_task_module as build_task
from zoolab.pipeline import export_weights
from zoolab.run_outputs import ADAPTER_CONTENT, RunOutputs
from zoolab.runfolder import RunRecord

CLASSES = ["ship", "aircraft", "car", "tank", "bridge", "harbor"]


def _task(compose, tmp_path, extra=()):
    overrides = ["+exp=sardet_lora_r8_fc2", "+smoke=cpu", "backbone.name=test_convnext", "head.fpn_channels=16",
                 *extra]
    cfg, choices = compose(overrides, tmp_path)
    cfg = prepare_config(cfg, overrides, choices.get("dataset"))
    L.seed_everything(0)
    return build_task(cfg, CLASSES)


def _save_adapter(task, tmp_path):
    """The adapter file as the pipeline exports it after a run."""
    run_dir = tmp_path / "run"
    export_weights(task, RunOutputs(run_dir, RunRecord(run_dir)))
    return run_dir / "checkpoints" / "adapter.safetensors"


def test_adapter_file_round_trips_onto_a_fresh_base(compose, tmp_path):
    trained = _task(compose, tmp_path)
    with torch.no_grad():  # stand-in for training: move every trained tensor
        for p in trained.detector.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p))
    path = _save_adapter(trained, tmp_path)
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
    path = _save_adapter(_task(compose, tmp_path), tmp_path)
    other = _task(compose, tmp_path, ["adapter.r=4"])
    with pytest.raises(ZoolabError, match="do not match"):
        other.load_adapter_state_dict(load_file(str(path)))
