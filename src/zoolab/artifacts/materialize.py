"""Run folders from a results table, so published numbers read like runs.

Two table formats are read, told apart by their header:

- zoolab's own ``results.tsv`` (``kind``, ``run_dir``, ``exp``, ``seed``, ``split``, ``overrides``, one
  column per key metric; ``zoolab.results.aggregate.write_tables``): every ``kind=run`` line becomes the
  run folder ``run_dir`` with its split's metrics (a column named ``<split>/<key>`` goes to that split);
- the SAR zoo's original ledger (``Source``, ``EID``, ``Run``, ``Split``, ``MetricsJSON`` and the six
  ``coco/bbox_*`` columns): every line with numbers goes to the folder of its ``MetricsJSON`` path, so the
  original's ``artifacts/work_dirs/E0002_full_seed0/val_metrics.json`` becomes
  ``OUT/artifacts/work_dirs/E0002_full_seed0/val_metrics.json`` beside its ``run.json``.

Each folder's ``run.json`` says ``source: materialized`` and where its numbers came from; ``exp``,
``task``, ``reported`` and ``report`` come from the ``conf/exp`` file of the row's experiment (matched by
name or ``exp_id``), so ``python -m zoolab.results OUT --report sardet`` shows the numbers beside the
reported ones. Ledger lines of a smoke run (``Split`` smoke) are smoke runs; lines of a visual export
(``Source`` vr) are ``task: visualize`` runs; both carry ``ledger_run=<folder name>`` among their
overrides so they never fold into the experiment's own seeds.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from zoolab.artifacts.experiments import Experiment, read_experiments
from zoolab.runfolder import METRICS_SPLITS, write_json_atomic

__all__ = ["DETECTION_KEYS", "MaterializeError", "materialize", "read_table"]

DETECTION_KEYS = ("coco/bbox_mAP", "coco/bbox_mAP_50", "coco/bbox_mAP_75", "coco/bbox_mAP_s",
                  "coco/bbox_mAP_m", "coco/bbox_mAP_l")
_ZOOLAB_FIXED = {"kind", "run_dir", "exp", "exp_id", "status", "seed", "split", "overrides", "params_total",
                 "params_trainable", "fit_s", "config_hash", "git_commit", "error", "warnings"}
_LEDGER_NEEDS = {"EID", "Split", "MetricsJSON", *DETECTION_KEYS}


class MaterializeError(Exception):
    """A table that is neither format, or a line that cannot become a run folder."""


def read_table(path: Path) -> tuple[str, list[dict[str, str]]]:
    """``("zoolab" | "ledger", rows)`` of a tab-separated results table."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
            header = set(rows[0]) if rows else set()
    except (OSError, UnicodeDecodeError) as exc:
        raise MaterializeError(f"cannot read {path}: {exc}") from None
    if {"kind", "run_dir", "exp", "split"} <= header:
        return "zoolab", rows
    if _LEDGER_NEEDS <= header:
        return "ledger", rows
    raise MaterializeError(
        f"{path} is neither zoolab's results.tsv (columns kind, run_dir, exp, split, ...) nor the SAR zoo "
        f"ledger (columns {', '.join(sorted(_LEDGER_NEEDS))}); its columns are: {', '.join(sorted(header)) or 'none'}")


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _seed(text: str | None, default: int | None) -> int | None:
    match = re.fullmatch(r"(?:seed)?(-?\d+)", str(text or "").strip())
    return int(match.group(1)) if match else default


class _Folders:
    """Run folders being assembled: relative path -> run.json fields and per-split metrics."""

    def __init__(self) -> None:
        self.runs: dict[str, dict] = {}

    def add(self, rel: str, info: dict, split: str, metrics: dict[str, float]) -> None:
        run = self.runs.setdefault(rel, {"info": info, "metrics": {}, "lines": 0})
        run["metrics"].setdefault(split, {}).update(metrics)
        run["lines"] += 1


def _run_info(exp: Experiment | None, exp_name: str | None, exp_id: str | None, seed, overrides: list[str],
              smoke: bool, task: str | None, table: Path, fmt: str) -> dict:
    return {
        "exp": exp.name if exp else exp_name, "exp_id": (exp.exp_id if exp else None) or exp_id,
        "task": task or (exp.task if exp else None), "status": "ok", "error": None, "seed": seed,
        "overrides": overrides, "smoke": smoke, "source": "materialized",
        "materialized_from": {"table": table.name, "format": fmt},
        "reported": exp.reported if exp else {}, "report": exp.report if exp else {},
        "seconds": {}, "params": None, "started": None, "ended": None,
    }


