"""Learning test for the embedding classifiers: on the synthetic DINOv3 ViT-L/16 cache the `full`
profile beats `base` on macro_f1_fg, and both beat a majority-class baseline by a wide margin."""

from __future__ import annotations

import json

import numpy as np

from conftest import REPO, run_cli


def _majority_macro_f1_fg(metrics: dict) -> float:
    # Predicting the largest foreground class everywhere: F1 of that class / number of fg classes.
    per_class = {k: v for k, v in metrics["per_class"].items() if k != "background" and v["support"] > 0}
    supports = np.array([v["support"] for v in per_class.values()], dtype=float)
    total = sum(v["support"] for v in metrics["per_class"].values())
    top = supports.max()
    precision, recall = top / total, 1.0
    return 2 * precision * recall / (precision + recall) / len(per_class)


def test_full_beats_base_beats_majority(tmp_path, cache_dir):
    sweep = tmp_path / "sweep"
    proc = run_cli(["-m", "+exp=clf_dinov3_vitl16_mlp1024_512", "dataset=synthetic_embeddings",
                    "profile=base,full", f"hydra.sweep.dir={sweep}"], REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = {}
    for run in sweep.glob("*/run.json"):
        record = json.loads(run.read_text())
        metrics = json.loads((run.parent / "test_metrics.json").read_text())
        scores[record["report"]["profile"]] = metrics
        assert record["label"].startswith("qwen_dataset_dinov3_vitl16_mlp1024_512_mix0p1_balnorm_ls0p1_")
        assert {"setup", "train", "calibrate", "evaluate"} <= set(record["seconds"])
        assert (run.parent / "plots" / "reliability_test.png").is_file()
    base, full = scores["base"], scores["full"]
    majority = _majority_macro_f1_fg(base)
    print("learning test macro_f1_fg:", {"majority": round(majority, 3), "base": round(base["macro_f1_fg"], 3),
                                         "full": round(full["macro_f1_fg"], 3)})
    assert full["macro_f1_fg"] > base["macro_f1_fg"] + 0.05
    assert base["macro_f1_fg"] > majority + 0.3
    assert full["ece"] < base["ece"]  # temperature calibration is part of `full`
