"""Tests for zoolab.runfolder (atomic writes, run.json lifecycle) and the sweep-folder resolvers."""

from __future__ import annotations

import json
import math
import os
import stat
import time

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from zoolab.resolvers import MAX_JOB_NAME, _job_dirname, sweep_name
from zoolab.runfolder import RunRecord, read_json, write_bytes_atomic, write_json_atomic, write_text_atomic


def _strict_load(path):
    """json.loads that refuses NaN/Infinity (the stdlib accepts them by default)."""
    def reject(token):
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(path.read_text(), parse_constant=reject)


def test_write_json_atomic_replaces_content_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "sub" / "metrics.json"
    write_json_atomic(path, {"a": 1, "b": [1, 2]})
    assert _strict_load(path) == {"a": 1, "b": [1, 2]}
    write_json_atomic(path, {"c": "x"})
    assert _strict_load(path) == {"c": "x"}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_write_text_atomic_failure_keeps_the_old_file_and_cleans_up(tmp_path):
    path = write_text_atomic(tmp_path / "a.txt", "old")

    class Boom:
        def __str__(self):
            raise RuntimeError("boom")

    with pytest.raises(TypeError):
        write_text_atomic(path, Boom())  # fh.write rejects a non-str
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_non_finite_numbers_become_null_and_scalars_become_numbers(tmp_path):
    data = {
        "nan": float("nan"), "inf": math.inf, "ninf": [-math.inf, 1.5],
        "np_nan": np.float32("nan"), "np_val": np.float64(0.25), "np_int": np.int64(3),
        "t_nan": torch.tensor(float("nan")), "t_val": torch.tensor(2.0),
        "cfg": OmegaConf.create({"x": 1, "y": [2.0]}), 7: "int key",
    }
    path = write_json_atomic(tmp_path / "m.json", data)
    assert _strict_load(path) == {
        "nan": None, "inf": None, "ninf": [None, 1.5], "np_nan": None, "np_val": 0.25, "np_int": 3,
        "t_nan": None, "t_val": 2.0, "cfg": {"x": 1, "y": [2.0]}, "7": "int key",
    }


def test_read_json_returns_none_for_missing_or_broken_files(tmp_path):
    assert read_json(tmp_path / "absent.json") is None
    (tmp_path / "broken.json").write_text("{not json")
    assert read_json(tmp_path / "broken.json") is None


def test_run_record_lifecycle(tmp_path):
    record = RunRecord(tmp_path, exp="cherry_resnet18", overrides=["+exp=cherry_resnet18"], seed=1)
    data = read_json(tmp_path / "run.json")
    assert data["status"] == "running" and data["ended"] is None and data["error"] is None
    assert data["exp"] == "cherry_resnet18" and data["seed"] == 1 and data["attempts"] == 1
    assert data["started"] and data["seconds"] == {}
    assert "git_commit" in data and "git_dirty" in data

    with record.phase("fit"):
        time.sleep(0.05)
    first = read_json(tmp_path / "run.json")["seconds"]["fit"]
    assert first >= 0.05
    with pytest.raises(RuntimeError):
        with record.phase("fit"):
            time.sleep(0.05)
            raise RuntimeError("interrupted")
    second = read_json(tmp_path / "run.json")["seconds"]["fit"]
    assert second >= first + 0.05, "the second fit phase adds to the first, even when it raised"
    with record.phase("evaluate"):
        pass
    assert set(read_json(tmp_path / "run.json")["seconds"]) == {"fit", "evaluate"}

    assert not RunRecord.completed(tmp_path, ["+exp=cherry_resnet18"])
    record.finish("ok")
    data = read_json(tmp_path / "run.json")
    assert data["status"] == "ok" and data["ended"] and data["error"] is None
    assert data["seconds"]["fit"] == second


def test_attempts_increment_when_the_folder_is_reused(tmp_path):
    RunRecord(tmp_path).finish("failed", error="ZoolabError: boom")
    assert read_json(tmp_path / "run.json")["error"] == "ZoolabError: boom"
    second = RunRecord(tmp_path)
    assert second.data["attempts"] == 2 and second.data["status"] == "running" and second.data["error"] is None
    RunRecord(tmp_path)
    assert read_json(tmp_path / "run.json")["attempts"] == 3


