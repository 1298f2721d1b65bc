"""Tests for ``zoolab.results.aggregate`` and ``python -m zoolab.results`` on fake run folders."""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from zoolab.results.aggregate import (
    any_failed,
    default_key_metrics,
    find_runs,
    flatten_metrics,
    format_mean_std,
    group_rows,
    load_run,
    write_tables,
)

EXP = "cherry_resnet18_aug_unnorm"
ACCURACY = (0.91, 0.92, 0.93)
F1 = (0.90, 0.915, 0.925)


def make_run(folder: Path, seed: int, status: str = "ok", metrics: dict | None = None,
             error: str | None = None, overrides_in_json: bool = True) -> Path:
    folder.mkdir(parents=True)
    overrides = [f"+exp={EXP}", f"seed={seed}"]
    info = {
        "exp": EXP, "exp_id": "EXP-003", "task": "image_cls", "status": status, "error": error,
        "seed": seed, "config_hash": "3fa9c2d1e0b7", "git_commit": "abc123",
        "seconds": {"setup": 1.0, "fit": 80.0 + seed, "test": 3.0},
        "params": {"total": 11689512, "trainable": 11689512}, "smoke": False, "model_size_mb": 42.7,
        "reported": {"accuracy": 0.9192, "f1": 0.9186, "latency_ms": None, "params_m": 11.7},
        "report": {"model": "ResNet18", "variant": "Augmented (Unnorm)"},
    }
    if overrides_in_json:
        info["overrides"] = overrides
    (folder / "run.json").write_text(json.dumps(info))
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    for split, values in (metrics or {}).items():
        (folder / f"{split}_metrics.json").write_text(json.dumps(values))
    return folder


def metrics_for(i: int) -> dict:
    return {
        "accuracy": ACCURACY[i], "f1": F1[i], "precision": 0.92, "recall": 0.91, "loss": 0.2,
        "latency_ms_p50": 16.0 + i, "latency_threads": 4, "cpu_model": "Test CPU",
        "per_class": {"cherry_clean": {"recall": 0.94}, "cherry_pit": {"recall": 0.89 + i / 100}},
        "confusion_matrix": [[600, 30], [40, 520]],
        "threshold": {"threshold": 0.3, "recall_at_threshold": 0.99, "claim_supported": False},
    }


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """3 ok seeds, 1 failed seed of the same exp (no metrics), 1 corrupt run.json."""
    root = tmp_path / "multirun" / "cherry"
    for i in range(3):
        make_run(root / str(i), seed=i + 1, metrics={"test": metrics_for(i), "val": {"accuracy": 0.5}},
                 overrides_in_json=i != 2)
    make_run(root / "3", seed=4, status="failed",
             error="Traceback (most recent call last):\n  File 'x.py'\nValueError: lr must be > 0\tgot -1")
    (root / "4").mkdir()
    (root / "4" / "run.json").write_text("{not json")
    # Never a run: checkpoints/ and hidden folders are not searched.
    (root / "0" / "checkpoints").mkdir()
    (root / "0" / "checkpoints" / "run.json").write_text("{}")
    return root


def rows_of(root: Path) -> list[dict]:
    return [load_run(d, root) for d in find_runs(root)]


