"""Second-generation embedding-classifier sweep ("DINOv3 Improvements Sweep (2025-01-05)").

36 runs: the ``full`` profile and five second-generation knobs on top of it (arcface, logit_both,
logit_infer, logit_train, supcon) × DINOv3 ViT-S/16, B/16, L/16 (LVD) × two MLP sizes, label smoothing 0.1.
``render`` prints the total, the best run, the profile averages (avg_macro / avg_weighted / best_macro,
ours beside the report's ``second_gen`` figures from ``conf/profile``), the delta of each profile's average
against ``full``, and the best run per backbone and profile. ``+stack=minimal`` runs and the default-recipe
run are left out (see ``classifier_minimal``).
"""

from __future__ import annotations

from typing import Sequence

from zoolab.results.reports import _classifier_common as cc

__all__ = ["render", "PROFILES"]

PROFILES = ("arcface", "full", "logit_both", "logit_infer", "logit_train", "supcon")  # the report's order
SWEEP = "second_gen"
BASELINE = "full"


def in_sweep(rec: dict) -> bool:
    return rec["profile"] in PROFILES and rec["stack"] != "minimal" and rec["exp"] != cc.DEFAULT_RECIPE


def summary(recs: Sequence[dict], sweep: str, order: Sequence[str], baseline: str, title: str,
            reported_runs: int | None) -> list[str]:
    """Sections the profile sweeps share: totals, best overall, profile averages, deltas, per backbone.
    ``reported_runs``: the report's run count for this sweep (None: the report gives none)."""
    reported_best = [cc.reported_avg(recs, p, sweep).get("best_macro_f1_fg") for p in order]
    reported_best = max((v for v in reported_best if v is not None), default=None)
    lines = [f"## {title}", "", cc.run_count_line(recs, reported_runs), "",
             f"Best overall (macro_f1_fg): {cc.best_line(cc.best(recs), 4)} "
             f"(report: {cc.num(reported_best, 4)})", ""]
    lines += ["### Profile averages (macro_f1_fg / weighted_f1_fg) and best per profile", "",
              *cc.profile_summary_table(recs, sweep, order), ""]
    lines += [f"### Delta vs {baseline} average (macro_f1_fg)", "",
              *cc.delta_table(recs, sweep, baseline, order), ""]
    lines += ["### Best per backbone/profile (macro_f1_fg)", "", *cc.best_per_backbone_table(recs), ""]
    lines += ["### Calibration and phase timing (ours)", "", *cc.calibration_timing_table(recs, order), "",
              "ECE: top-label, 15 bins, on the evaluated split after temperature scaling where the profile calibrates; phase seconds: mean wall time per run (run.json), all training = every fit phase together.", ""]
    return lines + cc.failed_lines(recs)


def render(rows: Sequence[dict]) -> str:
    recs = cc.records(rows, in_sweep)
    if not recs:
        return "No second-generation classifier runs found (profiles full, arcface, logit_*, supcon).\n"
    title = "DINOv3 Improvements Sweep (second generation)"
    lines = cc.header_lines(recs) + summary(recs, SWEEP, PROFILES, BASELINE, title, cc.REPORT["runs"][SWEEP])
    return "\n".join(lines).rstrip() + "\n"
