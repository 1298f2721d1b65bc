"""A cumulative metrics file: every sweep's run rows appended to one TSV, as a report's benchmark plan
keeps one growing table across sweeps.

``python -m zoolab.results DIR --append-to FILE`` adds DIR's run rows (those of its ``results.tsv``) to
FILE with a ``sweep`` column (DIR as given). Rows already there for the same sweep and run folder are
replaced, so re-rendering a sweep never duplicates it; columns are the union of old and new, in first-seen
order. The file is rewritten atomically.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from zoolab.runfolder import write_text_atomic

__all__ = ["append_runs"]


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def append_runs(cumulative: Path, results_tsv: Path, sweep: str) -> int:
    """Append the ``kind == run`` rows of ``results_tsv`` to ``cumulative`` under ``sweep``; returns
    how many rows the file now holds."""
    new = [{"sweep": sweep, **row} for row in _read(results_tsv) if row.get("kind") == "run"]
    fresh = {(row["sweep"], row.get("run_dir", "")) for row in new}
    rows = [row for row in _read(cumulative) if (row.get("sweep"), row.get("run_dir", "")) not in fresh] + new
    columns = list(dict.fromkeys(key for row in rows for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, delimiter="\t", restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(cumulative, text.getvalue())
    return len(rows)
