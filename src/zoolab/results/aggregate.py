"""Aggregate run folders into ``results.tsv`` and ``results.md``.

A run folder is any directory holding ``run.json``; it may also hold ``.hydra/overrides.yaml`` and
``<split>_metrics.json``. Everything here reads files on disk only, so the tables can be rebuilt after a
crashed multirun (Hydra skips ``on_multirun_end`` when a job raises). Failed or unreadable runs become
failed rows; they never stop a table from being written. Seeds fold into ``mean ± std (n seeds)`` groups
keyed by ``(exp, overrides without seed=)``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from zoolab.provenance import provenance_line
from zoolab.runfolder import write_text_atomic

__all__ = [
    "PREFERRED_METRICS", "SPLITS", "any_failed", "default_key_metrics", "error_line", "find_runs",
    "flatten_metrics", "format_mean_std", "group_rows", "grouped_markdown", "load_run", "run_problems",
    "runs_markdown", "write_tables",
]

SPLITS = ("test", "val", "smoke")
# Overrides that never change a run's numbers: seeds are what a group averages over; keep_last_ckpt is
# disk bookkeeping.
NOT_GROUPED = ("seed", "keep_last_ckpt")
PREFERRED_METRICS = (
    "accuracy", "f1", "precision", "recall", "macro_f1_fg",
    "coco/bbox_mAP", "coco/bbox_mAP_50", "rank1", "mAP",
)
MAX_DEFAULT_METRICS = 10
_DETAIL_PREFIXES = ("per_class/", "threshold/", "confusion_matrix", "deploy/")


# ----------------------------------------------------------------------------------------------- helpers
def _natural_key(text: str) -> list:
    """Sort key that orders ``job 2`` before ``job 10``."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text)]


