"""Hydra callback that writes the sweep's results tables when a multirun ends.

Jobs never raise into Hydra (a failed job is recorded in its ``run.json``), so ``on_multirun_end``
always fires; after writing ``results.tsv``/``results.md`` it exits non-zero unless every job of the
sweep folder finished ok. A launched job whose folder has no ``run.json`` counts as not ok too. A signal
(Ctrl-C, SIGTERM) is the exception: it stops the sweep, and the job it stopped writes the tables of the
jobs so far (:func:`write_tables_of_a_stopped_sweep`).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

__all__ = ["AggregateResults", "write_tables_of_a_stopped_sweep"]

log = logging.getLogger(__name__)


class AggregateResults(Callback):
    def __init__(self) -> None:
        self.sweep_dir: Path | None = None
        self.job_dirs: list[Path] = []

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self.sweep_dir = Path(str(config.hydra.sweep.dir))

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        self.job_dirs.append(Path(str(config.hydra.runtime.output_dir)))

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from zoolab.results.aggregate import run_problems

        sweep_dir = self.sweep_dir or Path(str(config.hydra.sweep.dir))
        rows, tsv, md = _write_sweep_tables(sweep_dir)
        print(md.read_text())
        print(f"results: {tsv}\n         {md}")
        problems = run_problems(rows) + self._jobs_without_run_json()
        if problems:
            print(f"zoolab: {len(problems)} of {max(len(rows), len(self.job_dirs))} jobs did not finish ok:",
                  file=sys.stderr)
            print("\n".join(f"  {line}" for line in problems), file=sys.stderr)
            sys.exit(1)

    def _jobs_without_run_json(self) -> list[str]:
        return [f"{d}: no run.json (the job stopped before its run folder was written)"
                for d in self.job_dirs if not (d / "run.json").is_file()]


def _write_sweep_tables(sweep_dir: Path) -> tuple[list[dict], Path, Path]:
    from zoolab.results.aggregate import find_runs, load_run, write_tables

    rows = [load_run(d, sweep_dir) for d in find_runs(sweep_dir)]
    return (rows, *write_tables(sweep_dir, rows))


def write_tables_of_a_stopped_sweep(sweep_dir: Path) -> None:
    """A signal stopped the sweep inside a job, so Hydra never calls ``on_multirun_end``: write the tables of
    the jobs that have a run folder so far (the stopped job shows as interrupted; jobs not started have no
    row). A sweep resumed into the same folder skips the finished jobs and rewrites the tables at its end."""
    try:
        _, tsv, _ = _write_sweep_tables(sweep_dir)
    except Exception as exc:  # noqa: BLE001 - the interrupt is what the user must see; the table is a bonus
        log.warning("no results table for the stopped sweep %s: %s", sweep_dir, exc)
        return
    print(f"zoolab: results of the jobs that ran so far: {tsv}", file=sys.stderr)