def _from_ledger(rows: list[dict], table: Path, by_id: dict[str, Experiment], folders: _Folders) -> list[str]:
    skipped = []
    for line in rows:
        metrics = {key: _number(line.get(key)) for key in DETECTION_KEYS}
        metrics = {k: v for k, v in metrics.items() if v is not None}
        eid, split, source = line["EID"].strip(), line["Split"].strip(), (line.get("Source") or "").strip()
        if not metrics or split not in METRICS_SPLITS or not line["MetricsJSON"].strip():
            skipped.append(f"{eid} ({line.get('Name') or 'no name'}): no {split or 'split'} numbers in the table")
            continue
        exp = by_id.get(eid)
        metrics_path = Path(line["MetricsJSON"].strip())
        folder = metrics_path.parent.parent if source == "vr" else metrics_path.parent
        name = exp.name if exp else f"ledger_{eid}"
        seed = _seed(line.get("Run"), exp.seed if exp else None)
        marker = [f"ledger_run={folder.name}"] if source == "vr" or split == "smoke" else []
        overrides = [f"+exp={name}", *([f"seed={seed}"] if seed is not None else []), *marker]
        task = "visualize" if source == "vr" else None
        info = _run_info(exp, name, eid, seed, overrides, split == "smoke", task, table, "ledger")
        folders.add(folder.as_posix(), info, split, metrics)
    return skipped


def _from_zoolab(rows: list[dict], table: Path, by_name: dict[str, Experiment], folders: _Folders) -> list[str]:
    skipped = []
    for line in rows:
        if line.get("kind") != "run":
            continue
        if line.get("status") != "ok":
            skipped.append(f"{line['run_dir']}: status {line.get('status') or 'unknown'}, not ok")
            continue
        by_split: dict[str, dict[str, float]] = {}
        for column, text in line.items():
            value = _number(text)
            if column in _ZOOLAB_FIXED or column.startswith("reported/") or value is None:
                continue
            head, _, rest = column.partition("/")
            split, key = (head, rest) if head in METRICS_SPLITS and rest else (line["split"], column)
            if split in METRICS_SPLITS:
                by_split.setdefault(split, {})[key] = value
        if not by_split:
            skipped.append(f"{line['run_dir']}: no metric values")
            continue
        exp = by_name.get(line["exp"])
        overrides = (line.get("overrides") or "").split()
        smoke = "smoke" in by_split or any(o.lstrip("+").startswith("smoke=") for o in overrides)
        seed = _seed(line.get("seed"), None)
        info = _run_info(exp, line["exp"] or None, line.get("exp_id") or None, seed, overrides, smoke, None,
                         table, "zoolab")
        if exp is None:
            info["reported"] = {c.split("/", 1)[1]: v for c, t in line.items()
                                if c.startswith("reported/") and (v := _number(t)) is not None}
        for split, metrics in by_split.items():
            folders.add(line["run_dir"], info, split, metrics)
    return skipped


def _safe_rel(rel: str) -> Path:
    path = Path(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise MaterializeError(f"the table names the run folder {rel!r}, which is not a relative path inside "
                               "the output folder")
    return path


def materialize(table: Path, out: Path, conf_dir: Path | None = None) -> tuple[list[Path], list[str]]:
    """Write one run folder per run of ``table`` under ``out``; returns (run folders, skipped lines)."""
    table, out = Path(table), Path(out)
    fmt, rows = read_table(table)
    experiments = read_experiments(conf_dir)
    folders = _Folders()
    if fmt == "ledger":
        skipped = _from_ledger(rows, table, {e.exp_id: e for e in experiments if e.exp_id}, folders)
    else:
        skipped = _from_zoolab(rows, table, {e.name: e for e in experiments}, folders)
    if not folders.runs:
        raise MaterializeError(f"{table} holds no line with numbers to materialize ({len(skipped)} skipped)")
    targets = {rel: out / _safe_rel(rel) for rel in folders.runs}
    clashes = [str(p) for p in targets.values() if (p / "run.json").exists()
               and (p / "run.json").read_text(encoding="utf-8").find('"source": "materialized"') < 0]
    if clashes:
        raise MaterializeError(f"{len(clashes)} run folders already hold a run that was not materialized "
                               f"(first: {clashes[0]}); choose an empty --out folder")
    written = []
    for rel, run in folders.runs.items():
        folder = targets[rel]
        for split, metrics in run["metrics"].items():
            write_json_atomic(folder / f"{split}_metrics.json", metrics)
        write_json_atomic(folder / "run.json", {**run["info"], "materialized_from": {
            **run["info"]["materialized_from"], "lines": run["lines"]}})
        written.append(folder)
    return written, skipped
