"""Cherry pit classifier report ("Model Experiments Log"): its results tables from run rows.

Columns follow the report's benchmark tables (Model | Variant | Accuracy | F1 | Latency (CPU) | Status, plus
precision, recall, pit recall, parameters, size, best epoch and training time from its per-model sections)
with the report's own numbers (``reported:`` in each exp config) beside ours. Ours are group means over
seeds (``± std`` when n > 1) of the ``test`` split, else ``val``, else ``smoke``; the Split column says
which. Status follows the report: ``Baseline`` for the production baseline (``report.baseline``), ``Best
so far`` for a row whose accuracy beats every row before it in report order, ``Failed``. Then: the
comparison with the baseline (Δ of ours, Δ reported), the pit-threshold table, and per experiment the
per-class precision / recall / F1 and the confusion matrix of one run.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from zoolab.results.aggregate import error_line, group_rows, is_number

__all__ = ["render"]

SMOKE_NOTE = "smoke run: embedded synthetic data, tiny sizes — numbers are not comparable to the report"
PIT_CLASS = "cherry_pit"
THRESHOLD_KEYS = ("threshold", "recall_at_threshold", "precision_at_threshold", "band_fraction",
                  "pits_needed")
RESULT_COLUMNS = ["Model", "Variant", "Exp", "Split", "Accuracy", "Precision", "Recall", "F1", "Pit recall",
                  "Latency (CPU)", "Best deploy (CPU)", "Params", "Size", "Best epoch", "Train time", "Reported acc", "Reported F1",
                  "Reported latency", "Reported params", "Reported size", "Seeds", "Status"]
BASELINE_COLUMNS = ["Model", "Variant", "Split", "Δ Accuracy", "Δ F1", "Δ Pit recall", "Reported Δ accuracy",
                    "Reported Δ F1"]
THRESHOLD_COLUMNS = ["Model", "Variant", "Exp", "Threshold", "Pit recall @ thr", "Pit precision @ thr",
                     "Band fraction", "Pits needed", "Seeds"]


def _natural(text: Any) -> list:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", str(text or ""))]



def _stat(group: dict, key: str) -> dict | None:
    return group["stats"].get(f"{group['split']}/{key}") if group["split"] else None


def _fmt(stat: dict | None, digits: int, scale: float = 1.0, prefix: str = "", unit: str = "") -> str:
    """``prefix mean unit`` or ``prefix mean ± std unit`` when the stat has more than one value."""
    if stat is None:
        return "-"
    mean, std = stat["mean"] * scale, stat["std"] * scale
    spread = f" ± {std:.{digits}f}" if stat["n"] > 1 else ""
    return f"{prefix}{mean:.{digits}f}{spread}{unit}"


def _percent(stat: dict | None) -> str:
    """Fractions as percent with 2 decimals; values already above 1 are taken as percent."""
    scale = 1.0 if stat is not None and stat["mean"] > 1.0 else 100.0
    return _fmt(stat, 2, scale, unit="%")


def _latency(stat: dict | None) -> str:
    """Mean only: ``~`` already says the number is approximate, and a seed spread of timings is noise."""
    return f"~{stat['mean']:.1f} ms" if stat else "-"


def _count(value: Any) -> str:
    if not is_number(value):
        return "-"
    if value >= 1e6:
        return f"{value / 1e6:.1f}M"
    return f"{value / 1e3:.1f}K" if value >= 1e3 else str(int(value))


def _pit_recall(group: dict) -> dict | None:
    split = group["split"]
    stat = _stat(group, f"per_class/{PIT_CLASS}/recall")
    if stat is None and split:
        pattern = re.compile(rf"^{re.escape(split)}/per_class/[^/]+/recall$")
        recalls = [key for key in group["stats"] if pattern.match(key)]
        stat = group["stats"][recalls[-1]] if recalls else None
    return stat


def _params(group: dict) -> str:
    total, trainable = group["params"].get("total"), group["params"].get("trainable")
    text = _count(total)
    if is_number(total) and is_number(trainable) and trainable != total:
        text += f" ({_count(trainable)} trainable)"
    return text


def _size(mb: Any) -> str:
    if not is_number(mb):
        return "-"
    return f"~{mb:.0f} MB" if mb >= 10 else f"~{mb:.1f} MB"


def _reported(group: dict) -> list[str]:
    rep = group["reported"]
    acc, f1, latency = rep.get("accuracy"), rep.get("f1"), rep.get("latency_ms")
    params, size = rep.get("params_m"), rep.get("size_mb")
    return [
        _percent({"mean": acc, "std": 0.0, "n": 1}) if is_number(acc) else "-",
        f"{f1:.4f}" if is_number(f1) else "-",
        f"~{latency:g} ms" if is_number(latency) else "-",
        f"{params:g}M" if is_number(params) else "-",
        _size(size),
    ]


def _is_baseline(group: dict) -> bool:
    return bool((group.get("report") or {}).get("baseline"))


def _statuses(groups: list[dict]) -> list[str]:
    """The report's Status per group (in report order): Failed, Baseline, Best so far, or the run status."""
    best, labels = None, []
    for group in groups:
        accuracy = _stat(group, "accuracy")
        value = accuracy["mean"] if accuracy else None
        if group["status"] == "failed":
            label = "Failed"
        elif _is_baseline(group):
            label = "Baseline"
        elif value is not None and (best is None or value > best):
            label = "Best so far"
        else:
            label = {"partial": f"ok ({group['n_failed']} failed)"}.get(group["status"], group["status"])
        if value is not None and group["status"] != "failed":
            best = value if best is None else max(best, value)
        labels.append(label + (" (smoke)" if group["smoke"] else ""))
    return labels