def md_tables(text: str) -> list[list[list[str]]]:
    """Markdown tables as lists of rows of cells (escaped pipes kept inside cells)."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        elif current:
            tables.append(current)
            current = []
    return tables


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zoolab.results", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_find_runs_skips_checkpoints_and_hidden(sweep: Path) -> None:
    assert [p.name for p in find_runs(sweep)] == ["0", "1", "2", "3", "4"]


def test_load_run_fields(sweep: Path) -> None:
    rows = {r["run_dir"]: r for r in rows_of(sweep)}
    assert set(rows) == {"0", "1", "2", "3", "4"}
    ok = rows["2"]
    assert ok["overrides"] == [f"+exp={EXP}", "seed=3"]  # from .hydra/overrides.yaml
    assert ok["group_overrides"] == [f"+exp={EXP}"]
    assert ok["status"] == "ok" and ok["seed"] == 3 and ok["exp_id"] == "EXP-003"
    assert set(ok["metrics"]) == {"test", "val"}
    assert ok["report"]["model"] == "ResNet18" and ok["params"]["total"] == 11689512
    assert rows["3"]["status"] == "failed" and rows["3"]["metrics"] == {}
    corrupt = rows["4"]
    assert corrupt["status"] == "failed" and "could not read run.json" in corrupt["error"]
    assert any_failed(rows.values())
    assert not any_failed([rows["0"], rows["1"]])


def test_flatten_metrics() -> None:
    flat = flatten_metrics({"test": metrics_for(0), "val": {"accuracy": 0.5}, "train": {"loss": 1.0}})
    assert flat["test/accuracy"] == 0.91 and flat["val/accuracy"] == 0.5
    assert flat["test/per_class/cherry_pit/recall"] == pytest.approx(0.89)
    assert flat["test/threshold/threshold"] == 0.3
    assert not any("confusion_matrix" in k or "cpu_model" in k or "claim_supported" in k for k in flat)
    assert "train/loss" not in flat
    assert list(flatten_metrics({"val": {"a": 1}}, splits=("val",))) == ["val/a"]


def test_group_mean_std_hand_computed(sweep: Path) -> None:
    groups = group_rows(rows_of(sweep))
    assert len(groups) == 2
    cherry = next(g for g in groups if g["exp"] == EXP)
    assert (cherry["n"], cherry["n_failed"], cherry["status"], cherry["split"]) == (3, 1, "partial", "test")
    assert cherry["seeds"] == [1, 2, 3]
    acc = cherry["stats"]["test/accuracy"]
    assert acc["n"] == 3
    assert acc["mean"] == pytest.approx(0.92)
    assert acc["std"] == pytest.approx(0.01)  # sqrt((0.01² + 0 + 0.01²) / 2)
    f1 = cherry["stats"]["test/f1"]
    assert f1["mean"] == pytest.approx(0.9133333333)
    assert f1["std"] == pytest.approx(math.sqrt(3.1666666667e-4 / 2))  # Σ(x-m)² = 3.1667e-4
    assert cherry["stats"]["val/accuracy"] == pytest.approx({"mean": 0.5, "std": 0.0, "n": 3})
    assert "lr must be > 0" in cherry["errors"][0]
    broken = next(g for g in groups if g["exp"] is None)
    assert (broken["n"], broken["n_failed"], broken["status"], broken["stats"]) == (0, 1, "failed", {})


def test_single_seed_std_is_zero(sweep: Path) -> None:
    (group,) = group_rows([load_run(sweep / "0", sweep)])
    assert group["stats"]["test/accuracy"] == {"mean": 0.91, "std": 0.0, "n": 1}


def test_format_mean_std() -> None:
    assert format_mean_std(0.9192, 0.0031, 3) == "0.9192 ± 0.0031 (3 seeds)"
    assert format_mean_std(0.9192, 0.0, 1) == "0.9192 (1 seed)"
    assert format_mean_std(16.66, 0.5, 2, digits=1) == "16.7 ± 0.5 (2 seeds)"


def test_default_key_metrics_prefers_and_skips_details(sweep: Path) -> None:
    keys = default_key_metrics(rows_of(sweep))
    assert keys[:4] == ["accuracy", "f1", "precision", "recall"]
    assert "loss" in keys
    assert not any("latency" in k or k.startswith(("per_class", "threshold")) for k in keys)


def test_write_tables(sweep: Path) -> None:
    tsv, md = write_tables(sweep)
    assert (tsv, md) == (sweep / "results.tsv", sweep / "results.md")
    assert not list(sweep.glob(".*.tmp"))
    with tsv.open() as handle:
        records = list(csv.DictReader(handle, delimiter="\t"))
    runs = [r for r in records if r["kind"] == "run"]
    groups = [r for r in records if r["kind"] == "group"]
    assert len(runs) == 5 and len(groups) == 2
    by_dir = {r["run_dir"]: r for r in runs}
    assert by_dir["0"]["accuracy"] == "0.9100" and by_dir["0"]["split"] == "test"
    assert by_dir["0"]["reported/accuracy"] == "0.9192" and by_dir["0"]["params_total"] == "11689512"
    assert by_dir["3"]["status"] == "failed"
    assert "\n" not in by_dir["3"]["error"] and "ValueError: lr must be > 0 got -1" in by_dir["3"]["error"]
    assert "could not read run.json" in by_dir["4"]["error"]
    cherry = next(g for g in groups if g["exp"] == EXP)
    assert cherry["accuracy"] == "0.9200 ± 0.0100 (3 seeds)" and cherry["seed"] == "1,2,3"

    text = md.read_text()
    grouped, per_run = md_tables(text)
    assert all(len(row) == len(grouped[0]) for row in grouped) and len(grouped) == 2 + 2
    assert all(len(row) == len(per_run[0]) for row in per_run) and len(per_run) == 2 + 5
    assert per_run[0][0] == "run" and per_run[2][0] == "[0](0)"
    assert "0.9200 ± 0.0100 (3 seeds)" in text
    assert "FAILED: ValueError: lr must be > 0 got -1" in text
    assert "FAILED: could not read run.json" in text
    assert "## Groups" in text and "## Runs" in text


def test_write_tables_key_metrics_and_explicit_split(sweep: Path) -> None:
    tsv, _ = write_tables(sweep, key_metrics=["val/accuracy", "per_class/cherry_pit/recall"])
    header = tsv.read_text().splitlines()[0].split("\t")
    assert "val/accuracy" in header and "per_class/cherry_pit/recall" in header and "f1" not in header


def test_cli_exit_1_when_a_run_failed(sweep: Path) -> None:
    result = run_cli(sweep)
    assert result.returncode == 1, result.stderr
    assert "0.9200 ± 0.0100 (3 seeds)" in result.stdout
    assert (sweep / "results.tsv").exists() and (sweep / "results.md").exists()


def test_cli_exit_0_when_none_failed_and_report(sweep: Path, tmp_path: Path) -> None:
    ok_root = tmp_path / "ok"
    for i in range(2):
        make_run(ok_root / str(i), seed=i + 1, metrics={"test": metrics_for(i)})
    result = run_cli(ok_root, "--report", "cherry", "--metrics", "accuracy,f1")
    assert result.returncode == 0, result.stderr
    assert "91.50 ± 0.71%" in result.stdout
    assert "91.50 ± 0.71%" in (ok_root / "report_cherry.md").read_text()
    assert (ok_root / "results.md").exists()


def test_cli_exit_2_on_empty_dir_or_unknown_report(tmp_path: Path) -> None:
    result = run_cli(tmp_path)
    assert result.returncode == 2
    assert "run.json" in result.stderr and str(tmp_path.resolve()) in result.stderr
    assert run_cli(tmp_path / "missing").returncode == 2
    result = run_cli(tmp_path, "--report", "no_such_report")
    assert result.returncode == 2 and "cherry" in result.stderr


def test_training_seconds_add_every_fit_phase():
    from zoolab.results.aggregate import training_seconds

    assert training_seconds({"setup": 1.0, "fit": 80.0, "evaluate": 3.0}) == 80.0
    # an embedding classifier: main, hard mining and cRT fits
    assert training_seconds({"train": 10.0, "hard_mining_train": 4.0, "crt_train": 2.0, "calibrate": 1.0}) == 16.0
    # two-stage: stage 1 in its folder, stage 2 in the run folder
    assert training_seconds({"stage1_fit": 30.0, "fit": 20.0}) == 50.0
    assert training_seconds({"setup": 1.0}) is None
