"""PromptSG re-ID report ("Stage-3 PromptSG chronology"): its ViT-B/16 and RN50 tables.

One table per backbone (``report.model`` of each exp), rows in chronology order (``report.variant``
v1 ... v11), with the report's columns Ver. | Configuration moves | Loss / Head / Scheduler | Extra
Optim./Reg. (from the run's resolved config), then our Rank-1 / mAP and Δ mAP against the previous
version beside the reported ones (percent); a ‡ marks a config that runs another value than the
report's text (``report.differs``). Each table is followed by the track's insights (peak version, what
v9 / v10 / v11 changed) and the report ends with its cross-track take-aways, each with the Δ of the
versions behind it, ours beside the report's. ``extra_files`` gives the remarks CSVs. Ours are group means over seeds of the ``test`` split (else ``val``,
else ``smoke``); the spread shown is the std over seeds when a group has several, else the std over the
evaluation splits of the single run (the hand protocol's 10 single-gallery splits). Zero-shot CLIP
baselines (``clip_zeroshot_*``) are reference rows under each table. Reported numbers the reference
notes mark as wrong (``reported.note``) carry a dagger and the note below the table. Runs with extra
overrides (e.g. ``+stack=clipfh_quirks``, ``seed`` excluded) are their own rows, the overrides in Ver.
"""

from __future__ import annotations

import re
from typing import Sequence

from zoolab.results.aggregate import _natural_key, error_line, group_rows, is_number

__all__ = ["render", "SMOKE_NOTE", "BACKBONES"]

SMOKE_NOTE = ("smoke runs: embedded synthetic hands, random-init CLIP at tiny image size — numbers are not "
              "comparable to the report")
BACKBONES = ("ViT-B/16", "RN50")
COLUMNS = ["Ver.", "Configuration moves", "Loss / Head / Scheduler", "Extra Optim./Reg.", "Ours R1 / mAP",
           "Δ mAP vs prev.", "Reported R1 / mAP", "Reported Δ mAP", "Runs", "Status"]
# Cross-track findings of the report, each read from the versions it compares: (finding, version pairs).
FINDINGS = [
    ("Gradient clip and LR are the biggest stabilisers", [("v5", "v6"), ("v7", "v8")]),
    ("Contrastive-only (CE removed) works for RN50, hurts ViT", [("v2", "v3")]),
    ("BNNeck + ArcFace needs tuning or it degrades", [("v3", "v4")]),
    ("Prompt wording tweaks give modest gains", [("v9", "v10")]),
    ("Portrait crops reduce retrieval quality", [("v10", "v11")]),
]
_SPLIT_WORD = {"test": "test", "val": "val", "smoke": "smoke"}



def _stat(group: dict, key: str) -> dict | None:
    return group["stats"].get(f"{group['split']}/{key}") if group["split"] else None


def _percent(group: dict, key: str) -> tuple[str, str]:
    """(``mean ± spread`` in percent, spread kind: seeds | splits | "") for ``key`` of the group's split."""
    stat = _stat(group, key)
    if stat is None:
        return "-", ""
    mean = stat["mean"] * 100
    if stat["n"] > 1:
        return f"{mean:.2f} ± {stat['std'] * 100:.2f}", "seeds"
    split_std = _stat(group, f"{key}_std")
    if split_std is not None:
        return f"{mean:.2f} ± {split_std['mean'] * 100:.2f}", "splits"
    return f"{mean:.2f}", ""


def _map(group: dict) -> float | None:
    stat = _stat(group, "mAP")
    return stat["mean"] * 100 if stat else None


def _reported_map(group: dict) -> float | None:
    rep = group["reported"] or {}
    return float(rep["mAP"]) if is_number(rep.get("mAP")) and not rep.get("note") else None


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def _chronology(groups: list[dict]) -> dict[str, dict]:
    """Plain versions (v1..v11, no extra overrides) of one backbone, by version."""
    return {_plain_version(g): g for g in groups
            if re.fullmatch(r"v\d+", _plain_version(g)) and not _extra_overrides(g)}


def _delta(versions: dict[str, dict], before: str, after: str, value) -> float | None:
    if before not in versions or after not in versions:
        return None
    a, b = value(versions[before]), value(versions[after])
    return None if a is None or b is None else b - a


def _previous(version: str) -> str:
    return f"v{int(version[1:]) - 1}" if re.fullmatch(r"v\d+", version) else ""


def _ours(group: dict) -> str:
    (r1, _), (mean_ap, _) = _percent(group, "rank1"), _percent(group, "mAP")
    if r1 == "-" and mean_ap == "-":
        return "-"
    return f"{r1} / {mean_ap}"


