"""Tests for ``zoolab.results.reports.cherry.render`` on known run folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zoolab.results.aggregate import find_runs, load_run
from zoolab.results.reports.cherry import SMOKE_NOTE, render


def make_run(folder: Path, exp: str, exp_id: str, seed: int, metrics: dict | None, *, status: str = "ok",
             error: str | None = None, split: str = "test", smoke: bool = False, report: dict | None = None,
             reported: dict | None = None) -> None:
    folder.mkdir(parents=True)
    info = {
        "exp": exp, "exp_id": exp_id, "task": "image_cls", "status": status, "error": error, "seed": seed,
        "overrides": [f"+exp={exp}", f"seed={seed}"] + (["+smoke=cpu"] if smoke else []),
        "params": {"total": 11689512, "trainable": 11689512}, "model_size_mb": 42.7, "smoke": smoke,
        "reported": reported or {}, "report": report or {},
    }
    (folder / "run.json").write_text(json.dumps(info))
    if metrics is not None:
        (folder / f"{split}_metrics.json").write_text(json.dumps(metrics))


def cls_metrics(acc: float, f1: float, pit_recall: float, latency: float, **extra) -> dict:
    return {
        "accuracy": acc, "f1": f1, "latency_ms_p50": latency, "latency_threads": 4,
        "cpu_model": "Intel Xeon Test", "confusion_matrix": [[1, 2], [3, 4]],
        "per_class": {"cherry_clean": {"recall": 0.9394}, "cherry_pit": {"recall": pit_recall}},
        **extra,
    }


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    resnet18 = {"model": "ResNet18", "variant": "Augmented (Unnorm)"}
    reported = {"accuracy": 0.9192, "f1": 0.9186, "latency_ms": None}
    # EXP-003: one seed, nested threshold metrics.
    make_run(tmp_path / "r18" / "0", "cherry_resnet18_aug_unnorm", "EXP-003", 1,
             cls_metrics(0.9192, 0.9186, 0.8958, 16.66,
                         threshold={"threshold": 0.25, "recall_at_threshold": 0.99,
                                    "precision_at_threshold": 0.8, "band_fraction": 0.1, "pits_needed": 299},
                         **{"deploy/best_variant": "ort_int8", "deploy/best_latency_ms_p50": 5.2,
                            "deploy/best_speedup": 16.66 / 5.2, "deploy/ort_int8/accuracy_delta": -0.002}),
             report=resnet18, reported=reported)
    # EXP-002A: two seeds, flat threshold keys.
    for seed, acc, f1 in ((1, 0.9405, 0.9397), (2, 0.9415, 0.9407)):
        make_run(tmp_path / "cnx" / str(seed), "cherry_convnextv2_tiny", "EXP-002A", seed,
                 cls_metrics(acc, f1, 0.9258, 58.0, **{"threshold/threshold": 0.5}),
                 report={"model": "ConvNeXt V2-Tiny", "variant": "FCMAE"},
                 reported={"accuracy": 94.21, "f1": 0.9416, "latency_ms": 58})
    # EXP-002B: failed, no metrics.
    make_run(tmp_path / "ls" / "0", "cherry_convnextv2_tiny_ls", "EXP-002B", 1, None, status="failed",
             error="RuntimeError: CUDA out of memory")
    return tmp_path


def rows_of(root: Path) -> list[dict]:
    return [load_run(d, root) for d in find_runs(root)]


def table_rows(text: str, first_column: str) -> list[list[str]]:
    lines = text[text.index(f"| {first_column} |"):].split("\n\n")[0].splitlines()
    return [[c.strip() for c in line.strip().strip("|").split(" | ")] for line in lines]


def test_results_table_known_values(runs: Path) -> None:
    text = render(rows_of(runs))
    table = table_rows(text, "Model")
    header, body = table[0], table[2:]
    assert header == ["Model", "Variant", "Exp", "Split", "Accuracy", "Precision", "Recall", "F1", "Pit recall",
                      "Latency (CPU)", "Best deploy (CPU)", "Params", "Size", "Best epoch", "Train time",
                      "Reported acc", "Reported F1", "Reported latency", "Reported params", "Reported size", "Seeds",
                      "Status"]
    assert [row[2] for row in body] == ["`cherry_convnextv2_tiny`", "`cherry_convnextv2_tiny_ls`",
                                        "`cherry_resnet18_aug_unnorm`"]  # EXP-002A, EXP-002B, EXP-003
    cnx, failed, r18 = (dict(zip(header, row)) for row in body)
    assert r18 == {
        "Model": "ResNet18", "Variant": "Augmented (Unnorm)", "Exp": "`cherry_resnet18_aug_unnorm`",
        "Split": "test", "Accuracy": "91.92%", "Precision": "-", "Recall": "-", "F1": "0.9186",
        "Pit recall": "89.58%", "Latency (CPU)": "~16.7 ms",
        "Best deploy (CPU)": "ort_int8 ~5.2 ms (0.31x, -0.20 pt)", "Params": "11.7M", "Size": "~43 MB",
        "Best epoch": "-", "Train time": "-", "Reported acc": "91.92%", "Reported F1": "0.9186",
        "Reported latency": "-", "Reported params": "-", "Reported size": "-", "Seeds": "1",
        "Status": "ok",  # below EXP-002A's accuracy, which came first
    }
    assert (cnx["Accuracy"], cnx["F1"], cnx["Pit recall"]) == ("94.10 ± 0.07%", "0.9402 ± 0.0007",
                                                                 "92.58 ± 0.00%")
    latency = (cnx["Latency (CPU)"], cnx["Reported acc"], cnx["Reported latency"])
    assert latency == ("~58.0 ms", "94.21%", "~58 ms")  # latency: mean only; reported 94.21 already percent
    assert cnx["Seeds"] == "2" and cnx["Status"] == "Best so far"
    assert cnx["Best deploy (CPU)"] == "-"  # no deployment variants measured
    assert "Best deploy: the fastest" in text
    assert failed["Status"] == "Failed" and failed["Accuracy"] == "-" and failed["Seeds"] == "0"
    assert (failed["Model"], failed["Variant"]) == ("cherry_convnextv2_tiny_ls", "-")  # no report: exp
    assert "CUDA out of memory" in text
    assert "4 thread(s) on Intel Xeon Test" in text and "`test` split" in text
    assert SMOKE_NOTE not in text


def test_threshold_table_nested_and_flat(runs: Path) -> None:
    text = render(rows_of(runs))
    table = table_rows(text, "Model")
    assert text.count("| Model |") == 2
    thr = table_rows(text[text.index("### Pit threshold"):], "Model")
    body = {row[2]: dict(zip(thr[0], row)) for row in thr[2:]}
    assert set(body) == {"`cherry_resnet18_aug_unnorm`", "`cherry_convnextv2_tiny`"}
    r18 = body["`cherry_resnet18_aug_unnorm`"]
    assert (r18["Threshold"], r18["Pit recall @ thr"], r18["Band fraction"], r18["Pits needed"]) == (
        "0.250", "99.00%", "10.00%", "299")
    assert body["`cherry_convnextv2_tiny`"]["Threshold"] == "0.500 ± 0.000"
    assert len(table) == 5


def test_no_threshold_table_without_threshold_metrics(tmp_path: Path) -> None:
    make_run(tmp_path / "a", "cherry_x", "EXP-001", 1, cls_metrics(0.9, 0.9, 0.9, 10.0))
    assert "Pit threshold" not in render(rows_of(tmp_path))


def test_smoke_val_fallback_and_last_class(tmp_path: Path) -> None:
    metrics = {"accuracy": 0.5, "f1": 0.25, "per_class": {"a": {"recall": 0.1}, "b": {"recall": 0.3}}}
    make_run(tmp_path / "s", "cherry_smoke", "EXP-009", 1, metrics, split="val", smoke=True)
    text = render(rows_of(tmp_path))
    assert text.index(SMOKE_NOTE) < text.index("| Model |")
    header, _, values = table_rows(text, "Model")
    row = dict(zip(header, values))
    assert (row["Model"], row["Accuracy"], row["F1"]) == ("cherry_smoke", "50.00%", "0.2500")
    assert row["Pit recall"] == "30.00%"  # no cherry_pit class: the last class
    assert row["Status"] == "Best so far (smoke)" and row["Split"] == "val" and "`val` split" in text
    assert "not measured" in text


def test_empty_rows() -> None:
    assert "No cherry runs" in render([])


def test_baseline_comparison_per_class_table_and_confusion_matrix(tmp_path: Path) -> None:
    def metrics(acc, f1, pit):
        return {"accuracy": acc, "f1": f1, "precision": f1, "recall": acc, "confusion_matrix": [[8, 2], [1, 9]],
                "per_class": {"cherry_clean": {"precision": 0.89, "recall": 0.8, "f1": 0.84, "support": 10},
                              "cherry_pit": {"precision": 0.82, "recall": pit, "f1": 0.86, "support": 10}}}

    make_run(tmp_path / "base", "cherry_resnet50_baseline_fc_only", "EXP-000", 1, metrics(0.80, 0.79, 0.85),
             report={"model": "ResNet50", "variant": "Production (Baseline)", "order": 1, "baseline": True},
             reported={"accuracy": 0.9299, "f1": 0.9293, "params_m": 25.6, "size_mb": 90})
    make_run(tmp_path / "aug", "cherry_resnet50_aug", "EXP-001", 1, metrics(0.85, 0.84, 0.90),
             report={"model": "ResNet50", "variant": "Augmented (Norm)", "order": 2},
             reported={"accuracy": 0.9405, "f1": 0.9397})
    text = render(rows_of(tmp_path))
    header, _, base, aug = table_rows(text, "Model")
    base, aug = dict(zip(header, base)), dict(zip(header, aug))
    assert base["Status"] == "Baseline" and aug["Status"] == "Best so far"
    assert (base["Reported params"], base["Reported size"]) == ("25.6M", "~90 MB")
    assert (aug["Precision"], aug["Recall"]) == ("0.8400", "0.8500")

    comparison = table_rows(text[text.index("### Comparison with the baseline"):], "Model")
    row = dict(zip(comparison[0], comparison[2]))
    assert row["Variant"] == "Augmented (Norm)" and row["Split"] == "test"
    assert (row["Δ Accuracy"], row["Δ F1"], row["Δ Pit recall"]) == ("+5.00 pt", "+0.05", "+5.00 pt")
    assert (row["Reported Δ accuracy"], row["Reported Δ F1"]) == ("+1.06 pt", "+0.01")

    per_class = text[text.index("#### EXP-001"):]
    assert "| cherry_pit | 0.8200 | 0.9000 | 0.8600 | 10 |" in per_class
    assert "| cherry_pit | 1 | 9 |" in per_class  # the confusion matrix row of the true pits
