"""``zoolab.results.reports.sardet.render`` on known run folders: the key, ablation and other tables,
seeds folded, reported numbers beside ours, trainable counts, failures, smoke and painting rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zoolab.results.aggregate import find_runs, load_run
from zoolab.results.reports.sardet import SMOKE_NOTE, render

KEYS = ("mAP", "mAP_50", "mAP_75", "mAP_s", "mAP_m", "mAP_l")


def coco(value: float) -> dict:
    return {f"coco/bbox_{k}": value for k in KEYS}


def make_run(folder: Path, exp: str, exp_id: str, seed: int, splits: dict[str, float] | None, *, task="detection",
             status="ok", error=None, smoke=False, report=None, reported=None, trainable=9_944_410) -> None:
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({
        "exp": exp, "exp_id": exp_id, "task": task, "status": status, "error": error, "seed": seed, "smoke": smoke,
        "overrides": [f"+exp={exp}", f"seed={seed}"] + (["+smoke=cpu"] if smoke else []),
        "params": {"total": 60_000_000, "trainable": trainable,
                   "per_component": {"backbone": {"trainable": trainable - 9_402_970}}},
        "report": report or {}, "reported": reported or {}}))
    for split, value in (splits or {}).items():
        (folder / f"{split}_metrics.json").write_text(json.dumps(coco(value)))


@pytest.fixture
def report(tmp_path: Path) -> str:
    key = {"table": "key", "order": 1, "setting": "LoRA r16 fc1+fc2", "config": "retinanet_lora_r16.py"}
    for seed, val, test in ((0, 0.50, 0.48), (1, 0.52, 0.50), (2, 0.54, 0.52)):
        make_run(tmp_path / f"e2_{seed}", "sardet_lora_r16_fc1fc2", "E0002", seed, {"val": val, "test": test},
                 report=key, reported={"val_mAP": 0.546, "val_mAP_std": 0.002, "val_mAP_n_seeds": 3})
    make_run(tmp_path / "e13", "sardet_lora_r8_fc2", "E0013", 0, {"val": 0.40, "test": 0.39},
             report={"table": "ablation", "order": 5, "setting": "LoRA r8 fc2"},
             reported={"val_mAP": 0.512, "test_mAP": 0.508}, trainable=9_944_410)
    make_run(tmp_path / "e1", "sardet_smoke_r50", "E0001", 0, None, status="failed",
             error="Traceback ...\nRuntimeError: out of memory", report={"table": "other", "notes": "smoke"})
    make_run(tmp_path / "e10", "sardet_vis_linear_probe", "E0010", 0, {"val": 0.31}, task="visualize",
             report={"table": "vis"})
    return render([load_run(d, tmp_path) for d in find_runs(tmp_path)])


def _table_rows(text: str, title: str) -> list[list[str]]:
    section = text.split(f"## {title}")[1].split("\n## ")[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ") and "---" not in line][1:]


def test_key_table_folds_seeds_beside_the_reported_mean(report):
    (row,) = _table_rows(report, "Key SARDet-100K results (Val)")
    assert row[:3] == ["E0002", "LoRA r16 fc1+fc2", "`sardet_lora_r16_fc1fc2`"]
    assert row[3] == "0.520 ± 0.020 (3 seeds)"
    assert row[4] == "0.546 ± 0.002 (3 seeds)"
    assert "original: `retinanet_lora_r16.py`" in row[5]


def test_ablation_table_has_val_test_reported_and_trainable_counts(report):
    (row,) = _table_rows(report, "LoRA ablations (Val/Test)")
    assert row[0] == "E0013" and row[3].startswith("0.400") and row[4].startswith("0.390")
    assert row[5:7] == ["0.512", "0.508"]
    assert row[7] == "9.944M (backbone 0.541M)"


def test_failures_and_paintings_are_listed_and_no_smoke_note_for_full_runs(report):
    (row,) = _table_rows(report, "Other ledger experiments")
    assert row[0] == "E0001" and row[3].startswith("FAILED")
    assert "## Failed runs" in report and "RuntimeError: out of memory" in report
    assert "E0010 `sardet_vis_linear_probe`: painted detections in `e10/visualizations/`; val 0.310" in report
    assert SMOKE_NOTE not in report


def test_smoke_runs_fill_the_val_column_and_carry_the_note(tmp_path):
    make_run(tmp_path / "s", "sardet_linear_probe", "E0003", 0, {"smoke": 0.01}, smoke=True,
             report={"table": "key", "setting": "probe"})
    text = render([load_run(d, tmp_path) for d in find_runs(tmp_path)])
    assert SMOKE_NOTE in text
    (row,) = _table_rows(text, "Key SARDet-100K results (Val)")
    assert row[3] == "0.010 (1 seed) (smoke)"
