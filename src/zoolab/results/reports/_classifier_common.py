"""Shared pieces of the embedding-classifier reports: run records and the report's tables.

A record is one run configuration (a :func:`~zoolab.results.aggregate.group_rows` group, so seeds fold
into a mean): ``label`` (the report-style run label), ``exp``, ``encoder``, ``family``, ``mlp``,
``profile``, ``ls`` (``ls0`` / ``ls0p1``), ``stack`` (``minimal`` with ``+stack=minimal``), ``metrics``
(means over ok seeds of the ``test`` split, else ``val``, else ``smoke``), ``n`` ok seeds, ``status``
(ok / failed / running), ``smoke`` and ``reported_avg`` (the profile's figures from ``conf/profile``).
Only ok records with ``macro_f1_fg`` enter averages; failed ones are listed as failed.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Sequence

from zoolab.results.aggregate import _override_value, format_mean_std, group_rows, is_number

__all__ = ["REPORT", "SMOKE_NOTE", "records", "usable", "header_lines", "failed_lines", "run_count_line",
           "best", "best_line", "reported_avg", "profile_average_table", "family_average_table",
           "ls_average_table", "top_table", "profile_summary_table", "delta_table", "best_per_backbone_table"]

# The few numbers the report states outside the per-profile averages (those live in conf/profile/*.yaml).
REPORT: dict[str, Any] = {
    # "Key Findings (Macro F1, foreground-only)", avg macro_f1_fg over the 406-run first-gen sweep.
    # The report gives DINOv3 (LVD) two different averages: 0.745 in "DINOv3 (LVD) dominates CLIP: avg
    # macro_f1_fg=0.745 vs CLIP=0.579" and 0.762 in "DINOv3 SAT models underperform LVD: avg
    # macro_f1_fg=0.662 vs 0.762 (LVD)". Both are kept, each with its line.
    "family_avg": {"DINOv3 LVD": {"vs CLIP": 0.745, "vs SAT": 0.762},
                   "DINOv3 SAT": {"vs SAT": 0.662}, "CLIP": {"vs CLIP": 0.579}},
    # "Label smoothing 0.1 consistently helps: avg macro_f1_fg ls0=0.689, ls0p1=0.732".
    "ls_avg": {"ls0": 0.689, "ls0p1": 0.732},
    # "Best single models (macro_f1_fg)": (label, macro_f1_fg).
    "best_single": {
        "overall": ("qwen_dataset_dinov3_vitl16_mlp1024_mix0p1_balnorm_ls0p1_full_bg5", 0.845),
        "DINOv3 SAT": ("qwen_dataset_dinov3_vit7b16_sat493m_mlp1536_768_mix0p1_balnorm_ls0p1_effective_bg5",
                       0.767),
        "CLIP": ("qwen_dataset_clip_vitl14_mlp768_384_mix0p1_balnorm_ls0_effective_bg5", 0.712),
    },
    # "Top-10 Overall (macro_f1_fg)": (label, macro_f1_fg, weighted_f1_fg).
    "top10": [
        ("qwen_dataset_dinov3_vitl16_mlp1024_mix0p1_balnorm_ls0p1_full_bg5", 0.845, 0.903),
        ("qwen_dataset_dinov3_vitl16_mlp768_384_mix0p1_balnorm_ls0p1_full_bg5", 0.843, 0.897),
        ("qwen_dataset_dinov3_vitl16_mlp1024_512_mix0p1_balnorm_ls0p1_full_bg5", 0.842, 0.900),
        ("qwen_dataset_dinov3_vitl16_mlp768_384_mix0p1_balnorm_ls0p1_effective_bg5", 0.842, 0.901),
        ("qwen_dataset_dinov3_vits16_mlp384_192_mix0p1_balnorm_ls0p1_full_bg5", 0.841, 0.901),
        ("qwen_dataset_dinov3_vitl16_mlp768_mix0p1_balnorm_ls0p1_full_bg5", 0.840, 0.899),
        ("qwen_dataset_dinov3_vitl16_mlp512_mix0p1_balnorm_ls0p1_effective_bg5", 0.840, 0.900),
        ("qwen_dataset_dinov3_vitl16_mlp1024_mix0p1_balnorm_ls0p1_effective_bg5", 0.839, 0.899),
        ("qwen_dataset_dinov3_vits16_mlp384_mix0p1_balnorm_ls0p1_full_bg5", 0.838, 0.899),
        ("qwen_dataset_dinov3_vitl16_mlp768_mix0p1_balnorm_ls0p1_effective_bg5", 0.837, 0.899),
    ],
    # "Total runs" of each sweep (first-gen: "The sweep covers 406 labelled runs"; the two 2025-01-05 sweeps).
    "runs": {"first_gen": 406, "second_gen": 36, "minimal": 36},
}
SMOKE_NOTE = "smoke runs: embedded synthetic data, tiny sizes — numbers are not comparable to the report"
METRICS = ("macro_f1_fg", "weighted_f1_fg", "macro_recall_fg", "macro_precision_fg")
DEFAULT_RECIPE = "clf_default_recipe"
_EXP_DEFAULT_PROFILE = {DEFAULT_RECIPE: "logit_both"}  # conf/exp/clf_*.yaml; every other clf_ exp: full
_LABEL_RE = re.compile(r"((?:dinov\d|clip|siglip)[a-z0-9_]*?)_(mlp\d+(?:_\d+)*|linear)(?=_|$)")
_EXP_RE = re.compile(r"^clf_(.+?)_(mlp\d+(?:_\d+)*|linear)$")
_LS_RE = re.compile(r"_(ls\d+(?:p\d+)?)_")


# ------------------------------------------------------------------------------------------- records
def family(encoder: str | None) -> str:
    """DINOv3 LVD (vits16 / vitb16 / vitl16), DINOv3 SAT (``*_sat*``), CLIP (``clip_*``), else other."""
    enc = encoder or ""
    if enc.startswith("dinov3"):
        return "DINOv3 SAT" if "_sat" in enc else "DINOv3 LVD"
    return "CLIP" if enc.startswith("clip") else "other"


def _ls_name(value: str) -> str:
    try:
        return "ls" + f"{float(value):g}".replace(".", "p")
    except ValueError:
        return f"ls{value}"


def _record(group: dict) -> dict:
    report, exp, overrides = group["report"], group["exp"] or "", group["group_overrides"]
    split = group["split"]
    metrics = {k.split("/", 1)[1]: s["mean"] for k, s in group["stats"].items()
               if split and k.startswith(split + "/") and k.count("/") == 1}
    label = report.get("label") or next((m["label"] for r in group["rows"] for m in r["metrics"].values()
                                         if isinstance(m.get("label"), str)), None)
    extra = " ".join(o for o in overrides if o.partition("=")[0].lstrip("+~") not in ("exp", "smoke"))
    match = _LABEL_RE.search(label or "") or _EXP_RE.match(exp)
    ls_match, ls_value = _LS_RE.search(label or ""), _override_value(overrides, "loss.label_smoothing")
    profile = (report.get("profile") or _override_value(overrides, "profile")
               or _EXP_DEFAULT_PROFILE.get(exp, "full"))
    macro = group["stats"].get(f"{split}/macro_f1_fg") if split else None
    encoder = match.group(1) if match else None
    return {
        "label": label or f"{exp} {extra}".strip() or "(unknown run)", "exp": exp, "encoder": encoder,
        "family": family(encoder), "mlp": match.group(2) if match else None, "profile": profile,
        "ls": ls_match.group(1) if ls_match else _ls_name(ls_value) if ls_value else "ls0p1",
        "stack": _override_value(overrides, "stack"), "metrics": metrics, "n": group["n"],
        "macro_std": macro["std"] if macro else 0.0, "split": split,
        "status": "ok" if group["status"] in ("ok", "partial") else group["status"],
        "n_failed": group["n_failed"], "errors": group["errors"], "run_dirs": group["run_dirs"],
        "smoke": group["smoke"], "reported": group["reported"],
        "seconds": {k: v["mean"] for k, v in group["seconds"].items()},
        "reported_avg": report.get("reported_avg") if isinstance(report.get("reported_avg"), dict) else {},
    }


def records(rows: Sequence[dict], keep: Callable[[dict], bool] | None = None) -> list[dict]:
    """Records of the embedding-classifier groups among ``rows`` (task embedding_cls / exp clf_*)."""
    out = []
    for group in group_rows(rows):
        if (group["task"] == "embedding_cls" or (group["exp"] or "").startswith("clf_")
                or "label" in group["report"]):
            rec = _record(group)
            if keep is None or keep(rec):
                out.append(rec)
    return out


def usable(recs: Iterable[dict]) -> list[dict]:
    """Records that enter averages: ok (some seed finished) with a macro_f1_fg."""
    return [r for r in recs if r["status"] == "ok" and "macro_f1_fg" in r["metrics"]]


# ------------------------------------------------------------------------------------------ formatting
def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def num(value: Any, digits: int = 3, sign: bool = False) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def md_table(header: Sequence[str], body: Sequence[Sequence[Any]]) -> list[str]:
    def esc(cell: Any) -> str:
        return " ".join(str(cell).split()).replace("|", "\\|")

    return (["| " + " | ".join(header) + " |", "|" + " :--- |" * len(header)]
            + ["| " + " | ".join(esc(c) for c in row) + " |" for row in body])


def _score(rec: dict, digits: int) -> str:
    value = rec["metrics"]["macro_f1_fg"]
    return format_mean_std(value, rec["macro_std"], rec["n"], digits) if rec["n"] > 1 else num(value, digits)


def _avg(recs: Iterable[dict], metric: str = "macro_f1_fg") -> float | None:
    return mean([r["metrics"][metric] for r in usable(recs) if metric in r["metrics"]])


def header_lines(recs: Sequence[dict]) -> list[str]:
    """The smoke warning, when any run is a smoke run, then a note on the split of the metrics."""
    lines = [f"> **WARNING — {SMOKE_NOTE}.**", ""] if any(r["smoke"] for r in recs) else []
    splits = sorted({r["split"] for r in usable(recs)})
    if splits and splits != ["test"]:
        lines += [f"Metrics split: {', '.join(splits)} (test where present, else val, else smoke).", ""]
    return lines


def failed_lines(recs: Sequence[dict]) -> list[str]:
    lines = []
    for r in recs:
        where = ", ".join(r["run_dirs"])
        if r["status"] == "failed":
            lines.append(f"- FAILED `{r['label']}` ({where}): {r['errors'][0]}")
        elif r not in usable([r]):
            lines.append(f"- not counted `{r['label']}` ({where}): status {r['status']}, no macro_f1_fg")
        elif r["n_failed"]:
            lines.append(f"- partial `{r['label']}` ({where}): {r['n_failed']} seed(s) failed: "
                         f"{r['errors'][0]}")
    return ["### Failed or unfinished runs (excluded from averages)", "", *lines, ""] if lines else []


def run_count_line(recs: Sequence[dict], expected: int | None, shape: str = "") -> str:
    ok, failed = len(usable(recs)), sum(r["status"] == "failed" for r in recs)
    other = len(recs) - ok - failed
    text = f"Total runs: {len(recs)} — {ok} ran, {failed} failed"
    text += f", {other} not counted" if other else ""
    if expected is not None:
        missing = expected - len(recs)
        text += f"; the report has {expected}" + (f" ({shape})" if shape else "")
        text += f", {missing} not run here" if missing > 0 else ""
    return text + "."


# ------------------------------------------------------------------------------------------ tables
def best(recs: Iterable[dict], pred: Callable[[dict], bool] = lambda r: True) -> dict | None:
    pool = [r for r in usable(recs) if pred(r)]
    return max(pool, key=lambda r: r["metrics"]["macro_f1_fg"]) if pool else None


def best_line(rec: dict | None, digits: int = 3) -> str:
    return f"`{rec['label']}` → {_score(rec, digits)}" if rec else "-"


def reported_avg(recs: Iterable[dict], profile: str, sweep: str) -> dict:
    """The report's averages for ``profile`` in ``sweep`` (from any record of that profile)."""
    for r in recs:
        if r["profile"] == profile and isinstance(r["reported_avg"].get(sweep), dict):
            return r["reported_avg"][sweep]
    return {}


