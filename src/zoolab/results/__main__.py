"""``python -m zoolab.results DIR [--report NAME] [--metrics a,b]``: rebuild the results tables of DIR.

Writes ``DIR/results.tsv`` and ``DIR/results.md`` from every run folder below DIR, prints the grouped
table, and with ``--report NAME`` renders a report into ``DIR/report_NAME.md``: NAME is a built-in report
(a module of ``zoolab.results.reports``) or an importable module of your own, ``pkg.module`` (its
``render(rows)``) or ``pkg.module:function``; a report module may also define ``extra_files(rows)``
(file name -> text), written beside the report (the PromptSG remarks CSVs). ``--append-to FILE`` also
appends the run rows to a cumulative TSV shared by several sweeps (``zoolab.results.cumulative``).
Exit codes: 0 all runs ok, 1 some run is not ok (failed, still running, or with an unreadable file;
everything is still written), 2 no run folders / bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
from collections.abc import Callable
from pathlib import Path

from zoolab.results import reports
from zoolab.results.aggregate import find_runs, grouped_markdown, load_run, run_problems, write_tables
from zoolab.provenance import provenance_line
from zoolab.runfolder import write_text_atomic

__all__ = ["load_report", "main", "report_text"]

Renderer = Callable[[list], str]


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m zoolab.results", description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="folder tree holding run folders (directories with run.json)")
    parser.add_argument("--report", metavar="NAME",
                        help="also render a report: a built-in name, pkg.module or pkg.module:function")
    parser.add_argument("--metrics", metavar="a,b", help="key metric columns, e.g. accuracy,f1 or test/mAP")
    parser.add_argument("--append-to", metavar="FILE", type=Path,
                        help="also append the run rows to a cumulative TSV across sweeps (same sweep: replaced)")
    return parser.parse_args(argv)


def _builtin_reports() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(reports.__path__) if not m.name.startswith("_"))


class ReportError(Exception):
    """A ``--report`` value that names no usable renderer."""


def _import_report_module(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise ReportError(f"cannot import report module {module_name!r} ({exc})") from None
        raise


def load_report(spec: str) -> Renderer:
    """The renderer ``spec`` names: a built-in report, ``pkg.module`` (its ``render``) or ``pkg.module:fn``."""
    if spec in _builtin_reports():
        return importlib.import_module(f"{reports.__name__}.{spec}").render
    module_name, _, function = spec.partition(":")
    function = function or "render"
    if not module_name or module_name.startswith("."):
        raise ReportError("a report module is an absolute dotted path such as pkg.module")
    renderer = getattr(_import_report_module(module_name), function, None)
    if not callable(renderer):
        raise ReportError(f"{module_name!r} has no function {function!r}")
    return renderer


def report_extra_files(render: Renderer, rows: list[dict]) -> dict[str, str]:
    """Files the report's module writes beside the report (its ``extra_files(rows)``, e.g. CSVs)."""
    module = importlib.import_module(render.__module__)
    extra = getattr(module, "extra_files", None)
    return extra(rows) if callable(extra) else {}


def _report_or_exit(spec: str) -> Renderer:
    try:
        return load_report(spec)
    except ReportError as exc:
        print(f"error: unknown report {spec!r}: {exc}. Built-in reports: {', '.join(_builtin_reports())} "
              f"(modules in {Path(reports.__file__).parent}); your own report is a module on PYTHONPATH "
              "with render(rows) -> str, given as --report pkg.module or --report pkg.module:function.",
              file=sys.stderr)
        raise SystemExit(2)


def report_text(render: Renderer, rows: list[dict]) -> str:
    """What ``--report`` writes: the provenance line (which commit made the rows), then the report."""
    return f"{provenance_line(rows)}\n\n{render(rows)}"


def _report_filename(spec: str) -> str:
    return f"report_{re.sub(r'[^A-Za-z0-9._-]+', '_', spec)}.md"


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    render = _report_or_exit(args.report) if args.report else None
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
    if render is not None:
        text = report_text(render, rows)
        print()
        print(text)
        write_text_atomic(args.dir / _report_filename(args.report), text)
        for name, content in report_extra_files(render, rows).items():
            write_text_atomic(args.dir / name, content)
    print(f"wrote {tsv} and {md}", file=sys.stderr)
    if args.append_to:
        from zoolab.results.cumulative import append_runs

        total = append_runs(args.append_to, tsv, args.dir.as_posix())
        print(f"appended {len(rows)} runs to {args.append_to} ({total} rows)", file=sys.stderr)
    problems = run_problems(rows)
    if problems:
        print(f"{len(problems)} of {len(rows)} runs are not ok (see {md}):", file=sys.stderr)
        print("\n".join(f"  {line}" for line in problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