def _reported(group: dict) -> tuple[str, str | None]:
    rep = group["reported"] or {}
    note = rep.get("note") if isinstance(rep.get("note"), str) else None
    r1, mean_ap = rep.get("rank1"), rep.get("mAP")
    if not (is_number(r1) and is_number(mean_ap)):
        return ("- †" if note else "-"), note
    return f"{r1:.2f} / {mean_ap:.2f}" + (" †" if note else ""), note


def _extra_overrides(group: dict) -> list[str]:
    return [o for o in group["group_overrides"]
            if o.partition("=")[0].lstrip("+~") not in ("exp", "smoke", "hydra.run.dir", "hydra.sweep.dir")]


def _backbone(group: dict) -> str:
    return str((group["report"] or {}).get("model") or "other")


def _plain_version(group: dict) -> str:
    return str((group["report"] or {}).get("variant") or "")


def _version(group: dict) -> str:
    version = _plain_version(group) or group["exp"] or "?"
    extra = _extra_overrides(group)
    return version + (f" `{' '.join(extra)}`" if extra else "")


def _runs(group: dict) -> str:
    split = _SPLIT_WORD.get(group["split"] or "", "-")
    splits = _stat(group, "num_splits")
    text = f"{group['n']} × {split}"
    if splits is not None and splits["mean"] > 1:
        text += f" ({splits['mean']:.0f} splits)"
    return text


def _status(group: dict) -> str:
    if group["status"] == "failed":
        return f"FAILED: {group['errors'][0]}"
    if group["status"] == "partial":
        return f"ok ({group['n_failed']} failed: {group['errors'][0]})"
    return group["status"]


def _order(group: dict) -> tuple:
    version = _plain_version(group)
    zero_shot = not re.fullmatch(r"v\d+", version)
    return (zero_shot, _natural_key(version), _natural_key(group["exp"] or ""), group["group_overrides"])


def _esc(cell: str) -> str:
    return " ".join(str(cell).split()).replace("|", "\\|")


def _loss_head_scheduler(report: dict) -> str:
    parts = [str(report[k]) for k in ("loss_head", "scheduler") if report.get(k)]
    return " / ".join(parts) or "-"


def _table(groups: list[dict], notes: dict[str, int], marks: dict[str, int]) -> list[str]:
    versions = _chronology(groups)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " :--- |" * len(COLUMNS)]
    for group in groups:
        report = group["report"] or {}
        reported, note = _reported(group)
        if note:
            number = notes.setdefault(note, len(notes) + 1)
            reported = reported.replace("†", f"†{number}")
        extra = str(report.get("extra") or "-")
        if report.get("differs"):  # the config runs a value other than the report's text says
            extra += f" ‡{marks.setdefault(str(report['differs']), len(marks) + 1)}"
        plain = _plain_version(group)
        version = _version(group)
        ours_delta = reported_delta = "-"
        if not re.fullmatch(r"v\d+", plain):
            version = f"*{version}* (reference)"
        elif not _extra_overrides(group):
            ours_delta = _signed(_delta(versions, _previous(plain), plain, _map))
            reported_delta = _signed(_delta(versions, _previous(plain), plain, _reported_map))
        row = [version, report.get("moves") or "-", _loss_head_scheduler(report), extra, _ours(group), ours_delta,
               reported, reported_delta, _runs(group), _status(group)]
        lines.append("| " + " | ".join(_esc(c) for c in row) + " |")
    return lines


def _insights(backbone: str, groups: list[dict]) -> list[str]:
    """The track's peak version and what v9 / v10 / v11 did, ours beside the report's."""
    versions = _chronology(groups)
    if not versions:
        return []

    def peak(value) -> str:
        scored = {v: value(g) for v, g in versions.items() if value(g) is not None}
        return f"{max(scored, key=scored.get)} (mAP {max(scored.values()):.2f})" if scored else "-"

    lines = [f"#### {backbone} track insights (computed from the runs)", "",
             f"- Peak version: ours {peak(_map)}; report {peak(_reported_map)}."]
    for before, after, what in (("v8", "v9", "longer training (epochs 60, patience 10)"),
                                ("v9", "v10", "surveillance-style prompt"), ("v10", "v11", "portrait 224x128 input")):
        ours, rep = _delta(versions, before, after, _map), _delta(versions, before, after, _reported_map)
        if ours is not None or rep is not None:
            lines.append(f"- {after} ({what}) vs {before}: Δ mAP ours {_signed(ours)}, report {_signed(rep)}.")
    return lines + [""]