def _ordered_profiles(recs: Sequence[dict], order: Sequence[str]) -> list[str]:
    seen = [p for p in order if any(r["profile"] == p for r in recs)]
    return seen + sorted({r["profile"] for r in recs} - set(seen))


def profile_average_table(recs: Sequence[dict], sweep: str, order: Sequence[str],
                          digits: int = 3) -> list[str]:
    """Profile | count (ours, report) | each of METRICS (ours, report) | failed."""
    header = ["profile", "count", "count (report)"]
    for m in METRICS:
        header += [m, f"{m} (report)"]
    body = []
    for profile in _ordered_profiles(recs, order):
        mine, rep = [r for r in recs if r["profile"] == profile], reported_avg(recs, profile, sweep)
        row = [profile, len(usable(mine)), num(rep.get("count"), 0)]
        for m in METRICS:
            row += [num(_avg(mine, m), digits), num(rep.get(m), digits)]
        body.append(row + [len(mine) - len(usable(mine))])
    return md_table(header + ["failed"], body)


PHASES = (("train", "train"), ("hard_mining_train", "hard mining"), ("crt_train", "cRT"),
          ("calibrate", "calibrate"), ("evaluate", "evaluate"), ("training", "all training"))


def calibration_timing_table(recs: Sequence[dict], order: Sequence[str], digits: int = 3) -> list[str]:
    """Per profile: mean ECE and mean seconds of each phase (runs where the phase ran), ours only."""
    profiles = _ordered_profiles(recs, order)
    phases = [(key, name) for key, name in PHASES if any(key in r["seconds"] for r in usable(recs))]
    body = []
    for profile in profiles:
        mine = [r for r in usable(recs) if r["profile"] == profile]
        row = [profile, sum(r["n"] for r in mine), num(_avg(mine, "ece"), digits),
               num(mean([r["metrics"]["temperature"] for r in mine if is_number(r["metrics"].get("temperature"))]), 2)]
        for key, _ in phases:
            row.append(num(mean([r["seconds"][key] for r in mine if key in r["seconds"]]), 1))
        body.append(row)
    return md_table(["profile", "runs", "ECE", "temperature", *[f"{name} s" for _, name in phases]], body)


