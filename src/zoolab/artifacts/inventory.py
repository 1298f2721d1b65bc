"""``check``: what each experiment should have against what the run folders under a root hold.

Expected, per experiment x seed x split: the seeds are those the Makefile's reproduce targets sweep (or
the experiment's own seed), the splits are ``smoke`` for a smoke run, else the splits its ``reported:``
numbers name (``val_mAP`` -> val; ``val`` and ``test`` when they name none), and a ``task=visualize``
experiment paints its ``task.split``. Present, per run folder (found by its ``run.json``, read by
``zoolab.results.aggregate.load_run``): the ``<split>_metrics.json`` files, the ``run.json`` status,
``checkpoints/`` (``best.ckpt``, ``model.safetensors`` or ``adapter.safetensors``), logs (``zoolab.log``
or ``metrics.csv``) and, for painting runs, ``visualizations/<split>/``. The newest ok run of an
experiment and seed stands for it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from zoolab.artifacts.experiments import Experiment, MakeRun
from zoolab.results.aggregate import find_runs, load_run

__all__ = ["CHECKPOINT_FILES", "LOG_FILES", "Expected", "Inventory", "run_files"]

CHECKPOINT_FILES = ("best.ckpt", "model.safetensors", "adapter.safetensors", "last.ckpt")
LOG_FILES = ("zoolab.log", "metrics.csv")
NO_CHECKPOINTS = ("visualize", "embed")   # painting and embedding extraction train nothing


@dataclasses.dataclass
class Expected:
    """One experiment x seed x split, with what was found for it."""

    exp: Experiment
    seed: int | None
    split: str
    smoke: bool
    make: MakeRun | None
    run_dir: str = ""
    status: str = "missing"
    source: str = ""
    runs: int = 0
    variants: int = 1
    metrics: bool = False
    checkpoints: bool = False
    logs: bool = False
    visuals: bool | None = None     # None: the experiment paints nothing

    @property
    def missing(self) -> list[str]:
        pieces = [("run", self.status == "missing"), ("ok run.json", self.status not in ("ok", "missing")),
                  (f"{self.split}_metrics.json", self.exp.task != "visualize" and not self.metrics),
                  ("checkpoints", self.exp.task not in NO_CHECKPOINTS and not self.checkpoints),
                  ("logs", not self.logs),
                  ("visual export", self.visuals is False),
                  (f"{self.variants - self.runs} of {self.variants} variants",
                   self.status != "missing" and self.runs < self.variants)]
        return [name for name, lacking in pieces if lacking]

    def command(self) -> str:
        """The command that makes this run: the make target and this run's own command line."""
        seed = [f"seed={self.seed}"] if self.seed is not None and self.seed != self.exp.seed else []
        smoke = ["+smoke=cpu"] if self.smoke else []
        if self.make is None:
            ckpt = ["ckpt=<a trained run>/checkpoints/best.ckpt"] if self.exp.task == "visualize" else []
            return " ".join(["python -m zoolab", f"+exp={self.exp.name}", *seed, *smoke, *ckpt])
        overrides = [o for o in self.make.command(real_data=True).split()[3:] if not o.startswith("seed=")]
        if self.smoke:
            overrides = [o for o in self.make.command().split()[3:] if not o.startswith("seed=")]
            overrides += [] if self.make.smoke else smoke
        sweep = ["-m"] if self.make.variants > 1 else []
        alone = " ".join(["python -m zoolab", *sweep, f"+exp={self.exp.name}", *seed,
                          *(o for o in overrides if o != "-m" and not o.startswith("+exp="))])
        return f"make {self.make.target}, or this run alone: {alone}"


def run_files(run_dir: Path, split: str | None = None) -> dict[str, bool]:
    """Which run-level artifacts a run folder holds."""
    ckpt = run_dir / "checkpoints"
    vis = run_dir / "visualizations"
    vis = vis / split if split else vis
    return {"checkpoints": any((ckpt / name).is_file() for name in CHECKPOINT_FILES),
            "logs": any((run_dir / name).is_file() for name in LOG_FILES),
            "visuals": vis.is_dir() and any(p.suffix.lower() == ".png" for p in vis.rglob("*"))}


