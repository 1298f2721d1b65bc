"""Everyday paths through the command line: checkpoint evaluation into a fresh folder, interrupts,
typos and bad values, a read-only run folder, smoke phase lengths, the console a user sees."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import FAST, REPO, run_cli

CHERRY = ["+exp=cherry_resnet18_aug_unnorm", "+smoke=cpu", *FAST]


def _metrics_without_timing(path) -> dict:
    metrics = json.loads(path.read_text())
    return {k: v for k, v in metrics.items() if "latency" not in k and not k.startswith("threads")}


def test_checkpoint_evaluation_into_a_fresh_folder_reproduces_the_test_metrics(tmp_path, cache_dir):
    trained = tmp_path / "trained"
    proc = run_cli([*CHERRY, "trainer.max_epochs=1", f"hydra.run.dir={trained}"], REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = _metrics_without_timing(trained / "smoke_metrics.json")
    for name in ("best.ckpt", "model.safetensors"):
        fresh = tmp_path / f"eval_{name}"
        proc = run_cli([*CHERRY, f"ckpt={trained / 'checkpoints' / name}", f"hydra.run.dir={fresh}"], REPO)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert _metrics_without_timing(fresh / "smoke_metrics.json") == expected
        record = json.loads((fresh / "run.json").read_text())
        assert record["status"] == "ok" and record["evaluated_checkpoint"].endswith(name)
        assert (fresh / "resolved_config.yaml").is_file()


@pytest.mark.parametrize("sig, status_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_run_is_recorded_as_interrupted(tmp_path, cache_dir, sig, status_code):
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "zoolab", *CHERRY, "trainer.max_epochs=50",
                             f"hydra.run.dir={run_dir}"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (run_dir / "checkpoints" / "last.ckpt").is_file():
        time.sleep(0.5)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file(), "training never reached its first checkpoint"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=300)
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "interrupted", (record["status"], stderr[-2000:])
    assert record["ended"] and sig.name in record["error"]
    assert proc.returncode == status_code
    assert not (run_dir / "smoke_metrics.json").exists()


def test_an_interrupted_sweep_stops_and_tables_the_jobs_that_ran(tmp_path, cache_dir):
    sweep_dir = tmp_path / "sweep"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "zoolab", "-m", *CHERRY, "trainer.max_epochs=1,50,1",
                             f"hydra.sweep.dir={sweep_dir}"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    second = sweep_dir / "1_trainer.max_epochs-50"
    deadline = time.time() + 300
    while time.time() < deadline and not (second / "checkpoints" / "last.ckpt").is_file():
        time.sleep(0.5)
    assert (second / "checkpoints" / "last.ckpt").is_file(), "the second job never reached its first checkpoint"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr[-2000:]
    with open(sweep_dir / "results.tsv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if r["kind"] == "run"]
    assert [(r["run_dir"], r["status"]) for r in rows] == [("0_trainer.max_epochs-1", "ok"),
                                                           ("1_trainer.max_epochs-50", "interrupted")]
    assert not (sweep_dir / "2_trainer.max_epochs-1").exists()   # the sweep stopped; the third job never ran


@pytest.mark.parametrize("override, expected", [
    ("trainer.max_epochz=1", ["trainer.max_epochz", "did you mean 'max_epochs'"]),
    ("optim.lrr=1e-3", ["optim.lrr", "did you mean 'lr'"]),
])
def test_a_misspelt_key_names_the_path_the_allowed_keys_and_a_close_match(tmp_path, override, expected):
    proc = run_cli([*CHERRY, override, f"hydra.run.dir={tmp_path / 'run'}"], REPO)
    assert proc.returncode == 1
    assert all(text in proc.stderr for text in expected), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "To append to your config use" not in proc.stderr


def test_a_value_of_the_wrong_type_stops_at_start_up(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    proc = run_cli([*CHERRY, "optim.lr=abc", f"hydra.run.dir={run_dir}"], REPO)
    assert proc.returncode == 1 and "optim.lr" in proc.stderr and "Traceback" not in proc.stderr
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert not list(run_dir.glob("*_metrics.json"))


def test_no_experiment_says_how_to_choose_one(tmp_path):
    proc = run_cli(["+smoke=cpu", f"hydra.run.dir={tmp_path / 'run'}"], REPO)
    assert proc.returncode == 2 and "+exp=NAME" in proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores file permissions")
def test_a_read_only_run_folder_gives_one_message(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_dir.chmod(0o500)
    try:
        proc = run_cli([*CHERRY, f"hydra.run.dir={run_dir}"], REPO)
    finally:
        run_dir.chmod(0o700)
    assert proc.returncode == 1
    assert proc.stderr.count("Traceback") == 0 and "cannot be written" in proc.stderr, proc.stderr[-2000:]


def test_read_only_run_folder_as_root_is_simulated_with_a_file_in_the_way(tmp_path):
    """A path that cannot be a folder (a file stands there): the same one message, no traceback."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    proc = run_cli([*CHERRY, f"hydra.run.dir={blocker / 'run'}"], REPO)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_smoke_epochs_cap_every_phase_and_the_console_is_clean(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=clf_dinov3_vits16_mlp256", "+smoke=cpu", "profile=hardmine", "trainer.max_epochs=1",
                    f"hydra.run.dir={run_dir}"], REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["phase_epochs"]["hard_mining"] == 1 and record["phase_epochs"]["main"] == 1
    console = proc.stdout + proc.stderr
    for noise in ("LeafSpec", "Tip:", "smaller than the logging interval", "exists and is not empty"):
        assert noise not in console, noise
    lines = [line for line in console.splitlines() if "Seed set to" in line]
    assert len(lines) == 1, lines
    assert "Evaluating val" in console and "Evaluating test" in console
    last = console.strip().splitlines()[-1]
    assert last.startswith("zoolab: ok") and "macro_f1_fg" in last and str(run_dir) in last
    assert record["device"]["accelerator"] == "cpu" and record["device"]["name"]
