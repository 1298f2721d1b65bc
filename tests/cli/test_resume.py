"""A run killed mid-training continues from checkpoints/last.ckpt when its folder is reused, and ends
exactly like a run that was never interrupted: same exported weights, same metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import FAST, REPO, run_cli
from safetensors.torch import load_file


def cli_args(run_dir: Path, epochs: int, *extra: str) -> list[str]:
    return ["+exp=cherry_resnet18_aug_unnorm", "+smoke=cpu", *FAST, f"trainer.max_epochs={epochs}", *extra,
            f"hydra.run.dir={run_dir}"]


def start_run(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "zoolab", *args], cwd=REPO,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def checkpoint_epoch(path: Path) -> int | None:
    """The epoch of a checkpoint file; None while it is missing or unreadable."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)["epoch"]
    except (OSError, RuntimeError, EOFError):
        return None


def kill_at_first_checkpoint(proc: subprocess.Popen, last: Path, timeout: float = 300) -> int | None:
    """SIGKILL ``proc`` once ``last`` holds a complete checkpoint and return that checkpoint's epoch (None
    when the run ended or stalled before writing one).

    The run is frozen (SIGSTOP) while the file is read, so it cannot move on to a later epoch meanwhile."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if last.is_file():
            proc.send_signal(signal.SIGSTOP)
            epoch = checkpoint_epoch(last)
            if epoch is not None:
                proc.kill()
                proc.wait()
                return epoch
            proc.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    return None


def kill_after_first_epoch(args: list[str], run_dir: Path, log: Path) -> int:
    """Start a run, SIGKILL it as soon as it has written last.ckpt; return the checkpoint's epoch."""
    last = run_dir / "checkpoints" / "last.ckpt"
    killed_at = kill_at_first_checkpoint(start_run(args, log), last)
    assert killed_at is not None, log.read_text()[-3000:]
    assert checkpoint_epoch(last) == killed_at
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    return killed_at


def assert_resumed(run_dir: Path, killed_at: int) -> None:
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "ok"
    assert record["attempts"] == 2
    assert record["resumed_from"] == "checkpoints/last.ckpt"
    assert record["resumed_at_epoch"] == killed_at


def final_results(run_dir: Path) -> dict:
    """What a run ends with, less the timings (latency) that differ between any two runs."""
    metrics = json.loads((run_dir / "smoke_metrics.json").read_text())
    record = json.loads((run_dir / "run.json").read_text())
    return {
        "metrics": {k: v for k, v in metrics.items() if not k.startswith("latency_ms")},
        "best_epoch": record["best_epoch"],
        "last_epoch": checkpoint_epoch(run_dir / "checkpoints" / "last.ckpt"),
    }


def differing_tensors(a: Path, b: Path) -> list[str]:
    first, second = load_file(str(a)), load_file(str(b))
    assert first.keys() == second.keys()
    return [name for name in first if not torch.equal(first[name], second[name])]


def differing_state(a: Path, b: Path) -> list[str]:
    """Names of the model tensors that differ between two Lightning checkpoints."""
    first, second = (torch.load(p, map_location="cpu", weights_only=True)["state_dict"] for p in (a, b))
    assert first.keys() == second.keys()
    return [name for name in first if not torch.equal(first[name], second[name])]


@pytest.mark.slow  # the next test kills and resumes too, and checks the result equals an uninterrupted run
def test_killed_run_resumes_from_last_ckpt(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    epochs = 8
    args = cli_args(run_dir, epochs, "callbacks.early_stopping.patience=100")
    killed_at = kill_after_first_epoch(args, run_dir, tmp_path / "killed.log")
    assert killed_at < epochs - 1

    done = run_cli(args, REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_resumed(run_dir, killed_at)
    assert "Epoch 0:" not in done.stderr  # it continued instead of restarting
    assert checkpoint_epoch(run_dir / "checkpoints" / "last.ckpt") == epochs - 1
    assert (run_dir / "smoke_metrics.json").is_file()


def test_killed_and_resumed_run_ends_like_the_uninterrupted_run(tmp_path, cache_dir):
    epochs = 3
    resumed_dir, straight_dir = tmp_path / "resumed", tmp_path / "straight"
    killed_at = kill_after_first_epoch(cli_args(resumed_dir, epochs), resumed_dir, tmp_path / "killed.log")
    assert killed_at < epochs - 1, "the run got too far before it could be killed"

    # The synthetic data is cached by now, so the uninterrupted run can go alongside the resumed one.
    straight = start_run(cli_args(straight_dir, epochs), tmp_path / "straight.log")
    resumed = run_cli(cli_args(resumed_dir, epochs), REPO)
    assert straight.wait(timeout=600) == 0, (tmp_path / "straight.log").read_text()[-3000:]
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    assert_resumed(resumed_dir, killed_at)
    assert final_results(resumed_dir) == final_results(straight_dir)
    model = Path("checkpoints") / "model.safetensors"
    assert differing_tensors(resumed_dir / model, straight_dir / model) == []


# Small data without `dataset=` (the smoke family's own synthetic tree), one DataLoader worker: persistent,
# with per-sample seeds (zoolab.callbacks.seeded_loader), so the augmentations happen in the worker.
WORKERS = ["dataset.num_workers=1", "dataset.root.counts={train:40,val:20,test:20}", "dataset.root.image_size=48",
           "backbone.input_size=32", "task.module.latency.input_size=32", "task.module.latency.runs=3",
           "task.module.latency.warmup=1"]


def worker_args(run_dir: Path, epochs: int) -> list[str]:
    return ["+exp=cherry_resnet18_aug_unnorm", "+smoke=cpu", *WORKERS, f"trainer.max_epochs={epochs}",
            "task.module.latency.variants=[eager]",
            f"hydra.run.dir={run_dir}"]


def test_killed_and_resumed_run_with_workers_ends_like_the_uninterrupted_run(tmp_path, cache_dir):
    """kill -9 between epochs with a persistent worker: the fresh worker of the resumed run reads every
    sample with the seed the uninterrupted run's worker used, so both end with the same weights."""
    epochs = 3
    resumed_dir, straight_dir = tmp_path / "resumed", tmp_path / "straight"
    killed_at = kill_after_first_epoch(worker_args(resumed_dir, epochs), resumed_dir, tmp_path / "killed.log")
    assert killed_at < epochs - 1, "the run got too far before it could be killed"

    straight = start_run(worker_args(straight_dir, epochs), tmp_path / "straight.log")
    resumed = run_cli(worker_args(resumed_dir, epochs), REPO)
    assert straight.wait(timeout=600) == 0, (tmp_path / "straight.log").read_text()[-3000:]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "persistent workers" not in resumed.stderr  # the RNG-state callback's warning for other loaders

    assert_resumed(resumed_dir, killed_at)
    assert final_results(resumed_dir) == final_results(straight_dir)
    model = Path("checkpoints") / "model.safetensors"
    assert differing_tensors(resumed_dir / model, straight_dir / model) == []
    # model.safetensors holds the best epoch, which may be one from before the kill: the last weights too
    last = Path("checkpoints") / "last.ckpt"
    assert differing_state(resumed_dir / last, straight_dir / last) == []
