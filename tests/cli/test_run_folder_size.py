"""A detection linear-probe run folder holds the frozen pretrained base once: in model.safetensors.

best.ckpt and last.ckpt keep only the trained tensors (FPN neck and RetinaNet head) and name the left-out
base (``ZooTask.on_save_checkpoint``). Measured on the smoke run (ConvNeXt-S, fp32): model.safetensors
235.5 MB (58.9 M parameters), trained tensors T = 37.6 MB (9.4 M), best.ckpt 37.7 MB, adapter.safetensors
37.6 MB, last.ckpt 113.0 MB (T plus AdamW's two moments), folder 423.7 MB. One copy of the frozen base in
either checkpoint would add 197.8 MB and break the bound below.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from conftest import REPO, run_cli
from safetensors import safe_open

SLACK = 2 * 2**20  # configs, logs, metrics, checkpoint metadata


def tensor_bytes(state: dict) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_linear_probe_run_folder_holds_the_frozen_base_once(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=sardet_linear_probe", "+smoke=cpu", "trainer.max_epochs=1", f"hydra.run.dir={run_dir}"],
                   REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "ok"
    params = record["params"]
    assert params["per_component"]["backbone"]["trainable"] == 0  # the base is frozen

    ckpts = run_dir / "checkpoints"
    with safe_open(str(ckpts / "model.safetensors"), "pt") as handle:
        full = {name: handle.get_slice(name).get_shape() for name in handle.keys()}  # noqa: SIM118 - safe_open is no dict
    model_size = (ckpts / "model.safetensors").stat().st_size
    sizes = {p.name: p.stat().st_size for p in ckpts.iterdir()}
    total = folder_bytes(run_dir)

    for name in ("best.ckpt", "last.ckpt"):
        checkpoint = torch.load(ckpts / name, map_location="cpu", weights_only=True, mmap=True)
        state = checkpoint["state_dict"]
        assert not [k for k in state if k.startswith("detector.backbone.")], name
        assert sum(t.numel() for t in state.values()) == params["trainable"], name
        left_out = checkpoint["zoolab_frozen_base"]  # named, so loading can put the base back
        assert left_out and all(k.startswith("detector.backbone.") for k in left_out)
        assert sum(torch.Size(full[k.removeprefix("detector.")]).numel() for k in left_out) \
            == params["per_component"]["backbone"]["total"]
    trained = tensor_bytes(state)

    # Every set once: model.safetensors (all M bytes), best.ckpt (T), adapter.safetensors (T, when written),
    # last.ckpt (T and AdamW's exp_avg / exp_avg_sq, 2 T).
    bound = model_size + 5 * trained + SLACK
    print(f"\nmodel.safetensors {model_size / 1e6:.1f} MB, trained tensors {trained / 1e6:.1f} MB, "
          + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sorted(sizes.items()))
          + f", folder {total / 1e6:.1f} MB, bound {bound / 1e6:.1f} MB")
    assert sizes["best.ckpt"] < 0.25 * model_size
    assert sizes["best.ckpt"] < trained + SLACK
    assert sizes["last.ckpt"] < 3 * trained + SLACK
    assert total < bound
