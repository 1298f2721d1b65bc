"""A multirun with one failing setting still writes its tables, exits non-zero, and resumes."""

from __future__ import annotations

import csv
import json

from conftest import FAST, REPO, run_cli


def test_sweep_aggregates_survives_failure_and_resumes(tmp_path, cache_dir):
    sweep = tmp_path / "sweep"
    args = ["-m", "+exp=cherry_resnet18_aug_unnorm", "+smoke=cpu", *FAST, "trainer.max_epochs=1",
            "seed=0,1", "dataset.augment=none,bogus", f"hydra.sweep.dir={sweep}"]
    proc = run_cli(args, REPO)
    assert proc.returncode == 1, proc.stderr[-3000:]

    jobs = sorted(p.parent for p in sweep.glob("*/run.json"))
    assert len(jobs) == 4
    status = {json.loads((j / "run.json").read_text())["seed"]: None for j in jobs}
    assert set(status) == {0, 1}
    records = [json.loads((j / "run.json").read_text()) for j in jobs]
    assert sorted(r["status"] for r in records) == ["failed", "failed", "ok", "ok"]
    assert all("unknown augmentation profile 'bogus'" in r["error"] for r in records if r["status"] == "failed")

    with open(sweep / "results.tsv") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    runs = [r for r in rows if r["kind"] == "run"]
    groups = [r for r in rows if r["kind"] == "group"]
    assert len(runs) == 4
    assert sum(r["status"] == "failed" for r in runs) == 2
    ok_group = next(g for g in groups if g["status"] == "ok")
    assert "(2 seeds)" in ok_group["accuracy"]
    assert "FAILED" in (sweep / "results.md").read_text()

    # Rerun into the same folder: ok jobs are skipped, failed ones are tried again.
    ok_dirs = [j for j, r in zip(jobs, records) if r["status"] == "ok"]
    before = {j: (j / "run.json").read_text() for j in ok_dirs}
    proc = run_cli(args, REPO)
    assert proc.returncode == 1
    assert all((j / "run.json").read_text() == before[j] for j in ok_dirs)
    failed_dirs = [j for j, r in zip(jobs, records) if r["status"] == "failed"]
    assert all(json.loads((j / "run.json").read_text())["attempts"] == 2 for j in failed_dirs)

    # The table can be rebuilt from disk alone.
    (sweep / "results.tsv").unlink()
    proc = run_cli([str(sweep)], REPO, module="zoolab.results")
    assert proc.returncode == 1 and (sweep / "results.tsv").is_file()


def test_sweep_over_experiments_gives_each_its_own_folder(tmp_path, cache_dir):
    sweep = tmp_path / "sweep"
    proc = run_cli(["-m", "+exp=cherry_resnet18_aug_unnorm,cherry_mobilenetv3_large", "+smoke=cpu",
                    "dataset.augment=bogus", f"hydra.sweep.dir={sweep}"], REPO)
    assert proc.returncode == 1
    exps = sorted(json.loads(p.read_text())["exp"] for p in sweep.glob("*/run.json"))
    assert exps == ["cherry_mobilenetv3_large", "cherry_resnet18_aug_unnorm"]