def _best_epoch(group: dict) -> str:
    epochs = sorted({r["best_epoch"] for r in group["rows"] if r["status"] == "ok" and is_number(r.get("best_epoch"))})
    return "/".join(str(int(e)) for e in epochs) or "-"


def _train_time(group: dict) -> str:
    stat = group["seconds"].get("training")
    if not stat:
        return "-"
    return f"{stat['mean'] / 60:.1f} min" if stat["mean"] >= 60 else f"{stat['mean']:.0f} s"


def _names(group: dict) -> list[str]:
    report = group["report"]
    extra = " ".join(o for o in group["group_overrides"] if o.partition("=")[0].lstrip("+~") != "exp")
    exp = f"`{group['exp']}`" if group["exp"] else "(unknown)"
    model = report.get("model") or group["exp"] or "(unknown)"
    return [str(model), str(report.get("variant") or extra or "-"),
            exp + (f" `{extra}`" if extra else "")]


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    def esc(cell: str) -> str:
        return " ".join(str(cell).split()).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + " :--- |" * len(header)]
    return lines + ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]


def _raw_values(group: dict, key: str) -> list[Any]:
    """Distinct raw (possibly non-numeric) values of ``key`` in the group's ok runs' eval split."""
    values = []
    for row in group["rows"]:
        value = row["metrics"].get(group["split"], {}).get(key) if row["status"] == "ok" else None
        if value is not None and value not in values:
            values.append(value)
    return values


def _latency_note(groups: list[dict]) -> str:
    setups: dict[str, list[str]] = {}
    for group in groups:
        if _stat(group, "latency_ms_p50") is None:
            continue
        threads = "/".join(f"{t:g}" if is_number(t) else str(t)
                           for t in _raw_values(group, "latency_threads"))
        cpu = " / ".join(str(c) for c in _raw_values(group, "cpu_model")) or "unknown CPU"
        setup = f"{threads or '?'} thread(s) on {cpu}"
        setups.setdefault(setup, []).append(group["exp_id"] or group["exp"] or "?")
    if not setups:
        return "Latency (CPU): not measured in these runs."
    deploy = "" if not any(_raw_values(g, "deploy/best_variant") for g in groups) else (
              "; Best deploy: the fastest of the run's deployment variants (zoolab.deploy) within 0.5 accuracy "
              "points of fp32 on val and agreeing with it on >= 99% of val images, as p50, its latency ratio to "
              "fp32 and its accuracy change")
    if len(setups) == 1:
        return f"Latency (CPU): median (p50) per image, {next(iter(setups))}{deploy}."
    parts = [f"{setup} ({', '.join(map(str, exps))})" for setup, exps in setups.items()]
    return "Latency (CPU): median (p50) per image; " + "; ".join(parts) + deploy + "."


