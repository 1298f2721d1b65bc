"""``zoolab.results.reports.promptsg.render`` on known run folders: one table per backbone in chronology
order, seeds folded (or the split spread of one run), reported numbers with their notes, zero-shot
reference rows, failures and the smoke note."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zoolab.results.aggregate import find_runs, load_run
from zoolab.results.reports.promptsg import SMOKE_NOTE, render


def make_run(folder: Path, exp: str, seed: int, metrics: dict | None, *, model="ViT-B/16", variant="v1",
             status="ok", error=None, smoke=False, reported=None, extra=(), report=None) -> None:
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({
        "exp": exp, "exp_id": exp, "task": "reid", "status": status, "error": error, "seed": seed, "smoke": smoke,
        "overrides": [f"+exp={exp}", f"seed={seed}", *extra] + (["+smoke=cpu"] if smoke else []),
        "report": {"model": model, "variant": variant, "moves": "unfreeze 2 blocks", "loss_head": "CE + triplet",
                   **(report or {})},
        "reported": reported or {}}))
    if metrics is not None:
        (folder / f"{'smoke' if smoke else 'test'}_metrics.json").write_text(json.dumps(metrics))


@pytest.fixture
def text(tmp_path: Path) -> str:
    for seed, r1 in ((0, 0.80), (1, 0.84)):
        make_run(tmp_path / f"v2_{seed}", "promptsg_vitb16_v2", seed, {"rank1": r1, "mAP": r1 - 0.1},
                 variant="v2", reported={"rank1": 83.10, "mAP": 75.20},
                 report={"scheduler": "warmup_cosine", "extra": "clip 1.0, lr 2.2e-06 / 2.2e-06, wd 0.0001",
                         "differs": "lr 2.2e-6; the report says 1e-6", "remarks": "Added warm-up, \"SupCon\""})
    make_run(tmp_path / "v3", "promptsg_vitb16_v3", 0, {"rank1": 0.5, "mAP": 0.45}, variant="v3",
             reported={"rank1": 26.35, "mAP": 38.68})
    make_run(tmp_path / "v1", "promptsg_vitb16_v1", 0,
             {"rank1": 0.70, "mAP": 0.60, "rank1_std": 0.03, "mAP_std": 0.02, "num_splits": 10},
             reported={"rank1": 71.0, "mAP": 61.0, "note": "mAP column copied from the wrong run"})
    make_run(tmp_path / "zs", "clip_zeroshot_vitb16", 0, {"rank1": 0.30, "mAP": 0.20}, variant="zero-shot")
    make_run(tmp_path / "rn_v11", "promptsg_rn50_v11", 0, None, model="RN50", variant="v11", status="failed",
             error="Traceback\nValueError: bad prompt")
    return render([load_run(d, tmp_path) for d in find_runs(tmp_path)])


def _rows(text: str, backbone: str) -> list[list[str]]:
    section = text.split(f"### {backbone}")[1].split("\n###")[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ") and ":---" not in line][1:]


def test_chronology_order_seed_fold_and_split_spread(text):
    vit = _rows(text, "ViT-B/16")
    assert [r[0] for r in vit] == ["v1", "v2", "v3", "*zero-shot* (reference)"]
    assert vit[0][4] == "70.00 ± 3.00 / 60.00 ± 2.00"     # one run: the std over its 10 splits
    assert vit[0][8] == "1 × test (10 splits)"
    assert vit[1][4] == "82.00 ± 2.83 / 72.00 ± 2.83"     # two seeds: the sample std
    assert vit[1][6] == "83.10 / 75.20" and vit[1][8] == "2 × test"


def test_scheduler_extra_columns_deltas_and_config_marks(text):
    vit = _rows(text, "ViT-B/16")
    assert vit[0][2] == "CE + triplet" and vit[1][2] == "CE + triplet / warmup_cosine"
    assert vit[1][3] == "clip 1.0, lr 2.2e-06 / 2.2e-06, wd 0.0001 ‡1"
    assert "- ‡1: the config differs from the report's text: lr 2.2e-6; the report says 1e-6" in text
    assert vit[0][5] == "-" and vit[1][5] == "+12.00" and vit[2][5] == "-27.00"   # ours, vs the previous version
    assert vit[1][7] == "-" and vit[2][7] == "-36.52"     # v1's reported mAP carries a note: no Δ from it


def test_insights_and_cross_track_takeaways_are_computed(text):
    assert "- Peak version: ours v2 (mAP 72.00); report v2 (mAP 75.20)." in text
    takeaway = next(line for line in text.splitlines() if line.startswith("| Contrastive-only"))
    assert [c.strip() for c in takeaway.strip("|").split("|")][1:3] == ["v2 -> v3", "-27.00 / -36.52 / yes"]


def test_remarks_csvs_list_each_version(tmp_path):
    import csv
    import io

    from zoolab.results.reports.promptsg import extra_files

    make_run(tmp_path / "a", "promptsg_vitb16_v2", 0, {"rank1": 0.8, "mAP": 0.7}, variant="v2",
             report={"remarks": "Added warm-up, \"SupCon\""})
    make_run(tmp_path / "b", "promptsg_vitb16_v10", 0, {"rank1": 0.8, "mAP": 0.7}, variant="v10")
    files = extra_files([load_run(d, tmp_path) for d in find_runs(tmp_path)])
    assert list(files) == ["stage3_vitb16_remarks.csv"]
    rows = list(csv.reader(io.StringIO(files["stage3_vitb16_remarks.csv"])))
    assert rows == [["model_version", "remarks"], ["v2", 'Added warm-up, "SupCon"'], ["v10", "unfreeze 2 blocks"]]


def test_noted_reported_numbers_carry_a_dagger_and_the_note(text):
    vit = _rows(text, "ViT-B/16")
    assert vit[0][6] == "71.00 / 61.00 †1"
    assert "- †1: mAP column copied from the wrong run" in text


def test_failed_runs_and_backbones_are_separate(text):
    (rn50,) = _rows(text, "RN50")
    assert rn50[0] == "v11" and rn50[4] == "-" and rn50[9].startswith("FAILED")
    assert "ValueError: bad prompt" in text
    assert SMOKE_NOTE not in text


def test_smoke_runs_carry_the_note(tmp_path):
    make_run(tmp_path / "s", "promptsg_vitb16_v1", 0, {"rank1": 0.5, "mAP": 0.4}, smoke=True)
    assert SMOKE_NOTE in render([load_run(d, tmp_path) for d in find_runs(tmp_path)])