def is_number(value: Any) -> bool:
    """A real number (bools excluded), as metrics and counts in run.json are."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _override_key(override: str) -> str:
    return str(override).partition("=")[0].lstrip("+~")


def _override_value(overrides: Iterable[str], key: str) -> str | None:
    for override in overrides:
        name, sep, value = str(override).partition("=")
        if sep and name.lstrip("+~") == key:
            return value
    return None


def _read_json(path: Path) -> tuple[Any, str | None]:
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, f"could not read {path.name}: {type(exc).__name__}: {exc}"


def _read_overrides_yaml(run_dir: Path) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    return [str(item) for item in data] if isinstance(data, list) else []


def _read_metrics(run_dir: Path) -> tuple[dict[str, dict], list[str]]:
    metrics, warnings = {}, []
    for path in sorted(run_dir.glob("*_metrics.json")):
        data, problem = _read_json(path)
        if problem is None and not isinstance(data, dict):
            problem = f"{path.name} does not hold a JSON object"
        if problem:
            warnings.append(problem)
        else:
            metrics[path.name[: -len("_metrics.json")]] = data
    return metrics, warnings


def _eval_split(keys: Iterable[str]) -> str | None:
    """First of ``SPLITS`` present among ``keys`` (split names or ``split/...`` flattened keys)."""
    present = {key.split("/", 1)[0] for key in keys}
    return next((split for split in SPLITS if split in present), None)


def error_line(error: Any, limit: int = 200) -> str:
    """One line summarising an error text: its first line, or the last one for a traceback."""
    lines = [line.strip() for line in str(error or "").splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    line = lines[-1] if lines[0].startswith("Traceback") else lines[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------- rows and groups
def find_runs(root: Path) -> list[Path]:
    """Every directory under ``root`` (root included) holding ``run.json``, in natural path order.

    Hidden directories (``.hydra``, ``.git``) and ``checkpoints/`` are not searched; symlinks are not
    followed, so a ``latest`` link does not duplicate a run.
    """
    root = Path(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "checkpoints"]
        if "run.json" in filenames:
            found.append(Path(dirpath))
    return sorted(found, key=lambda p: _natural_key(p.as_posix()))


def load_run(run_dir: Path, root: Path | None = None) -> dict:
    """Read one run folder into a row; an unreadable ``run.json`` gives a failed row, never an exception."""
    run_dir = Path(run_dir)
    try:
        rel = run_dir.resolve().relative_to(Path(root).resolve()).as_posix() if root is not None else None
    except ValueError:
        rel = None
    info, problem = _read_json(run_dir / "run.json")
    if problem is None and not isinstance(info, dict):
        problem = "could not read run.json: it does not hold a JSON object"
    info = info if problem is None else {}
    overrides = info.get("overrides")
    overrides = [str(o) for o in overrides] if isinstance(overrides, list) else _read_overrides_yaml(run_dir)
    seed = info.get("seed")
    if seed is None:
        seed = _override_value(overrides, "seed")
        seed = int(seed) if seed is not None and seed.lstrip("-").isdigit() else seed
    smoke = info.get("smoke")
    if not isinstance(smoke, bool):
        smoke = _override_value(overrides, "smoke") is not None
    metrics, warnings = _read_metrics(run_dir)
    return {
        "run_dir": rel if rel is not None else run_dir.as_posix(),
        "exp": info.get("exp") or _override_value(overrides, "exp"),
        "exp_id": info.get("exp_id"),
        "task": info.get("task"),
        "status": "failed" if problem else str(info.get("status") or "unknown"),
        "error": problem or info.get("error"),
        "seed": seed,
        "overrides": overrides,
        "group_overrides": [o for o in overrides if _override_key(o) not in NOT_GROUPED],
        "metrics": metrics,
        "reported": info.get("reported") if isinstance(info.get("reported"), dict) else {},
        "params": info.get("params") if isinstance(info.get("params"), dict) else {},
        "seconds": info.get("seconds") if isinstance(info.get("seconds"), dict) else {},
        "report": info.get("report") if isinstance(info.get("report"), dict) else {},
        "config_hash": info.get("config_hash"),
        "git_commit": info.get("git_commit"),
        "git_dirty": info.get("git_dirty"),
        "git_diff_sha256": info.get("git_diff_sha256"),
        "smoke": smoke,
        "source": info.get("source"),   # "materialized": written from a results table (zoolab.artifacts)
        "model_size_mb": info.get("model_size_mb"),
        "best_epoch": info.get("best_epoch"),
        "started": info.get("started"),
        "ended": info.get("ended"),
        "warnings": warnings,
    }


def flatten_metrics(metrics: dict, splits: Sequence[str] = SPLITS) -> dict[str, float]:
    """Numeric leaves as ``split/key`` (nested dicts as ``split/a/b``); lists, strings and bools skipped."""
    present = {split: metrics[split] for split in splits if isinstance(metrics.get(split), dict)}
    if not present:
        return {}
    (record,) = pd.json_normalize(present, sep="/").to_dict("records")
    return {key: float(value) for key, value in record.items() if is_number(value)}


def _fold(samples: Sequence[dict[str, float]], group_ids: Sequence[int]) -> dict[int, dict[str, dict]]:
    """Per group id: {key: {mean, std (ddof=1; 0.0 for one value), n}} over the samples holding each key.

    Keys keep their order of first appearance within the group.
    """
    keys: dict[int, dict[str, None]] = {}
    for group_id, sample in zip(group_ids, samples):
        keys.setdefault(group_id, {}).update(dict.fromkeys(sample))
    if not any(keys.values()):
        return {group_id: {} for group_id in keys}
    frame = pd.DataFrame.from_records(list(samples))
    table = frame.groupby(list(group_ids)).agg(["mean", "std", "count"]).to_dict("index")
    return {group_id: {key: _stat(table[group_id], key) for key in group_keys}
            for group_id, group_keys in keys.items()}


def _stat(aggregates: dict[tuple[str, str], float], key: str) -> dict:
    n = int(aggregates[(key, "count")])
    std = float(aggregates[(key, "std")]) if n > 1 else 0.0
    return {"mean": float(aggregates[(key, "mean")]), "std": std, "n": n}


def training_seconds(seconds: dict) -> float | None:
    """Seconds spent training: ``fit`` (or ``train``) plus every later phase's ``<phase>_fit`` /
    ``<phase>_train`` (two-stage, hard mining, cRT)."""
    values = [float(v) for k, v in seconds.items()
              if is_number(v) and (k in ("fit", "train") or k.endswith(("_fit", "_train")))]
    return sum(values) if values else None


def _numeric_seconds(row: dict) -> dict[str, float]:
    numbers = {key: float(value) for key, value in row["seconds"].items() if is_number(value)}
    training = training_seconds(row["seconds"])
    return {**numbers, "training": training} if training is not None else numbers


def group_rows(rows: Sequence[dict]) -> list[dict]:
    """Fold rows into groups by ``(exp, sorted overrides without seed=)``, in order of first appearance.

    Each group has ``stats`` = {flattened metric: {mean, std (ddof=1, 0.0 for n=1), n}} over its ok
    rows, ``n`` ok rows, ``n_failed``, ``n_other`` (running / unknown), ``status`` (ok / partial /
    failed / running), ``split`` (first of test, val, smoke with stats) and the member ``rows``.
    """
    members: dict[tuple, list[dict]] = {}
    for row in rows:
        members.setdefault((row["exp"], tuple(sorted(row["group_overrides"]))), []).append(row)
    ok_rows = [(gid, row) for gid, group in enumerate(members.values()) for row in group if row["status"] == "ok"]
    ok_ids = [gid for gid, _ in ok_rows]
    stats = _fold([flatten_metrics(row["metrics"]) for _, row in ok_rows], ok_ids)
    seconds = _fold([_numeric_seconds(row) for _, row in ok_rows], ok_ids)
    return [_group(group, stats.get(gid, {}), seconds.get(gid, {})) for gid, group in enumerate(members.values())]


def _group(group: list[dict], stats: dict[str, dict], seconds: dict[str, dict]) -> dict:
    ok = [r for r in group if r["status"] == "ok"]
    failed = [r for r in group if r["status"] == "failed"]
    rep = ok[0] if ok else group[0]
    status = "ok" if ok and not failed else "partial" if ok else "failed" if failed else "running"
    return {
        "exp": rep["exp"], "exp_id": rep["exp_id"], "task": rep["task"],
        "group_overrides": rep["group_overrides"], "status": status,
        "n": len(ok), "n_failed": len(failed), "n_other": len(group) - len(ok) - len(failed),
        "seeds": [r["seed"] for r in ok], "run_dirs": [r["run_dir"] for r in group],
        "errors": [error_line(r["error"]) for r in failed],
        "stats": stats, "split": _eval_split(stats), "seconds": seconds,
        "reported": rep["reported"], "report": rep["report"], "params": rep["params"],
        "model_size_mb": rep["model_size_mb"], "smoke": any(r["smoke"] for r in group),
        "rows": group,
    }


def format_mean_std(mean: float, std: float, n: int, digits: int = 4) -> str:
    """``0.9192 ± 0.0031 (3 seeds)``; ``0.9192 (1 seed)`` for one seed; ``-`` for none."""
    if n < 1:
        return "-"
    if n == 1:
        return f"{mean:.{digits}f} (1 seed)"
    return f"{mean:.{digits}f} ± {std:.{digits}f} ({n} seeds)"


def any_failed(rows: Sequence[dict]) -> bool:
    return any(row["status"] == "failed" for row in rows)


def _status_problem(row: dict) -> str | None:
    if row["status"] == "failed":
        return f"failed: {error_line(row['error'])}"
    if row["status"] == "running":
        return "still running, or stopped before it finished (run.json says running)"
    return None if row["status"] == "ok" else f"status is {row['status']!r}, not ok"


def run_problems(rows: Sequence[dict]) -> list[str]:
    """``run_dir: why`` for every run that is not a complete ok run (failed, running, unreadable files)."""
    lines = []
    for row in rows:
        reasons = [r for r in (_status_problem(row), *row["warnings"]) if r]
        if reasons:
            lines.append(f"{row['run_dir']}: {'; '.join(reasons)}")
    return lines


# ---------------------------------------------------------------------------------------------- columns
def default_key_metrics(rows: Sequence[dict]) -> list[str]:
    """Preferred metric names first, then other top-level numbers of each row's eval split.

    Per-class, threshold and latency details are left out unless preferred; at most 10 columns.
    """
    seen: list[str] = []
    for row in rows:
        split = _eval_split(row["metrics"])
        for key, value in row["metrics"].get(split, {}).items() if split else ():
            if is_number(value) and key not in seen:
                seen.append(key)
    preferred = [key for key in PREFERRED_METRICS if key in seen]
    rest = [k for k in seen if k not in PREFERRED_METRICS and "latency" not in k.lower()
            and not k.startswith(_DETAIL_PREFIXES)]
    return (preferred + rest)[:MAX_DEFAULT_METRICS]


def _metric_key(split: str | None, metric: str) -> str | None:
    """Flattened key of ``metric``: as given when it names a split, else under ``split``."""
    if metric.split("/", 1)[0] in SPLITS:
        return metric
    return f"{split}/{metric}" if split else None


def _reported_keys(rows: Sequence[dict]) -> list[str]:
    keys: list[str] = []
    for row in rows:
        keys += [k for k, v in row["reported"].items() if is_number(v) and k not in keys]
    return keys


def _number(value: Any) -> str:
    if not is_number(value):
        return "" if value is None else str(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4f}" if 1e-3 <= abs(value) < 1 else f"{value:.6g}"


def _one_line(text: Any) -> str:
    return " ".join(str(text if text is not None else "").split())


def _status_cell(row: dict) -> str:
    cell = f"FAILED: {error_line(row['error'])}" if row["status"] == "failed" else row["status"]
    return cell + "".join(f"; WARNING: {w}" for w in row["warnings"])


def _group_status_cell(group: dict) -> str:
    if group["status"] == "failed":
        return f"FAILED: {group['errors'][0]}"
    if group["status"] == "partial":
        return f"PARTIAL ({group['n_failed']} FAILED: {group['errors'][0]})"
    return group["status"]


def _run_record(row: dict, metrics: list[str], reported: list[str]) -> dict[str, str]:
    flat, split = flatten_metrics(row["metrics"]), _eval_split(row["metrics"])
    record = {
        "kind": "run", "run_dir": row["run_dir"], "exp": row["exp"] or "", "exp_id": row["exp_id"] or "",
        "status": row["status"], "seed": _number(row["seed"]), "split": split or "",
        "overrides": " ".join(row["overrides"]),
    }
    record.update({m: _number(flat.get(_metric_key(split, m))) for m in metrics})
    record.update({f"reported/{k}": _number(row["reported"].get(k)) for k in reported})
    record.update({
        "params_total": _number(row["params"].get("total")),
        "params_trainable": _number(row["params"].get("trainable")),
        "fit_s": _number(training_seconds(row["seconds"])),
        "config_hash": row["config_hash"] or "", "git_commit": row["git_commit"] or "",
        "error": _one_line(row["error"]) if row["status"] == "failed" or row["error"] else "",
        "warnings": _one_line("; ".join(row["warnings"])),
    })
    return record


def _group_record(group: dict, metrics: list[str], reported: list[str]) -> dict[str, str]:
    def cell(key: str | None, digits: int = 4) -> str:
        stat = group["stats"].get(key) if key else None
        return format_mean_std(stat["mean"], stat["std"], stat["n"], digits) if stat else ""

    fit = group["seconds"].get("training")
    record = {
        "kind": "group", "run_dir": "", "exp": group["exp"] or "", "exp_id": group["exp_id"] or "",
        "status": group["status"], "seed": ",".join(_number(s) for s in group["seeds"]),
        "split": group["split"] or "", "overrides": " ".join(group["group_overrides"]),
    }
    record.update({m: cell(_metric_key(group["split"], m)) for m in metrics})
    record.update({f"reported/{k}": _number(group["reported"].get(k)) for k in reported})
    record.update({
        "params_total": _number(group["params"].get("total")),
        "params_trainable": _number(group["params"].get("trainable")),
        "fit_s": format_mean_std(fit["mean"], fit["std"], fit["n"], 1) if fit else "",
        "config_hash": "", "git_commit": "", "error": _one_line("; ".join(group["errors"])), "warnings": "",
    })
    return record


# ----------------------------------------------------------------------------------------------- tables
def _md_table(header: list[str], body: list[list[str]]) -> str:
    def esc(cell: Any) -> str:
        return _one_line(cell).replace("|", "\\|")

    frame = pd.DataFrame([[esc(c) for c in row] for row in body], columns=[esc(h) for h in header])
    return frame.to_markdown(index=False, disable_numparse=True)


def _shown_overrides(overrides: list[str]) -> str:
    return " ".join(o for o in overrides if _override_key(o) not in ("exp", *NOT_GROUPED))


def grouped_markdown(rows: Sequence[dict], key_metrics: list[str] | None = None) -> str:
    """Markdown table with one line per group: ``mean ± std (n seeds)`` per key metric."""
    metrics = list(key_metrics) if key_metrics else default_key_metrics(rows)
    reported = _reported_keys(rows)
    header = ["exp", "exp_id", "overrides", "split", *metrics, *(f"reported/{k}" for k in reported),
              "params", "fit (s)", "seeds", "status"]
    body = []
    for group in group_rows(rows):
        rec = _group_record(group, metrics, reported)
        body.append([rec["exp"] or "(unknown)", rec["exp_id"], _shown_overrides(group["group_overrides"]),
                     rec["split"], *(rec[m] for m in metrics), *(rec[f"reported/{k}"] for k in reported),
                     rec["params_total"], rec["fit_s"], rec["seed"], _group_status_cell(group)])
    return _md_table(header, body)


def runs_markdown(rows: Sequence[dict], key_metrics: list[str] | None = None) -> str:
    """Markdown table with one line per run; the run cell links to its folder."""
    metrics = list(key_metrics) if key_metrics else default_key_metrics(rows)
    header = ["run", "exp", "seed", "overrides", "split", *metrics, "fit (s)", "status"]
    body = []
    for row in rows:
        rec = _run_record(row, metrics, [])
        link = f"[{row['run_dir']}]({row['run_dir'].replace(' ', '%20')})"
        body.append([link, rec["exp"] or "(unknown)", rec["seed"], _shown_overrides(row["group_overrides"]),
                     rec["split"], *(rec[m] for m in metrics), rec["fit_s"],
                     _status_cell(row)])
    return _md_table(header, body)


def write_tables(root: Path, rows: Sequence[dict] | None = None,
                 key_metrics: list[str] | None = None) -> tuple[Path, Path]:
    """Write ``root/results.tsv`` (run lines, then group lines) and ``root/results.md``, atomically."""
    root = Path(root)
    rows = [load_run(d, root) for d in find_runs(root)] if rows is None else list(rows)
    metrics = list(key_metrics) if key_metrics else default_key_metrics(rows)
    reported = _reported_keys(rows)
    records = [_run_record(r, metrics, reported) for r in rows]
    records += [_group_record(g, metrics, reported) for g in group_rows(rows)]
    best = best_trial(root, rows)
    if best is not None and best["row"] is not None:
        records.append({**_run_record(best["row"], metrics, reported), "kind": "best_trial"})
    columns = list(_run_record(rows[0], metrics, reported)) if rows else ["kind", "run_dir", "status"]
    lines = ["\t".join(columns)] + ["\t".join(_one_line(rec.get(c, "")) for c in columns) for rec in records]
    tsv = write_text_atomic(root / "results.tsv", "\n".join(lines) + "\n")

    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed")}
    other = len(rows) - counts["ok"] - counts["failed"]
    summary = f"{len(rows)} runs: {counts['ok']} ok, {counts['failed']} failed" + (
        f", {other} running or unknown" if other else "") + "."
    smoke_note = ("> Smoke runs present: embedded synthetic data, tiny sizes; numbers are not comparable "
                  "to any report.")
    smoke = ["", smoke_note] if any(r["smoke"] for r in rows) else []
    md = "\n".join([
        f"# Results: {root.resolve().name}", "", summary, "", provenance_line(rows), *smoke, "",
        "## Groups (mean ± sample std over seeds)", "", grouped_markdown(rows, metrics), "",
        "## Runs", "", runs_markdown(rows, metrics), "",
        *_best_trial_lines(best),
    ])
    return tsv, write_text_atomic(root / "results.md", md)


# ------------------------------------------------------------------------------------ search sweeps
SEARCH_RESULTS = "optimization_results.yaml"   # written by Hydra's Optuna sweeper into the sweep folder


def best_trial(root: Path, rows: Sequence[dict]) -> dict | None:
    """The search sweeper's best trial of ``root`` (``best_params``, ``best_value``) and the run whose
    overrides carry exactly those values (``row``; None when no run of the folder matches)."""
    path = Path(root) / SEARCH_RESULTS
    if not path.is_file():
        return None
    found = yaml.safe_load(path.read_text()) or {}
    params = found.get("best_params")
    if not isinstance(params, dict):
        return None
    wanted = {key: str(value) for key, value in params.items()}
    row = next((r for r in rows if r["status"] == "ok" and all(
        _override_value(r["overrides"], key) == value for key, value in wanted.items())), None)
    return {"params": params, "value": found.get("best_value"), "row": row}


def _best_trial_lines(best: dict | None) -> list[str]:
    if best is None:
        return []
    params = ", ".join(f"`{k}={v}`" for k, v in best["params"].items())
    where = f"run [{best['row']['run_dir']}]({best['row']['run_dir']})" if best["row"] else "its run is not in this folder"
    return ["## Best trial (search sweeper)", "", f"Objective {_number(best['value'])} with {params}: {where}.", ""]