def group_average_table(recs: Sequence[dict], key: Callable[[dict], str], names: Sequence[str],
                        reported: dict[str, str], title: str, digits: int = 3) -> list[str]:
    """``title`` | runs | avg macro_f1_fg (ours) | report (text per group)."""
    body = []
    for name in names:
        mine = [r for r in usable(recs) if key(r) == name]
        body.append([name, len(mine), num(_avg(mine), digits), reported.get(name, "-")])
    return md_table([title, "runs", "avg macro_f1_fg", "avg macro_f1_fg (report)"], body)


def family_average_table(recs: Sequence[dict], digits: int = 3) -> list[str]:
    reported = {name: " / ".join(f"{v:.3f} ({line})" for line, v in lines.items())
                for name, lines in REPORT["family_avg"].items()}
    table = group_average_table(recs, lambda r: r["family"], ["DINOv3 LVD", "DINOv3 SAT", "CLIP"], reported,
                                "encoder family", digits)
    dino = [r for r in usable(recs) if r["family"].startswith("DINOv3")]
    return table + [f"| DINOv3 all (LVD + SAT) | {len(dino)} | {num(_avg(dino), digits)} | - |"]


def ls_average_table(recs: Sequence[dict], digits: int = 3) -> list[str]:
    reported = {k: f"{v:.3f}" for k, v in REPORT["ls_avg"].items()}
    return group_average_table(recs, lambda r: r["ls"], ["ls0", "ls0p1"], reported, "label smoothing", digits)


