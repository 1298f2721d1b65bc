"""``check``: missing pieces of a fabricated run tree give a non-zero exit and the command that makes them."""

from __future__ import annotations

import shutil

import pytest

from artifacts_runs import make_run as run_factory
from zoolab.artifacts.__main__ import main

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="check reads the Makefile with make -n")
EXP = "sardet_lora_r16_fc1fc2"    # E0002: reproduce-sardet sweeps it over seeds 0, 1, 2


def test_missing_pieces_are_named_with_their_command(tmp_path, capsys):
    run_factory(tmp_path / "seeds" / "s0", EXP, "E0002", 0, {"val": 0.5, "test": 0.49})
    run_factory(tmp_path / "seeds" / "s1", EXP, "E0002", 1, {"val": 0.5}, checkpoints=False)
    code = main(["check", str(tmp_path), "--exp", EXP, "--full"])
    out = capsys.readouterr().out
    assert code == 1
    (seed1,) = [line for line in out.splitlines() if line.startswith("- E0002 sardet_lora_r16_fc1fc2 seed 1:")]
    assert "test_metrics.json" in seed1 and "checkpoints" in seed1 and "logs" not in seed1
    assert "E0002 sardet_lora_r16_fc1fc2 seed 2: run" in out
    assert "make reproduce-sardet, or this run alone: python -m zoolab +exp=sardet_lora_r16_fc1fc2 seed=2 " \
           "keep_last_ckpt=false" in out
    assert "seed 0:" not in out                      # complete


def test_complete_tree_exits_zero_and_smoke_runs_are_expected_as_smoke(tmp_path, capsys):
    for seed in (0, 1, 2):
        run_factory(tmp_path / f"s{seed}", EXP, "E0002", seed, {"val": 0.5, "test": 0.49})
    assert main(["check", str(tmp_path), "--exp", EXP, "--full"]) == 0
    assert "Nothing missing." in capsys.readouterr().out
    assert main(["check", str(tmp_path), "--exp", EXP, "--smoke"]) == 1     # the full runs are not smoke twins
    assert "+smoke=cpu" in capsys.readouterr().out


def test_failed_run_and_painting_run(tmp_path, capsys):
    run_factory(tmp_path / "a", "sardet_vis_linear_probe", "E0010", 0, {}, task="visualize", status="failed")
    assert main(["check", str(tmp_path), "--exp", "E0010", "--full"]) == 1
    out = capsys.readouterr().out
    assert "ok run.json" in out and "visual export" in out and "ckpt=<a trained run>" in out


def test_bad_root_is_one_clear_error(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
