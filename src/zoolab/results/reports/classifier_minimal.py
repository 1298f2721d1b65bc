"""Minimal-baseline embedding-classifier sweep ("DINOv3 Minimal Baseline Sweep (2025-01-05)").

36 runs with the first-generation stack switched off (``+stack=minimal``): ``baseline_minimal`` and the
five second-generation knobs × DINOv3 ViT-S/16, B/16, L/16 (LVD) × two MLP sizes. ``render`` prints the
same sections as :mod:`classifier_second_gen` (report figures: ``minimal`` in ``conf/profile``), deltas
against ``baseline_minimal``, and the default-recipe confirmation run (exp ``clf_default_recipe``) beside
its ``reported`` figures when that run is among the rows.
"""

from __future__ import annotations

from typing import Sequence

from zoolab.results.reports import _classifier_common as cc
from zoolab.results.reports.classifier_second_gen import summary

__all__ = ["render", "PROFILES"]

# the report's order
PROFILES = ("baseline_minimal", "logit_train", "logit_both", "logit_infer", "arcface", "supcon")
SWEEP = "minimal"
BASELINE = "baseline_minimal"
RECIPE_METRICS = ("macro_f1_fg", "weighted_f1_fg", "macro_precision_fg", "macro_recall_fg")


def in_sweep(rec: dict) -> bool:
    return rec["exp"] != cc.DEFAULT_RECIPE and (rec["stack"] == "minimal" or rec["profile"] == BASELINE)


def recipe_lines(rows: Sequence[dict]) -> list[str]:
    """The default-recipe confirmation run(s): ours beside the exp's ``reported`` figures."""
    recs = cc.records(rows, lambda r: r["exp"] == cc.DEFAULT_RECIPE)
    if not recs:
        return []
    body = []
    for rec in recs:
        for m in RECIPE_METRICS:
            ours = rec["metrics"].get(m) if rec["status"] == "ok" else None
            rep = rec["reported"].get(m)
            delta = ours - rep if isinstance(ours, float) and isinstance(rep, (int, float)) else None
            body.append([f"`{rec['label']}`", m, cc.num(ours, 4), cc.num(rep, 4),
                         cc.num(delta, 4, sign=True)])
    lines = ["### Default recipe confirmation run", "",
             "DINOv3 ViT-L/16 (LVD), MLP [1024, 512], label smoothing 0.1, mixup 0.1, full first-gen "
             "stack, logit_adjustment_mode=both.", "",
             *cc.md_table(["run", "metric", "ours", "report", "Δ"], body), ""]
    lines += ["### Calibration and phase timing (ours)", "", *cc.calibration_timing_table(recs, PROFILES), "",
              "ECE: top-label, 15 bins, on the evaluated split after temperature scaling where the profile calibrates; phase seconds: mean wall time per run (run.json), all training = every fit phase together.", ""]
    return lines + cc.failed_lines(recs)


def render(rows: Sequence[dict]) -> str:
    recs = cc.records(rows, in_sweep)
    lines = cc.header_lines(recs + cc.records(rows, lambda r: r["exp"] == cc.DEFAULT_RECIPE))
    if recs:
        lines += summary(recs, SWEEP, PROFILES, BASELINE, "DINOv3 Minimal Baseline Sweep (+stack=minimal)",
                         cc.REPORT["runs"][SWEEP])
    else:
        lines += ["No minimal-baseline classifier runs found (+stack=minimal or profile baseline_minimal).",
                  ""]
    lines += recipe_lines(rows)
    return "\n".join(lines).rstrip() + "\n"
