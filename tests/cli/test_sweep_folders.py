"""Sweeps without ``hydra.sweep.dir``: one sweep folder per command, the table in it, short job names."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from conftest import FAST, run_cli

EXP = "cherry_resnet18_aug_unnorm"


def sweep_folders(cwd: Path) -> list[Path]:
    """Every ``multirun/<name>/<stamp>`` folder below ``cwd``."""
    return sorted(p for p in (cwd / "multirun").glob("*/*") if p.is_dir())


def run_rows(sweep: Path) -> list[dict]:
    with open(sweep / "results.tsv") as fh:
        return [r for r in csv.DictReader(fh, delimiter="\t") if r["kind"] == "run"]


def test_sweep_of_one_experiment_writes_its_table_in_its_own_folder(tmp_path, cache_dir):
    proc = run_cli(["-m", f"+exp={EXP}", "+smoke=cpu", *FAST, "trainer.max_epochs=1",
                    "backbone.name=resnet18,not_a_model"], tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    (sweep,) = sweep_folders(tmp_path)
    assert sweep.parent.name == EXP
    assert sorted(r["status"] for r in run_rows(sweep)) == ["failed", "ok"]
    assert "2 runs: 1 ok, 1 failed." in (sweep / "results.md").read_text()
    assert "1 of 2 jobs" in proc.stderr


@pytest.mark.parametrize(
    ("exp_override", "folder"),
    [
        ("+exp=cherry_efficientnet_b2,cherry_mobilenetv3_large", "sweep"),
        ("+exp=glob(cherry_efficientnet_b2*)", "glob-cherry_efficientnet_b2"),
    ],
)
def test_sweep_over_experiments_shares_one_folder(tmp_path, cache_dir, exp_override, folder):
    proc = run_cli(["-m", exp_override, "+smoke=cpu", *FAST, "dataset.augment=bogus"], tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    (sweep,) = sweep_folders(tmp_path)
    assert sweep.parent.name == folder
    runs = run_rows(sweep)
    assert len(runs) == 2 and all(r["status"] == "failed" for r in runs)
    assert len({r["exp"] for r in runs}) == 2


def test_job_folders_are_named_by_number_and_swept_keys(tmp_path, cache_dir):
    sweep = tmp_path / "sweep"
    args = ["-m", f"+exp={EXP}", "+smoke=cpu", *FAST, "trainer.limit_train_batches=1", "seed=0,1",
            "dataset.augment=bogus,worse", f"hydra.sweep.dir={sweep}"]
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    names = sorted(p.parent.name for p in sweep.glob("*/run.json"))
    assert names == ["0_seed-0__dataset.augment-bogus", "1_seed-0__dataset.augment-worse",
                     "2_seed-1__dataset.augment-bogus", "3_seed-1__dataset.augment-worse"]
    overrides = json.loads((sweep / names[3] / "run.json").read_text())["overrides"]
    assert {*FAST, "trainer.limit_train_batches=1", "seed=1", "dataset.augment=worse"} <= set(overrides)
