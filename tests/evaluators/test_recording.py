"""From an Evaluation to the run folder: figures go to plots/<name> through RunOutputs.write_bytes
(atomic), metrics come back unchanged, and a figure name cannot leave plots/."""

from __future__ import annotations

import pytest

from zoolab.evaluators.base import Evaluation
from zoolab.families.base import record_evaluation
from zoolab.run_outputs import RunOutputs
from zoolab.runfolder import RunRecord


def _out(tmp_path) -> RunOutputs:
    return RunOutputs(tmp_path / "run", RunRecord(tmp_path / "run"))


def test_figures_are_written_under_plots_and_metrics_returned(tmp_path):
    out = _out(tmp_path)
    metrics = {"accuracy": 0.5}
    assert record_evaluation(Evaluation(metrics, {"a_val.png": b"one", "b_val.png": b"two"}), out) is metrics
    assert (out.run_dir / "plots" / "a_val.png").read_bytes() == b"one"
    record_evaluation(Evaluation({}, {"a_val.png": b"again"}), out)  # replaced in one step
    assert (out.run_dir / "plots" / "a_val.png").read_bytes() == b"again"
    assert sorted(p.name for p in (out.run_dir / "plots").iterdir()) == ["a_val.png", "b_val.png"]  # no temp files


@pytest.mark.parametrize("name", ["../escape.png", "sub/x.png", ""])
def test_a_figure_name_is_a_plain_file_name(tmp_path, name):
    with pytest.raises(ValueError, match="plain file name"):
        record_evaluation(Evaluation({}, {name: b"x"}), _out(tmp_path))


def test_write_bytes_is_atomic_and_makes_folders(tmp_path):
    out = _out(tmp_path)
    path = out.write_bytes("plots/deep/er.bin", bytearray(b"\x00\x01"))
    assert path == out.run_dir / "plots" / "deep" / "er.bin" and path.read_bytes() == b"\x00\x01"
    assert [p.name for p in path.parent.iterdir()] == ["er.bin"]
