"""SAR detection zoo report (SARDet-100K): its two tables from run rows, ours beside the ledger's.

"Key results" (ID | Setting | Config | Val mAP | Reported val mAP | Notes) and "LoRA ablations" (ID | Setting |
Config | Val mAP | Test mAP | Reported val mAP | Reported test mAP) hold the experiments whose exp config
says ``report.table: key`` / ``ablation``, in ``report.order``; every other detection experiment of the
zoo goes to a third table ("Other ledger experiments"). Our numbers are COCO bbox mAP of the runs' ``val``
and ``test`` splits, folded over seeds as ``mean ± std (n seeds)``; reported numbers come from each exp
config's ``reported:`` block (the original's ledger). Smoke runs only have ``smoke_metrics.json`` (the
synthetic data's final split): their figure fills the Val column and a note says they are not comparable.
Painted-detection runs (``task=visualize``) are listed after the tables, with their numbers when they have
some. Runs materialized from the original's ledger (``source: materialized``, ``zoolab.artifacts``) are
the original's own: their smoke runs are not the embedded data's, and they are left out of the tables when
the experiment also has full runs.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from zoolab.results.aggregate import error_line, format_mean_std, group_rows

__all__ = ["render"]

SMOKE_NOTE = ("smoke runs: embedded synthetic SAR data, random init, tiny images — numbers are not "
              "comparable to the report")
METRIC = "coco/bbox_mAP"
KEY_COLUMNS = ["ID", "Setting", "Config", "Val mAP", "Reported val mAP", "Notes"]
ABLATION_COLUMNS = ["ID", "Setting", "Config", "Val mAP", "Test mAP", "Reported val mAP", "Reported test mAP",
                    "Trainable params"]
OTHER_COLUMNS = ABLATION_COLUMNS + ["Notes"]
TITLES = {"key": "Key SARDet-100K results (Val)", "ablation": "LoRA ablations (Val/Test)",
          "other": "Other ledger experiments"}


def _natural(text: Any) -> list:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", str(text or ""))]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    def esc(cell: Any) -> str:
        return " ".join(str(cell).split()).replace("|", "\\|") or " "

    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]


def _ours(group: dict, split: str) -> str:
    """``mean ± std (n seeds)`` of the split's mAP; the Val column falls back to a smoke run's figure."""
    if group["status"] == "failed":
        return f"FAILED: {group['errors'][0]}" if group["errors"] else "FAILED"
    stat = group["stats"].get(f"{split}/{METRIC}")
    smoke = False
    if stat is None and split == "val":
        stat, smoke = group["stats"].get(f"smoke/{METRIC}"), True
    if stat is None:
        return "running" if group["status"] == "running" else "-"
    text = format_mean_std(stat["mean"], stat["std"], stat["n"], digits=3)
    text += " (smoke)" if smoke else ""
    return text + (f"; {group['n_failed']} FAILED" if group["n_failed"] else "")


def _reported(group: dict, split: str) -> str:
    rep = group["reported"]
    mean = rep.get(f"{split}_mAP")
    if not _is_number(mean):
        return "-"
    std, n = rep.get(f"{split}_mAP_std"), rep.get(f"{split}_mAP_n_seeds")
    if _is_number(std) and _is_number(n) and n > 1:
        return format_mean_std(mean, std, int(n), digits=3)
    return f"{mean:.3f}"


def _trainable(group: dict) -> str:
    """Trainable parameters in millions, with the backbone's share (adapter included), as in the ledger."""
    params = group["params"]
    trainable = params.get("trainable")
    if not _is_number(trainable):
        return "-"
    backbone = (params.get("per_component") or {}).get("backbone", {}).get("trainable")
    text = f"{trainable / 1e6:.3f}M"
    return text + (f" (backbone {backbone / 1e6:.3f}M)" if _is_number(backbone) else "")


def _config(group: dict) -> str:
    hidden = ("exp", "smoke", "ledger_run")
    extra = " ".join(o for o in group["group_overrides"] if o.partition("=")[0].lstrip("+~") not in hidden)
    return f"`{group['exp'] or '(unknown)'}`" + (f" `{extra}`" if extra else "")