def _same_sign(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "-"
    return "yes" if (a > 0) == (b > 0) else "no"


def _takeaways(by_backbone: dict[str, list[dict]]) -> list[str]:
    """The report's cross-track take-aways, each with the Δ mAP of the versions that support it."""
    tracks = {b: _chronology(by_backbone[b]) for b in BACKBONES if b in by_backbone}
    if not any(tracks.values()):
        return []
    header = ["Finding (report)", "Versions", *[f"{b} Δ mAP ours / report / same sign" for b in tracks]]
    lines = ["### Cross-track take-aways (Δ mAP of the versions behind each finding)", "",
             "| " + " | ".join(header) + " |", "|" + " :--- |" * len(header)]
    for finding, pairs in FINDINGS:
        for before, after in pairs:
            cells = []
            for versions in tracks.values():
                ours, rep = _delta(versions, before, after, _map), _delta(versions, before, after, _reported_map)
                cells.append(f"{_signed(ours)} / {_signed(rep)} / {_same_sign(ours, rep)}")
            lines.append("| " + " | ".join(_esc(c) for c in [finding, f"{before} -> {after}", *cells]) + " |")
    return lines + [""]


def remarks_csvs(rows: Sequence[dict]) -> dict[str, str]:
    """The report's remarks files, ``stage3_<track>_remarks.csv`` (model_version, remarks), one row per
    version in chronology order, from each experiment's ``report.remarks`` (else its configuration moves)."""
    import csv
    import io

    files = {}
    groups = _promptsg_groups(rows)
    for backbone, stem in (("ViT-B/16", "vitb16"), ("RN50", "rn50")):
        versions = _chronology([g for g in groups if _backbone(g) == backbone])
        if not versions:
            continue
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["model_version", "remarks"])
        for version in sorted(versions, key=_natural_key):
            report = versions[version]["report"] or {}
            writer.writerow([version, report.get("remarks") or report.get("moves") or ""])
        files[f"stage3_{stem}_remarks.csv"] = text.getvalue()
    return files


def _spread_note(groups: list[dict]) -> str:
    kinds = {_percent(g, "rank1")[1] for g in groups} - {""}
    parts = []
    if "seeds" in kinds:
        parts.append("± sample std over seeds where Runs > 1")
    if "splits" in kinds:
        parts.append("± std over the evaluation splits of one run otherwise")
    return "Ours: Rank-1 / mAP in percent, mean over runs" + (f" ({'; '.join(parts)})" if parts else "") + "."


def _promptsg_groups(rows: Sequence[dict]) -> list[dict]:
    return [g for g in group_rows(rows)
            if g["task"] == "reid" or str(g["exp"] or "").startswith(("promptsg_", "clip_zeroshot_"))]


def extra_files(rows: Sequence[dict]) -> dict[str, str]:
    """Files written beside the report by ``python -m zoolab.results DIR --report promptsg``."""
    return remarks_csvs(rows)


def render(rows: Sequence[dict]) -> str:
    """Markdown: smoke warning (if any), one table per backbone with its insights, the cross-track
    take-aways, the notes on reported numbers and on configs that differ from the report's text."""
    groups = _promptsg_groups(rows)
    if not groups:
        return "No PromptSG / re-ID runs found.\n"
    by_backbone: dict[str, list[dict]] = {}
    for group in groups:
        by_backbone.setdefault(_backbone(group), []).append(group)
    order = [b for b in BACKBONES if b in by_backbone] + sorted(set(by_backbone) - set(BACKBONES))
    lines = [f"> **{SMOKE_NOTE}**", ""] if any(g["smoke"] for g in groups) else []
    notes: dict[str, int] = {}
    marks: dict[str, int] = {}
    for backbone in order:
        members = sorted(by_backbone[backbone], key=_order)
        lines += [f"### {backbone} (Stage-3 PromptSG chronology)", "", *_table(members, notes, marks), "",
                  *_insights(backbone, members)]
    lines += _takeaways(by_backbone)
    lines += [_spread_note(groups), "Reported: the report's \"Final scores\" (10-split mean on 11k Hands "
              "dorsal-right; mAP there is the mean reciprocal rank, single gallery image per identity). "
              "Δ mAP vs prev.: against the previous version of the same track (percentage points). "
              "Extra Optim./Reg.: what the run's config uses (gradient clip, learning rates visual / modules, "
              "weight decay)."]
    lines += [f"- †{n}: {note}" for note, n in notes.items()]
    lines += [f"- ‡{n}: the config differs from the report's text: {text}" for text, n in marks.items()]
    failed = [(g, r) for g in groups for r in g["rows"] if r["status"] == "failed"]
    if failed:
        lines += [""] + [f"- {g['exp_id'] or g['exp']} failed (run `{r['run_dir']}`): "
                         f"{error_line(r['error'])}" for g, r in failed]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
