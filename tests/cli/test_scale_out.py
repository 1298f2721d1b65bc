"""Scaling out a sweep: Hydra's joblib and submitit-local launchers, the Optuna sweeper (a study that a
rerun continues) and the experiment trackers (MLflow file store, W&B offline). Each goes through the
CLI on the embedded embedding caches, whose smoke runs take seconds."""

from __future__ import annotations

import csv
import json

import optuna
import pytest

from tests.conftest import REPO, run_cli

CLF = ["+exp=clf_dinov3_vits16_mlp256", "+smoke=cpu", "trainer.max_epochs=1"]


def _rows(sweep_dir):
    with open(sweep_dir / "results.tsv", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_joblib_sweep_with_a_failing_job_writes_its_table_and_exits_non_zero(tmp_path, cache_dir):
    sweep = tmp_path / "sweep"
    proc = run_cli(["-m", *CLF, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                    "task.module.logit_adjust=none,sideways", f"hydra.sweep.dir={sweep}"], REPO)
    assert proc.returncode == 1, proc.stderr[-3000:]
    runs = {r["overrides"]: r for r in _rows(sweep) if r["kind"] == "run"}
    statuses = sorted((o.split("logit_adjust=")[1].split()[0], r["status"]) for o, r in runs.items())
    assert statuses == [("none", "ok"), ("sideways", "failed")]
    failed = next(r for r in runs.values() if r["status"] == "failed")
    assert "logit_adjust" in failed["error"]
    assert "did not finish ok" in proc.stderr


def test_submitit_local_sweep_of_two_jobs_aggregates(tmp_path, cache_dir):
    sweep = tmp_path / "sweep"
    proc = run_cli(["-m", *CLF, "hydra/launcher=local", "seed=0,1", f"hydra.sweep.dir={sweep}"], REPO, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _rows(sweep)
    assert sorted(r["seed"] for r in rows if r["kind"] == "run") == ["0", "1"]
    assert all(r["status"] == "ok" for r in rows if r["kind"] == "run")
    (group,) = [r for r in rows if r["kind"] == "group"]
    assert "(2 seeds)" in group["macro_f1_fg"]
    for job in ("0_seed-0", "1_seed-1"):
        assert json.loads((sweep / job / "run.json").read_text())["status"] == "ok"


def test_optuna_study_lives_in_the_sweep_folder_and_a_rerun_continues_it(tmp_path, cache_dir):
    sweep = tmp_path / "search"
    args = ["-m", *CLF, "+sweep=clf_optuna", f"hydra.sweep.dir={sweep}"]
    first = run_cli([*args, "hydra.sweeper.n_trials=2"], REPO)
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_cli([*args, "hydra.sweeper.n_trials=1", "hydra.sweeper.sampler.seed=7"], REPO)
    assert second.returncode == 0, second.stderr[-3000:]

    study = optuna.load_study(study_name="clf_dinov3_vits16_mlp256", storage=f"sqlite:///{sweep / 'optuna.db'}")
    trials = study.trials
    assert len(trials) == 3 and all(t.state.name == "COMPLETE" for t in trials)
    # Each trial's value is its own run's val macro_f1_fg, recorded in run.json.
    runs = [json.loads(p.read_text()) for p in sweep.glob("*/run.json")]
    assert len(runs) == 3
    assert sorted(t.value for t in trials) == sorted(r["objective_value"] for r in runs)
    assert all(r["status"] == "ok" for r in runs)
    # The best trial is in the results table (a `best_trial` line) and in results.md.
    best = next(r for r in _rows(sweep) if r["kind"] == "best_trial")
    best_run = json.loads((sweep / best["run_dir"] / "run.json").read_text())
    assert best_run["objective_value"] == pytest.approx(study.best_value)
    assert "## Best trial" in (sweep / "results.md").read_text()


def test_every_tracker_gets_the_config_and_the_split_metrics(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    proc = run_cli([*CLF, "logger=many", f"hydra.run.dir={run_dir}"], REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    test_f1 = json.loads((run_dir / "smoke_metrics.json").read_text())["macro_f1_fg"]

    assert list(run_dir.glob("tensorboard/events.out.tfevents.*"))
    mlflow_metric = [p for p in run_dir.glob("mlruns/*/*/metrics/test/macro_f1_fg")]
    assert len(mlflow_metric) == 1
    assert float(mlflow_metric[0].read_text().split()[1]) == pytest.approx(test_f1)
    (params,) = {p.parent for p in run_dir.glob("mlruns/*/*/params/exp")}
    assert (params / "exp").read_text() == "clf_dinov3_vits16_mlp256"

    (wandb_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    content = wandb_file.read_bytes()
    assert b"test/macro_f1_fg" in content and repr(test_f1).encode() in content
    assert b"clf_dinov3_vits16_mlp256" in content
