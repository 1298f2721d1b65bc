"""A run killed mid-training continues from checkpoints/last.ckpt when its folder is reused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import torch

from conftest import FAST, REPO, run_cli


def test_killed_run_resumes_from_last_ckpt(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    epochs = 8
    args = ["+exp=cherry_resnet18_aug_unnorm", "+smoke=cpu", *FAST, f"trainer.max_epochs={epochs}",
            "callbacks.early_stopping.patience=100", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen([sys.executable, "-m", "zoolab", *args], cwd=REPO, env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)  # let the checkpoint write finish; training goes on
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    killed_at = torch.load(last, map_location="cpu", weights_only=True)["epoch"]
    assert killed_at < epochs - 1

    done = run_cli(args, REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "ok"
    assert record["attempts"] == 2
    assert record["resumed_from"] == "checkpoints/last.ckpt"
    assert record["resumed_at_epoch"] >= killed_at
    assert "Epoch 0:" not in done.stderr  # it continued instead of restarting
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == epochs - 1
    assert (run_dir / "smoke_metrics.json").is_file()
