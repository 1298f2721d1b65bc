"""Fabricated run folders for the artifacts tests (imported by them) (the run-folder contract of docs/architecture.md)."""

from __future__ import annotations

import json
from pathlib import Path


DETECTION = ("coco/bbox_mAP", "coco/bbox_mAP_50", "coco/bbox_mAP_75", "coco/bbox_mAP_s", "coco/bbox_mAP_m",
             "coco/bbox_mAP_l")


def make_run(folder: Path, exp: str, exp_id: str, seed: int, splits: dict[str, float], task: str = "detection",
             status: str = "ok", checkpoints: bool = True, logs: bool = True, smoke: bool = False,
             ended: str = "2026-01-01T00:00:00+00:00") -> Path:
    """A run folder as ``python -m zoolab`` leaves it: metrics per split, run.json, checkpoints, logs."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, value in splits.items():
        metrics = {key: round(value * (1 - 0.1 * i), 4) for i, key in enumerate(DETECTION)}
        (folder / f"{split}_metrics.json").write_text(json.dumps(metrics))
    if checkpoints:
        (folder / "checkpoints").mkdir(exist_ok=True)
        (folder / "checkpoints" / "best.ckpt").write_bytes(b"\x00weights" * 64)
    if logs:
        (folder / "zoolab.log").write_text("[zoolab] fit done\n")
        (folder / "metrics.csv").write_text("epoch,train/loss\n0,1.0\n")
    overrides = [f"+exp={exp}", f"seed={seed}"] + (["+smoke=cpu"] if smoke else [])
    (folder / "run.json").write_text(json.dumps({
        "exp": exp, "exp_id": exp_id, "task": task, "status": status, "error": None, "seed": seed,
        "overrides": overrides, "smoke": smoke, "started": ended, "ended": ended, "seconds": {"fit": 1.0},
    }))
    return folder


