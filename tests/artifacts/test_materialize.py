"""``materialize``: the original ledger's numbers and zoolab's own results.tsv become run folders that
``zoolab.results`` and the sardet report read like runs."""

from __future__ import annotations

import json
import shutil

import pytest

from artifacts_runs import make_run as run_factory
from zoolab.artifacts.__main__ import main as artifacts
from zoolab.results.__main__ import main as results
from zoolab.results.aggregate import find_runs, load_run, write_tables

COLUMNS = ["Source", "EID", "Name", "Config", "Model", "Weights", "Params", "SmokeStatus", "FullStatus", "Run",
           "Split", "MetricsJSON", "coco/bbox_mAP", "coco/bbox_mAP_50", "coco/bbox_mAP_75", "coco/bbox_mAP_s",
           "coco/bbox_mAP_m", "coco/bbox_mAP_l"]
# A few lines in the SAR zoo ledger's format (its E0002, E0004, a smoke run, a visual export, an empty row).
LINES = [
    ("ledger", "E0002", "seed0", "test", "artifacts/work_dirs/E0002_full_seed0/test_metrics.json", 0.513, 0.834),
    ("ledger", "E0002", "seed0", "val", "artifacts/work_dirs/E0002_full_seed0/val_metrics.json", 0.539, 0.866),
    ("ledger", "E0002", "seed1", "val", "artifacts/work_dirs/E0002_full_seed1/val_metrics.json", 0.491, 0.829),
    ("ledger", "E0002", "seed2", "val", "artifacts/work_dirs/E0002_full_seed2/val_metrics.json", 0.539, 0.866),
    ("ledger", "E0002", "", "smoke", "artifacts/work_dirs/E0002_smoke/smoke_metrics.json", 0.000, 0.001),
    ("ledger", "E0004", "", "test", "artifacts/work_dirs/E0004_full/test_metrics.json", 0.483, 0.812),
    ("ledger", "E0004", "", "val", "artifacts/work_dirs/E0004_full/val_metrics.json", 0.507, 0.843),
    ("vr", "E0003", "E0003_linear-probe", "test", "artifacts/visualizations/VR/E0003_linear-probe/test/metrics.json",
     0.384, 0.7),
    ("ledger", "E0021", "", "", "", None, None),
]


def write_ledger(path):
    rows = ["\t".join(COLUMNS)]
    for source, eid, run, split, metrics_json, m, m50 in LINES:
        numbers = ["", "", "", "", "", ""] if m is None else [f"{m:.3f}", f"{m50:.3f}", "0.500", "0.400", "0.600",
                                                                  "0.600"]
        rows.append("\t".join([source, eid, f"row {eid}", "configs/x.py", "", "", "", "[x]", "[x]", run, split,
                               metrics_json, *numbers]))
    path.write_text("\n".join(rows) + "\n")
    return path


def test_ledger_round_trip_through_the_sardet_report(tmp_path, capsys):
    out = tmp_path / "original"
    assert artifacts(["materialize", str(write_ledger(tmp_path / "ledger.tsv")), "--out", str(out)]) == 0
    assert "E0021" in capsys.readouterr().out          # skipped: no numbers
    run = json.loads((out / "artifacts/work_dirs/E0002_full_seed1/run.json").read_text())
    assert run["source"] == "materialized" and run["exp"] == "sardet_lora_r16_fc1fc2" and run["seed"] == 1
    assert json.loads((out / "artifacts/work_dirs/E0002_full_seed0/test_metrics.json").read_text()) == {
        "coco/bbox_mAP": 0.513, "coco/bbox_mAP_50": 0.834, "coco/bbox_mAP_75": 0.5, "coco/bbox_mAP_s": 0.4,
        "coco/bbox_mAP_m": 0.6, "coco/bbox_mAP_l": 0.6}

    assert results([str(out), "--report", "sardet"]) == 0
    report = (out / "report_sardet.md").read_text()
    (e0002,) = [line for line in report.splitlines() if line.startswith("| E0002")]   # smoke run left out
    assert "0.523 ± 0.028 (3 seeds) | 0.523 ± 0.028 (3 seeds)" in e0002          # ours = the original's own
    assert "| E0004 | LoRA r=16, fc2-only | `sardet_lora_r16_fc2` | 0.507 (1 seed) | 0.483 (1 seed) | 0.507 | 0.483" \
        in report
    assert "test 0.384" in report and "smoke runs: embedded" not in report


@pytest.mark.skipif(shutil.which("make") is None, reason="check reads the Makefile with make -n")
def test_check_names_what_the_original_release_lacks(tmp_path, capsys):
    out = tmp_path / "original"
    artifacts(["materialize", str(write_ledger(tmp_path / "ledger.tsv")), "--out", str(out)])
    capsys.readouterr()
    assert artifacts(["check", str(out), "--full", "--exp", "E0004"]) == 1
    text = capsys.readouterr().out
    assert "E0004 sardet_lora_r16_fc2 seed 0: checkpoints, logs (materialized from a table" in text


def test_zoolab_results_tsv_round_trip(tmp_path, capsys):
    runs = tmp_path / "runs"
    run_factory(runs / "a", "sardet_lora_r16_fc2", "E0004", 0, {"val": 0.3, "test": 0.25})
    run_factory(runs / "b", "sardet_lora_r16_fc1fc2", "E0002", 1, {"test": 0.4})
    before = {r["run_dir"]: r["metrics"]["test"] for r in (load_run(d, runs) for d in find_runs(runs))}
    tsv, _ = write_tables(runs, key_metrics=["coco/bbox_mAP", "coco/bbox_mAP_50", "val/coco/bbox_mAP"])
    out = tmp_path / "again"
    assert artifacts(["materialize", str(tsv), "--out", str(out)]) == 0
    after = {r["run_dir"]: r for r in (load_run(d, out) for d in find_runs(out))}
    assert set(after) == set(before)
    for run_dir, metrics in before.items():
        assert after[run_dir]["metrics"]["test"] == {k: metrics[k] for k in ("coco/bbox_mAP", "coco/bbox_mAP_50")}
    assert after["a"]["metrics"]["val"] == {"coco/bbox_mAP": 0.3}
    assert after["a"]["exp_id"] == "E0004" and after["a"]["reported"]["val_mAP"] == 0.507


def test_unknown_table_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\n1\t2\n")
    assert artifacts(["materialize", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "neither zoolab's results.tsv" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