def _expected(exp: Experiment, makes: list[MakeRun], mode: str | None) -> list[Expected]:
    make = makes[0] if makes else None
    smoke = (make.smoke if make else False) if mode is None else mode == "smoke"
    seeds = sorted({s for m in makes for s in m.seeds}) or [exp.seed]
    if exp.task == "visualize":
        splits = [exp.task_split or "val"]
    elif smoke:
        splits = ["smoke"]
    else:
        splits = list(exp.reported_splits or ("val", "test"))
    variants = max((m.variants for m in makes), default=1)
    return [Expected(exp, seed, split, smoke, make, variants=variants) for seed in seeds for split in splits]


def _newest(rows: list[dict]) -> dict | None:
    ok = [r for r in rows if r["status"] == "ok"] or rows
    return max(ok, key=lambda r: (str(r["ended"] or r["started"] or ""), r["run_dir"]), default=None)


class Inventory:
    """The expected rows of a set of experiments matched against the runs under ``root``."""

    def __init__(self, root: Path, experiments: list[Experiment], plan: dict[str, list[MakeRun]],
                 mode: str | None = None) -> None:
        self.root = Path(root)
        rows = [load_run(d, self.root) for d in find_runs(self.root)] if self.root.is_dir() else []
        self.n_runs = len(rows)
        self.rows: list[Expected] = []
        for exp in experiments:
            for expected in _expected(exp, plan.get(exp.name, []), mode):
                self._match(expected, rows)
                self.rows.append(expected)

    def _match(self, expected: Expected, rows: list[dict]) -> None:
        exp = expected.exp
        candidates = [r for r in rows if r["exp"] == exp.name and r["seed"] == expected.seed
                      and bool(r["smoke"]) == expected.smoke and r["task"] in (exp.task, None)]
        best = _newest(candidates)
        if best is None:
            return
        expected.runs = len({tuple(sorted(r["group_overrides"])) for r in candidates if r["status"] == "ok"})
        files = run_files(self.root / best["run_dir"], expected.split if exp.task == "visualize" else None)
        expected.run_dir, expected.status = best["run_dir"], best["status"]
        expected.source = best.get("source") or "run"
        expected.metrics = expected.split in best["metrics"]
        expected.checkpoints, expected.logs = files["checkpoints"], files["logs"]
        expected.visuals = files["visuals"] if exp.task == "visualize" else None

    @property
    def complete(self) -> bool:
        return bool(self.rows) and not any(r.missing for r in self.rows)

    def table(self) -> str:
        def mark(value: bool | None) -> str:
            return "-" if value is None else "yes" if value else "MISSING"

        records = [{
            "exp_id": r.exp.exp_id or "", "exp": r.exp.name, "seed": "" if r.seed is None else r.seed,
            "split": r.split, "run.json": r.status if r.status != "missing" else "MISSING",
            "metrics": "-" if r.exp.task == "visualize" else mark(r.metrics),
            "checkpoints": "-" if r.exp.task in NO_CHECKPOINTS else mark(r.checkpoints), "logs": mark(r.logs), "visuals": mark(r.visuals),
            "runs": f"{r.runs}/{r.variants}", "source": r.source or "-", "run folder": r.run_dir or "-",
        } for r in self.rows]
        return pd.DataFrame.from_records(records).to_markdown(index=False, disable_numparse=True)

    def missing_lines(self) -> list[str]:
        """One line per experiment x seed with something missing: what, and the command that makes it."""
        seen: dict[tuple, tuple[list[str], Expected]] = {}
        for row in self.rows:
            if row.missing:
                pieces, _ = seen.setdefault((row.exp.name, row.seed), ([], row))
                pieces += [p for p in row.missing if p not in pieces]
        lines = []
        for (name, seed), (pieces, row) in seen.items():
            what = ", ".join(pieces)
            note = " (materialized from a table: the original's files are not here)" \
                if row.source == "materialized" else ""
            seed_text = "" if seed is None else f" seed {seed}"
            lines.append(f"- {row.exp.exp_id or '-'} {name}{seed_text}: {what}{note}; made by: {row.command()}")
        return lines