@pytest.mark.parametrize(
    ("status", "asked", "expected"),
    [
        ("ok", ["a=1", "b=2"], True),
        ("ok", ["b=2", "a=1"], False),
        ("ok", ["a=1"], False),
        ("ok", ["a=1", "b=2", "c=3"], False),
        ("failed", ["a=1", "b=2"], False),
        ("running", ["a=1", "b=2"], False),
    ],
)
def test_completed_needs_status_ok_and_identical_overrides(tmp_path, status, asked, expected):
    record = RunRecord(tmp_path, overrides=["a=1", "b=2"])
    if status != "running":
        record.finish(status)
    assert RunRecord.completed(tmp_path, asked) is expected


def test_completed_is_false_for_an_empty_folder(tmp_path):
    assert RunRecord.completed(tmp_path, []) is False


def write_multirun_yaml(sweep_dir, task_overrides, exclude_keys=("keep_last_ckpt",)):
    """The multirun-level config as Hydra's sweeper saves it, reduced to what job names read."""
    hydra = {"overrides": {"task": list(task_overrides)},
             "job": {"config": {"override_dirname": {"exclude_keys": list(exclude_keys)}}}}
    (sweep_dir / "multirun.yaml").write_text(OmegaConf.to_yaml({"hydra": hydra}))
    return str(sweep_dir)


@pytest.mark.parametrize(
    ("command_line", "job", "expected"),
    [
        (["+exp=a", "seed=0,1", "optim.lr=1e-3"], ["+exp=a", "seed=1", "optim.lr=1e-3"], "3_seed-1"),
        (["exp=glob(cherry_*)", "dataset.root=/d/x,/d/y"], ["exp=cherry_b", "dataset.root=/d/y"],
         "3_exp-cherry_b__dataset.root-d_y"),
        (["+exp=a", "seed=0"], ["+exp=a", "seed=0"], "3"),
        (["+exp=a", "keep_last_ckpt=true,false"], ["+exp=a", "keep_last_ckpt=false"], "3"),
    ],
)
def test_job_dirname_is_the_number_and_the_swept_keys(tmp_path, command_line, job, expected):
    sweep_dir = write_multirun_yaml(tmp_path, command_line)
    assert _job_dirname(3, job, sweep_dir) == expected


def test_job_dirname_stays_short_and_safe(tmp_path):
    sweep_dir = write_multirun_yaml(tmp_path, ["a=x,y", "b=x,y", "c=x,y"])
    name = _job_dirname(12, ["a=" + "p/q " * 40, "b=y", "c=x"], sweep_dir)
    assert name.startswith("12_a-p_q_p_q") and len(name) <= 3 + MAX_JOB_NAME
    assert "/" not in name and " " not in name and "=" not in name and "," not in name


def test_job_dirname_without_multirun_yaml_is_the_number(tmp_path):
    assert _job_dirname(5, ["seed=1"], str(tmp_path)) == "5"


@pytest.mark.parametrize(
    ("command_line", "expected"),
    [
        (["+exp=cherry_resnet18_aug_unnorm", "seed=0,1"], "cherry_resnet18_aug_unnorm"),
        (["exp=cherry_resnet18_aug_unnorm"], "cherry_resnet18_aug_unnorm"),
        (["+exp=a,b"], "sweep"),
        (["+exp=choice(a,b)"], "sweep"),
        (["+exp=glob(cherry_*)"], "glob-cherry"),
        (["+exp=glob(*_ls,exclude=x)"], "glob-ls"),
        (["+exp=glob(*)"], "glob"),
        (["seed=0,1"], "default"),
    ],
)
def test_sweep_name_from_the_command_line(command_line, expected):
    assert sweep_name(command_line) == expected


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_atomic_writes_follow_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        text = write_text_atomic(tmp_path / "a.txt", "x")
        data = write_bytes_atomic(tmp_path / "b.bin", b"\x00\x01")
        rewritten = write_json_atomic(text, {"a": 1})
    finally:
        os.umask(previous)
    assert data.read_bytes() == b"\x00\x01"
    assert {stat.S_IMODE(p.stat().st_mode) for p in (text, data, rewritten)} == {0o666 & ~umask}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


def test_a_job_folder_can_be_passed_to_ckpt_without_quoting(tmp_path):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sweep_dir = write_multirun_yaml(tmp_path, ["+exp=a", "backbone.name=resnet18,not_a_model", "seed=0,1"])
    name = _job_dirname(0, ["+exp=a", "backbone.name=resnet18", "seed=1"], sweep_dir)
    (override,) = OverridesParser.create().parse_overrides([f"ckpt=multirun/a/stamp/{name}/checkpoints/best.ckpt"])
    assert override.value() == f"multirun/a/stamp/{name}/checkpoints/best.ckpt"
