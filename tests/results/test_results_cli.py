"""``python -m zoolab.results``: exit 0 only when every run is ok, and reports given by dotted path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import run_cli
from test_aggregate import make_run, metrics_for


def results_cli(*args, cwd: Path, env_extra: dict | None = None):
    return run_cli([str(a) for a in args], cwd, env_extra=env_extra, timeout=120, module="zoolab.results")


@pytest.fixture
def ok_root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    make_run(root / "0", seed=1, metrics={"test": metrics_for(0)})
    return root


def test_a_running_run_is_not_ok(ok_root: Path) -> None:
    make_run(ok_root / "1", seed=2, status="running")
    result = results_cli(ok_root, cwd=ok_root)
    assert result.returncode == 1, result.stderr
    assert "1: still running" in result.stderr
    assert (ok_root / "results.tsv").is_file()


def test_an_unreadable_metrics_file_is_not_ok(ok_root: Path) -> None:
    make_run(ok_root / "1", seed=2)
    (ok_root / "1" / "test_metrics.json").write_text("{truncated")
    result = results_cli(ok_root, cwd=ok_root)
    assert result.returncode == 1, result.stderr
    assert "1: could not read test_metrics.json" in result.stderr


def test_failed_runs_are_named_with_their_error(ok_root: Path) -> None:
    make_run(ok_root / "1", seed=2, status="failed", error="ZoolabError: lr must be > 0")
    result = results_cli(ok_root, cwd=ok_root)
    assert result.returncode == 1
    assert "1: failed: ZoolabError: lr must be > 0" in result.stderr


def test_all_ok_exits_0(ok_root: Path) -> None:
    result = results_cli(ok_root, cwd=ok_root)
    assert result.returncode == 0, result.stderr


def write_renderer(folder: Path) -> Path:
    package = folder / "myreports"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "runs.py").write_text(
        "def render(rows):\n    return f'{len(rows)} runs in my report\\n'\n\n"
        "def exps(rows):\n    return ', '.join(sorted(r['exp'] for r in rows)) + '\\n'\n")
    return folder


@pytest.mark.parametrize(
    ("spec", "expected", "written"),
    [
        ("myreports.runs", "1 runs in my report", "report_myreports.runs.md"),
        ("myreports.runs:exps", "cherry_resnet18_aug_unnorm", "report_myreports.runs_exps.md"),
    ],
)
def test_report_by_dotted_path(ok_root: Path, tmp_path: Path, spec: str, expected: str, written: str) -> None:
    path = write_renderer(tmp_path / "plugins")
    result = results_cli(ok_root, "--report", spec, cwd=ok_root,
                         env_extra={"PYTHONPATH": os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")])})
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
    assert expected in (ok_root / written).read_text()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_pkg.report", "cannot import report module 'no_such_pkg.report'"),
        ("myreports.runs:missing", "'myreports.runs' has no function 'missing'"),
        ("myreports", "'myreports' has no function 'render'"),
    ],
)
def test_unknown_report_is_a_clear_error(ok_root: Path, tmp_path: Path, spec: str, message: str) -> None:
    path = write_renderer(tmp_path / "plugins")
    result = results_cli(ok_root, "--report", spec, cwd=ok_root, env_extra={"PYTHONPATH": str(path)})
    assert result.returncode == 2
    assert message in result.stderr and "cherry" in result.stderr
    assert not (ok_root / "results.tsv").exists()


def test_append_to_keeps_one_growing_table_without_duplicates(tmp_path):
    import csv
    import json
    import subprocess
    import sys

    def sweep(name: str, accuracies: list[float]) -> None:
        for i, acc in enumerate(accuracies):
            run = tmp_path / name / str(i)
            run.mkdir(parents=True)
            (run / "run.json").write_text(json.dumps({"exp": "e", "status": "ok", "seed": i,
                                                      "overrides": ["+exp=e", f"seed={i}"]}))
            (run / "test_metrics.json").write_text(json.dumps({"accuracy": acc}))

    cumulative = tmp_path / "all.tsv"
    sweep("a", [0.5, 0.6])
    sweep("b", [0.7])
    for name in ("a", "b", "a"):  # "a" rendered twice: replaced, not duplicated
        proc = subprocess.run([sys.executable, "-m", "zoolab.results", str(tmp_path / name), "--append-to",
                               str(cumulative)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    with open(cumulative, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert sorted((r["sweep"].rsplit("/", 1)[-1], float(r["accuracy"])) for r in rows) == [
        ("a", 0.5), ("a", 0.6), ("b", 0.7)]