def top_table(recs: Sequence[dict], n: int = 10, reported: Sequence[tuple] = (),
              digits: int = 3) -> list[str]:
    """Rank | our label | macro_f1_fg (weighted_f1_fg) | the report's label and figures at that rank."""
    ranked = sorted(usable(recs), key=lambda r: (-r["metrics"]["macro_f1_fg"], r["label"]))[:n]
    body = []
    for i in range(max(len(ranked), len(reported) if ranked else 0)):
        r = ranked[i] if i < len(ranked) else None
        rep = reported[i] if i < len(reported) else None
        body.append([i + 1, f"`{r['label']}`" if r else "-",
                     f"{_score(r, digits)} ({num(r['metrics'].get('weighted_f1_fg'), digits)})" if r else "-",
                     f"`{rep[0]}`" if rep else "-", f"{rep[1]:.3f} ({rep[2]:.3f})" if rep else "-"])
    return md_table(["#", "label", "macro_f1_fg (weighted_f1_fg)", "report label", "report"], body)


def _backbone(rec: dict) -> str:
    return (rec["encoder"] or "?").removeprefix("dinov3_")


def best_per_backbone_table(recs: Sequence[dict], digits: int = 4) -> list[str]:
    """Backbone (dinov3_ prefix dropped, as in the report) | profile | best macro_f1_fg | its label."""
    body = []
    for bb, profile in sorted({(_backbone(r), r["profile"]) for r in usable(recs)}):
        top = best(recs, lambda r: _backbone(r) == bb and r["profile"] == profile)
        body.append([bb, profile, _score(top, digits), f"`{top['label']}`"])
    return md_table(["backbone", "profile", "best macro_f1_fg", "label"], body)