def _best_deploy(group: dict) -> str:
    """The run's best deployment variant beside fp32: ``ort_int8 ~21.0 ms (0.32x, -0.20 pt)``; with
    several seeds, the variant they agree on (or each one's name)."""
    names = _raw_values(group, "deploy/best_variant")
    if not names:
        return "-"
    if len(names) > 1:
        return " / ".join(map(str, names))
    name = names[0]
    latency, speedup = _stat(group, "deploy/best_latency_ms_p50"), _stat(group, "deploy/best_speedup")
    delta = _stat(group, f"deploy/{name}/accuracy_delta")
    if name == "eager" or latency is None:
        return f"{name} (fp32)"
    parts = [f"{1 / speedup['mean']:.2f}x" if speedup and speedup["mean"] else None,
             f"{100 * delta['mean']:+.2f} pt" if delta else None]
    return f"{name} ~{latency['mean']:.1f} ms ({', '.join(p for p in parts if p)})"


def _split_note(groups: list[dict]) -> str:
    splits: dict[str, list[str]] = {}
    for group in groups:
        if group["split"]:
            splits.setdefault(group["split"], []).append(str(group["exp_id"] or group["exp"]))
    if not splits:
        return "Metrics: none (no run finished)."
    if len(splits) == 1:
        return f"Metrics: `{next(iter(splits))}` split; mean over seeds, ± sample std when Seeds > 1."
    parts = [f"`{split}` ({', '.join(exps)})" for split, exps in splits.items()]
    return "Metrics: mean over seeds (± sample std when Seeds > 1) on split " + "; ".join(parts) + "."


def _failure_line(group: dict, row: dict) -> str:
    name = group["exp_id"] or group["exp"] or "(unknown exp)"
    return f"- {name} failed (run `{row['run_dir']}`): {error_line(row['error'])}"


def _results_rows(groups: list[dict]) -> list[list[str]]:
    return [[*_names(g), g["split"] or "-", _percent(_stat(g, "accuracy")), _fmt(_stat(g, "precision"), 4),
             _fmt(_stat(g, "recall"), 4), _fmt(_stat(g, "f1"), 4), _percent(_pit_recall(g)),
             _latency(_stat(g, "latency_ms_p50")), _best_deploy(g), _params(g), _size(g["model_size_mb"]), _best_epoch(g),
             _train_time(g), *_reported(g), str(g["n"]), status]
            for g, status in zip(groups, _statuses(groups))]


def _delta(value: float | None, reference: float | None, scale: float = 100.0, unit: str = " pt") -> str:
    if value is None or reference is None:
        return "-"
    return f"{(value - reference) * scale:+.2f}{unit}"


def _mean(stat: dict | None) -> float | None:
    return stat["mean"] if stat else None


def _baseline_rows(groups: list[dict]) -> list[list[str]]:
    """Δ of every other experiment against the baseline on the same split (ours), and in the report."""
    baseline = next((g for g in groups if _is_baseline(g) and g["split"]), None)
    if baseline is None:
        return []
    body = []
    base_rep = baseline["reported"]
    for group in groups:
        if group is baseline or not group["split"]:
            continue
        same_split = group["split"] == baseline["split"]
        rep = group["reported"]
        body.append([*_names(group)[:2], group["split"] if same_split else f"{group['split']} (baseline: {baseline['split']})",
                     _delta(_mean(_stat(group, "accuracy")), _mean(_stat(baseline, "accuracy"))),
                     _delta(_mean(_stat(group, "f1")), _mean(_stat(baseline, "f1")), 1.0, ""),
                     _delta(_mean(_pit_recall(group)), _mean(_pit_recall(baseline))),
                     _delta(rep.get("accuracy") if is_number(rep.get("accuracy")) else None,
                            base_rep.get("accuracy") if is_number(base_rep.get("accuracy")) else None),
                     _delta(rep.get("f1") if is_number(rep.get("f1")) else None,
                            base_rep.get("f1") if is_number(base_rep.get("f1")) else None, 1.0, "")])
    return body


