"""``python -m zoolab.results DIR [--report NAME] [--metrics a,b]``: rebuild the results tables of DIR.

Writes ``DIR/results.tsv`` and ``DIR/results.md`` from every run folder below DIR, prints the grouped
table, and with ``--report NAME`` renders ``zoolab.results.reports.NAME`` into ``DIR/report_NAME.md``.
Exit codes: 0 all runs ok, 1 some run failed (everything is still written), 2 no run folders / bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path
from types import ModuleType

from zoolab.results import reports
from zoolab.results.aggregate import any_failed, find_runs, grouped_markdown, load_run, write_tables
from zoolab.runfolder import write_text_atomic

__all__ = ["main"]


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m zoolab.results", description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="folder tree holding run folders (directories with run.json)")
    parser.add_argument("--report", metavar="NAME", help="also render zoolab.results.reports.NAME")
    parser.add_argument("--metrics", metavar="a,b", help="key metric columns, e.g. accuracy,f1 or test/mAP")
    return parser.parse_args(argv)


def _load_report(name: str) -> ModuleType:
    available = sorted(m.name for m in pkgutil.iter_modules(reports.__path__) if not m.name.startswith("_"))
    if name not in available:
        print(f"error: unknown report {name!r}; available reports: {', '.join(available) or 'none'} "
              f"(modules in {Path(reports.__file__).parent}).", file=sys.stderr)
        raise SystemExit(2)
    return importlib.import_module(f"zoolab.results.reports.{name}")


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    report = _load_report(args.report) if args.report else None
    run_dirs = find_runs(args.dir) if args.dir.is_dir() else []
    if not run_dirs:
        print(f"No run folders found under {args.dir.resolve()} (searched recursively, skipping hidden "
              "folders and checkpoints/). A run folder is a directory holding run.json, written by "
              "`python -m zoolab` for every run (runs/<exp>/<timestamp>_<id>/ or "
              "multirun/<sweep>/<timestamp>_<id>/<job>/); pass a folder that contains such runs.",
              file=sys.stderr)
        return 2
    rows = [load_run(d, args.dir) for d in run_dirs]
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    tsv, md = write_tables(args.dir, rows, metrics)
    print(grouped_markdown(rows, metrics))
    if report is not None:
        text = report.render(rows)
        print()
        print(text)
        write_text_atomic(args.dir / f"report_{args.report}.md", text)
    print(f"wrote {tsv} and {md}", file=sys.stderr)
    if any_failed(rows):
        n_failed = sum(r["status"] == "failed" for r in rows)
        print(f"{n_failed} of {len(rows)} runs failed; see the FAILED rows in {md}.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
