"""Hydra callback that writes the sweep's results tables when a multirun ends.

Jobs never raise into Hydra (a failed job is recorded in its ``run.json``), so ``on_multirun_end``
always fires; after writing ``results.tsv``/``results.md`` it exits non-zero if any job failed.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

__all__ = ["AggregateResults"]

log = logging.getLogger(__name__)


class AggregateResults(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self.sweep_dir = Path(str(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from zoolab.results.aggregate import any_failed, find_runs, load_run, write_tables

        sweep_dir = getattr(self, "sweep_dir", None) or Path(str(config.hydra.sweep.dir))
        rows = [load_run(d, sweep_dir) for d in find_runs(sweep_dir)]
        tsv, md = write_tables(sweep_dir, rows)
        print(md.read_text())
        print(f"results: {tsv}\n         {md}")
        if any_failed(rows):
            failed = [r["run_dir"] for r in rows if r["status"] != "ok"]
            print(f"zoolab: {len(failed)} of {len(rows)} jobs failed: {', '.join(map(str, failed))}",
                  file=sys.stderr)
            sys.exit(1)
