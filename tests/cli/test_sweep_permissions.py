"""Run and sweep files follow the umask, so teammates can read the results."""

from __future__ import annotations

import os
import stat

import pytest

from conftest import FAST, run_cli


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_run_metrics_and_tables_are_world_readable(tmp_path, cache_dir, umask_022):
    sweep = tmp_path / "sweep"
    proc = run_cli(["-m", "+exp=cherry_resnet18_aug_unnorm", "+smoke=cpu", *FAST, "trainer.max_epochs=1",
                    f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (job,) = [p.parent for p in sweep.glob("*/run.json")]
    files = [job / "run.json", *job.glob("*_metrics.json"), sweep / "results.tsv", sweep / "results.md"]
    assert len(files) >= 4
    assert {f.name: oct(mode(f)) for f in files} == {f.name: oct(0o644) for f in files}