def _per_class_lines(group: dict) -> list[str]:
    """Per-class precision / recall / F1 / support (means over seeds) and one run's confusion matrix."""
    split = group["split"]
    pattern = re.compile(rf"^{re.escape(split or '')}/per_class/([^/]+)/(precision|recall|f1|support)$")
    classes: dict[str, dict[str, dict]] = {}
    for key, stat in group["stats"].items():
        match = pattern.match(key)
        if match:
            classes.setdefault(match.group(1), {})[match.group(2)] = stat
    if not classes:
        return []
    name = " ".join(_names(group)[:2])
    lines = [f"#### {group['exp_id'] or group['exp']} {name} (`{split}`)", ""]
    body = [[cls, _fmt(v.get("precision"), 4), _fmt(v.get("recall"), 4), _fmt(v.get("f1"), 4),
             _fmt(v.get("support"), 0)] for cls, v in classes.items()]
    lines += _table(["Class", "Precision", "Recall", "F1", "Support"], body)
    matrix = next((r["metrics"][split].get("confusion_matrix") for r in group["rows"]
                   if r["status"] == "ok" and isinstance(r["metrics"].get(split, {}).get("confusion_matrix"), list)), None)
    if matrix and len(matrix) == len(classes):
        names = list(classes)
        lines += ["", "Confusion matrix (rows: true, columns: predicted; one run):", ""]
        lines += _table(["true \\ predicted", *names], [[names[i], *map(str, row)] for i, row in enumerate(matrix)])
    return lines + [""]


def _threshold_rows(groups: list[dict]) -> list[list[str]]:
    body = []
    for g in groups:
        stats = {key: _stat(g, f"threshold/{key}") for key in THRESHOLD_KEYS}
        if any(stats.values()):
            body.append([*_names(g), _fmt(stats["threshold"], 3), _percent(stats["recall_at_threshold"]),
                         _percent(stats["precision_at_threshold"]), _percent(stats["band_fraction"]),
                         _fmt(stats["pits_needed"], 0), str(g["n"])])
    return body


def _threshold_note(groups: list[dict]) -> str:
    targets = sorted({f"{s['mean']:.3g}" for g in groups if (s := _stat(g, "threshold/target_recall"))})
    target = f" (target recall {', '.join(targets)})" if targets else ""
    return (f"Threshold: lowest pit score that keeps the target pit recall{target}; recall and precision are "
            "for the pit class at that threshold; band fraction: share of images in the maybe band (manual "
            "inspection); pits needed: test pits required before the recall target can be claimed at 95%.")


def render(rows: Sequence[dict]) -> str:
    """Markdown: smoke warning (if any), the results table with notes, and the pit-threshold table.

    Rows follow the report (``report.order`` of each exp), then exp_id.
    """
    def report_order(group: dict) -> tuple:
        order = (group.get("report") or {}).get("order")
        return (order is None, order if isinstance(order, (int, float)) else 0, group["exp_id"] is None,
                _natural(group["exp_id"]), _natural(group["exp"]), group["group_overrides"])

    groups = sorted(group_rows(rows), key=report_order)
    if not groups:
        return "No cherry runs found.\n"
    lines = [f"> **{SMOKE_NOTE}**", ""] if any(g["smoke"] for g in groups) else []
    lines += ["### Results", "", *_table(RESULT_COLUMNS, _results_rows(groups)), ""]
    lines += [_split_note(groups), "", _latency_note(groups), ""]
    lines += [_failure_line(g, r) for g in groups for r in g["rows"] if r["status"] == "failed"]
    baseline = _baseline_rows(groups)
    if baseline:
        lines += ["", "### Comparison with the baseline", "", *_table(BASELINE_COLUMNS, baseline), "",
                  "Δ accuracy and Δ pit recall in percentage points, Δ F1 in F1 units; ours against our baseline "
                  "run, reported against the report's baseline figure.", ""]
    threshold = _threshold_rows(groups)
    if threshold:
        lines += ["", "### Pit threshold", "", *_table(THRESHOLD_COLUMNS, threshold),
                  "", _threshold_note(groups), ""]
    per_class = [line for g in groups for line in _per_class_lines(g)]
    if per_class:
        lines += ["", "### Per-class results", "", *per_class]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
