"""Newer-knob A/B sweep of the embedding classifiers (the report's benchmark plan B).

The report plans, but does not run, an A/B comparison of its newer knobs against the ``full`` profile on
its top backbones (DINOv3 ViT-L/16 and ViT-B/16 (LVD), CLIP ViT-L/14) × MLP [768, 384] and [1024, 512],
label smoothing 0.1, effective weights. ``make reproduce-classifier-knobs`` runs it with the profiles
``feature_aug`` (noise and channel scaling with an apply probability), ``manifold_mixup``, ``center``
(center loss), ``crt`` (classifier re-training on re-balanced batches), ``supcon`` and ``supcon_cw``
(class-weighted SupCon), plus a logistic-regression row (``clf_dinov3_vitl16_linear``, no hidden layer).
``render`` prints the same sections as :mod:`classifier_second_gen` (the report column is empty except
for ``full`` and ``supcon``, whose second-generation averages it gives) and the linear row beside the MLPs.
"""

from __future__ import annotations

from collections.abc import Sequence

from zoolab.results.reports import _classifier_common as cc
from zoolab.results.reports.classifier_second_gen import summary

__all__ = ["PROFILES", "render"]

PROFILES = ("full", "feature_aug", "manifold_mixup", "center", "crt", "supcon", "supcon_cw")
SWEEP = "second_gen"  # where the report's figures for full and supcon come from
BASELINE = "full"


def in_sweep(rec: dict) -> bool:
    return rec["profile"] in PROFILES and rec["stack"] != "minimal" and rec["exp"] != cc.DEFAULT_RECIPE


def linear_lines(recs: Sequence[dict]) -> list[str]:
    """Per encoder with a linear row and profile: the linear head's macro_f1_fg beside the MLPs' mean and best."""
    body = []
    pairs = {(r["encoder"], r["profile"]) for r in cc.usable(recs) if r["mlp"] == "linear"}
    for encoder, profile in sorted(pairs, key=lambda pair: (pair[0], PROFILES.index(pair[1]))):
        same = [r for r in cc.usable(recs) if r["encoder"] == encoder and r["profile"] == profile]
        linear = [r for r in same if r["mlp"] == "linear"]
        mlps = [r for r in same if r["mlp"] != "linear"]
        top = cc.best(mlps)
        linear_score = cc.mean([r["metrics"]["macro_f1_fg"] for r in linear])
        body.append([encoder, profile, cc.num(linear_score, 4),
                     cc.num(cc.mean([r["metrics"]["macro_f1_fg"] for r in mlps]), 4),
                     cc.num(top and top["metrics"]["macro_f1_fg"], 4), top["mlp"] if top else "-"])
    if not body:
        return []
    return ["### Logistic regression (no hidden layer) vs the MLP heads (macro_f1_fg, ours)", "",
            *cc.md_table(["encoder", "profile", "linear", "MLP avg", "MLP best", "best MLP"], body), ""]


def render(rows: Sequence[dict]) -> str:
    recs = cc.records(rows, in_sweep)
    if not recs:
        return ("No newer-knob classifier runs found (profiles full, feature_aug, manifold_mixup, center, crt, "
                "supcon, supcon_cw).\n")
    lines = cc.header_lines(recs) + summary(recs, SWEEP, PROFILES, BASELINE,
                                            "Newer knobs A/B against full (benchmark plan B)", reported_runs=None)
    lines += linear_lines(recs)
    return "\n".join(lines).rstrip() + "\n"