def _notes(group: dict) -> str:
    report = group["report"]
    parts = [str(report["notes"])] if report.get("notes") else []
    if report.get("config"):
        parts.append(f"original: `{report['config']}`")
    split = "smoke" if group["smoke"] else "val"
    dirs = [r["run_dir"] for r in group["rows"] if r["status"] == "ok"]
    if dirs:
        parts.append("metrics: " + ", ".join(f"`{d}/{split}_metrics.json`" for d in dirs))
    return "; ".join(parts) or "-"


def _identity(group: dict) -> list[str]:
    return [str(group["exp_id"] or "-"), str(group["report"].get("setting") or group["exp"] or "-"), _config(group)]


def _row(group: dict, kind: str) -> list[str]:
    if kind == "key":
        return [*_identity(group), _ours(group, "val"), _reported(group, "val"), _notes(group)]
    row = [*_identity(group), _ours(group, "val"), _ours(group, "test"), _reported(group, "val"),
           _reported(group, "test"), _trainable(group)]
    return row + ([_notes(group)] if kind == "other" else [])


def _is_visualization(group: dict) -> bool:
    return group["task"] == "visualize" or group["report"].get("table") == "vis"


def _visual_lines(groups: list[dict]) -> list[str]:
    lines = []
    for group in groups:
        for row in group["rows"]:
            name = f"{group['exp_id'] or '-'} `{group['exp']}`"
            numbers = ", ".join(f"{split} {row['metrics'][split][METRIC]:.3f}" for split in ("val", "test")
                                if _is_number(row["metrics"].get(split, {}).get(METRIC)))
            if row["status"] == "ok" and _materialized(row):
                lines.append(f"- {name}: {numbers or 'no numbers'} (`{row['run_dir']}/`, from the original's export)")
            elif row["status"] == "ok":
                lines.append(f"- {name}: painted detections in `{row['run_dir']}/visualizations/`"
                             + (f"; {numbers}" if numbers else ""))
            else:
                lines.append(f"- {name}: {row['status']} ({error_line(row['error'])})")
    return lines


def _materialized(row: dict) -> bool:
    return row.get("source") == "materialized"


def _drop_materialized_smoke(groups: list[dict]) -> list[dict]:
    """The original's smoke groups of an experiment whose full runs are present too."""
    full = {g["exp"] for g in groups if not g["smoke"]}
    return [g for g in groups if not (g["smoke"] and g["exp"] in full and all(map(_materialized, g["rows"])))]


def render(rows: Sequence[dict]) -> str:
    """Markdown: smoke warning (if any), key results, LoRA ablations, other experiments, visualisations."""
    groups = [g for g in group_rows(rows) if g["task"] in ("detection", "visualize") or
              str(g["exp"] or "").startswith("sardet_")]
    if not groups:
        return "No SAR detection runs found.\n"

    def order(group: dict) -> tuple:
        value = group["report"].get("order")
        return (not _is_number(value), value if _is_number(value) else 0, _natural(group["exp_id"]),
                _natural(group["exp"]), group["group_overrides"])

    groups = _drop_materialized_smoke(groups)
    visual = [g for g in groups if _is_visualization(g)]
    tables: dict[str, list[dict]] = {"key": [], "ablation": [], "other": []}
    for group in sorted((g for g in groups if not _is_visualization(g)), key=order):
        tables.get(group["report"].get("table"), tables["other"]).append(group)

    ours_smoke = any(g["smoke"] and not all(map(_materialized, g["rows"])) for g in groups)
    lines = [f"> **{SMOKE_NOTE}**", ""] if ours_smoke else []
    lines += ["Numbers are COCO bbox mAP. Ours: mean ± sample std over seeds; reported: the original's ledger.", ""]
    for kind, columns in (("key", KEY_COLUMNS), ("ablation", ABLATION_COLUMNS), ("other", OTHER_COLUMNS)):
        if tables[kind]:
            lines += [f"## {TITLES[kind]}", "", *_table(columns, [_row(g, kind) for g in tables[kind]]), ""]
    if visual:
        lines += ["## Visualisations", "", *_visual_lines(visual), ""]
    failed = [f"- {g['exp_id'] or g['exp']} failed (run `{r['run_dir']}`): {error_line(r['error'])}"
              for g in groups if not _is_visualization(g) for r in g["rows"] if r["status"] == "failed"]
    if failed:
        lines += ["## Failed runs", "", *failed, ""]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