def profile_summary_table(recs: Sequence[dict], sweep: str, order: Sequence[str],
                          digits: int = 4) -> list[str]:
    """Profile | runs | avg_macro | avg_weighted | best_macro (ours, report) | best label | failed."""
    body = []
    for profile in _ordered_profiles(recs, order):
        mine, rep = [r for r in recs if r["profile"] == profile], reported_avg(recs, profile, sweep)
        top = best(mine)
        body.append([profile, len(usable(mine)), num(_avg(mine), digits), num(rep.get("macro_f1_fg"), digits),
                     num(_avg(mine, "weighted_f1_fg"), digits), num(rep.get("weighted_f1_fg"), digits),
                     num(top and top["metrics"]["macro_f1_fg"], digits),
                     num(rep.get("best_macro_f1_fg"), digits),
                     f"`{top['label']}`" if top else "-", len(mine) - len(usable(mine))])
    return md_table(["profile", "runs", "avg_macro", "avg_macro (report)", "avg_weighted",
                     "avg_weighted (report)", "best_macro", "best_macro (report)", "best label", "failed"],
                    body)


def delta_table(recs: Sequence[dict], sweep: str, baseline: str, order: Sequence[str],
                digits: int = 4) -> list[str]:
    """Profile | avg macro_f1_fg | delta vs the baseline profile's average (ours, report)."""
    def delta(a: float | None, b: float | None) -> str:
        return num(a - b if a is not None and b is not None else None, digits, sign=True)

    def avg(profile: str) -> float | None:
        return _avg(r for r in recs if r["profile"] == profile)

    base, rep_base = avg(baseline), reported_avg(recs, baseline, sweep).get("macro_f1_fg")
    body = [[p, num(avg(p), digits), delta(avg(p), base),
             delta(reported_avg(recs, p, sweep).get("macro_f1_fg"), rep_base)]
            for p in _ordered_profiles(recs, order) if p != baseline]
    return md_table(["profile", "avg macro_f1_fg", f"Δ vs {baseline} avg", f"Δ vs {baseline} avg (report)"],
                    body)
