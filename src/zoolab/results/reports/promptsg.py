"""PromptSG re-ID report ("Stage-3 PromptSG chronology"): its ViT-B/16 and RN50 tables.

One table per backbone (``report.model`` of each exp), rows in chronology order (``report.variant``
v1 ... v11), with the report's columns Ver. | Configuration moves | Loss / Head, then our Rank-1 / mAP
beside the reported ones (percent). Ours are group means over seeds of the ``test`` split (else ``val``,
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
COLUMNS = ["Ver.", "Configuration moves", "Loss / Head", "Ours R1 / mAP", "Reported R1 / mAP", "Runs",
           "Status"]
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


def _table(groups: list[dict], notes: dict[str, int]) -> list[str]:
    def esc(cell: str) -> str:
        return " ".join(str(cell).split()).replace("|", "\\|")

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " :--- |" * len(COLUMNS)]
    for group in groups:
        report = group["report"] or {}
        reported, note = _reported(group)
        if note:
            number = notes.setdefault(note, len(notes) + 1)
            reported = reported.replace("†", f"†{number}")
        version = _version(group)
        if not re.fullmatch(r"v\d+", _plain_version(group)):
            version = f"*{version}* (reference)"
        row = [version, report.get("moves") or "-", report.get("loss_head") or "-", _ours(group), reported,
               _runs(group), _status(group)]
        lines.append("| " + " | ".join(esc(c) for c in row) + " |")
    return lines


def _spread_note(groups: list[dict]) -> str:
    kinds = {_percent(g, "rank1")[1] for g in groups} - {""}
    parts = []
    if "seeds" in kinds:
        parts.append("± sample std over seeds where Runs > 1")
    if "splits" in kinds:
        parts.append("± std over the evaluation splits of one run otherwise")
    return "Ours: Rank-1 / mAP in percent, mean over runs" + (f" ({'; '.join(parts)})" if parts else "") + "."


def render(rows: Sequence[dict]) -> str:
    """Markdown: smoke warning (if any), one table per backbone, the notes on reported numbers."""
    groups = [g for g in group_rows(rows)
              if g["task"] == "reid" or str(g["exp"] or "").startswith(("promptsg_", "clip_zeroshot_"))]
    if not groups:
        return "No PromptSG / re-ID runs found.\n"
    by_backbone: dict[str, list[dict]] = {}
    for group in groups:
        by_backbone.setdefault(_backbone(group), []).append(group)
    order = [b for b in BACKBONES if b in by_backbone] + sorted(set(by_backbone) - set(BACKBONES))
    lines = [f"> **{SMOKE_NOTE}**", ""] if any(g["smoke"] for g in groups) else []
    notes: dict[str, int] = {}
    for backbone in order:
        members = sorted(by_backbone[backbone], key=_order)
        lines += [f"### {backbone} (Stage-3 PromptSG chronology)", "", *_table(members, notes), ""]
    lines += [_spread_note(groups), "Reported: the report's \"Final scores\" (10-split mean on 11k Hands "
              "dorsal-right; mAP there is the mean reciprocal rank, single gallery image per identity)."]
    lines += [f"- †{n}: {note}" for note, n in notes.items()]
    failed = [(g, r) for g in groups for r in g["rows"] if r["status"] == "failed"]
    if failed:
        lines += [""] + [f"- {g['exp_id'] or g['exp']} failed (run `{r['run_dir']}`): "
                         f"{error_line(r['error'])}" for g, r in failed]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
