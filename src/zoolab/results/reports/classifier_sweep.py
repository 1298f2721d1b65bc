"""First-generation embedding-classifier sweep ("Classifier Training Report"): its tables from runs.

The sweep is 406 runs = 7 profiles (base, center_std, effective, hardmine, gelu_ln, calib, full) × 2 label
smoothings (0, 0.1) × 29 encoder/MLP combinations (``conf/exp/clf_*``). ``render`` prints, each with the
report's figures beside ours: the profile averages, the encoder-family and label-smoothing averages, the
best single models (overall, DINOv3 SAT, CLIP), the top-10 overall, and the run counts. Runs with
``+stack=minimal`` and the default-recipe run belong to the other reports and are left out here.
"""

from __future__ import annotations

from typing import Sequence

from zoolab.results.reports import _classifier_common as cc

__all__ = ["render", "PROFILES"]

PROFILES = ("base", "center_std", "effective", "hardmine", "gelu_ln", "calib", "full")  # the report's order
LABEL_SMOOTHINGS = ("ls0", "ls0p1")
SWEEP = "first_gen"


def in_sweep(rec: dict) -> bool:
    return rec["profile"] in PROFILES and rec["stack"] != "minimal" and rec["exp"] != cc.DEFAULT_RECIPE


def _best_lines(recs: Sequence[dict]) -> list[str]:
    picks = {"overall": lambda r: True, "DINOv3 SAT": lambda r: r["family"] == "DINOv3 SAT",
             "CLIP": lambda r: r["family"] == "CLIP"}
    body = []
    for name, pred in picks.items():
        label, value = cc.REPORT["best_single"][name]
        body.append([f"Best {name}", cc.best_line(cc.best(recs, pred)), f"`{label}` → {value:.3f}"])
    return cc.md_table(["", "ours", "report"], body)


def render(rows: Sequence[dict]) -> str:
    recs = cc.records(rows, in_sweep)
    if not recs:
        return "No first-generation classifier runs found (profiles base … full, without +stack=minimal).\n"
    combos = {(r["encoder"], r["mlp"]) for r in recs}
    shape = f"{len(PROFILES)} profiles × {len(LABEL_SMOOTHINGS)} LS × 29 combos"
    lines = [*cc.header_lines(recs), "## Classifier sweep (first generation)", "",
             cc.run_count_line(recs, cc.REPORT["runs"][SWEEP], shape),
             f"Here: {len({r['profile'] for r in recs})} profiles × {len({r['ls'] for r in recs})} LS × "
             f"{len(combos)} encoder/MLP combos found.", ""]
    lines += ["### Profile Averages (foreground macro metrics)", "",
              *cc.profile_average_table(recs, SWEEP, PROFILES), ""]
    lines += ["### Encoder family averages (macro_f1_fg)", "", *cc.family_average_table(recs), "",
              "The report states two averages for DINOv3 (LVD): 0.745 in its DINOv3-vs-CLIP line and 0.762 "
              "in its SAT-vs-LVD line; both are shown.", ""]
    lines += ["### Label smoothing averages (macro_f1_fg)", "", *cc.ls_average_table(recs), ""]
    lines += ["### Best single models (macro_f1_fg)", "", *_best_lines(recs), ""]
    lines += ["### Top-10 Overall (macro_f1_fg)", "", *cc.top_table(recs, 10, cc.REPORT["top10"]), ""]
    lines += ["### Calibration and phase timing (ours)", "", *cc.calibration_timing_table(recs, PROFILES), "",
              "ECE: top-label, 15 bins, on the evaluated split after temperature scaling where the profile calibrates; phase seconds: mean wall time per run (run.json), all training = every fit phase together.", ""]
    lines += cc.failed_lines(recs)
    return "\n".join(lines).rstrip() + "\n"
