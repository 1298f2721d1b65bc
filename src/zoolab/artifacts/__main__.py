"""``python -m zoolab.artifacts COMMAND`` (also ``zoolab artifacts COMMAND``): the zoo's artifacts.

  check ROOT                 what each experiment should have (per exp x seed x split) against ROOT's runs
  materialize TSV --out DIR  run folders from a results table (zoolab's results.tsv or the SAR zoo ledger)
  package ROOT --out X.zip   the small files a reader needs, with a sha256 manifest
  release check ROOT         the release assets (checkpoint, log, visualisation zips) against the ledger
  release bundle ROOT --out DIR   those assets, the metrics package and a manifest in one directory
  ledger [--check]           write docs/experiments.md (or fail when it is out of date)

Exit codes: 0 fine, 1 something expected is missing (check, release check) or was refused, 2 bad usage
or unreadable input. Errors are one paragraph on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zoolab.artifacts import bundle, experiments, inventory, ledger, materialize

__all__ = ["main"]


class _Fail(Exception):
    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _experiments(patterns: list[str] | None) -> list[experiments.Experiment]:
    chosen = experiments.select(experiments.read_experiments(), patterns)
    if not chosen:
        raise _Fail(f"no experiment matches {', '.join(patterns or [])} (names and exp_ids of conf/exp, "
                    "glob patterns such as 'sardet_*' or 'E00*')")
    return chosen


def _root(path: Path) -> Path:
    if not path.is_dir():
        raise _Fail(f"{path} is not a folder: give the folder holding the run folders (e.g. multirun/ or the "
                    "--out of materialize)")
    return path


def _check(args: argparse.Namespace) -> int:
    root, chosen = _root(args.root), _experiments(args.exp)
    try:
        plan = experiments.make_plan(names=[e.name for e in experiments.read_experiments()])
    except experiments.PlanError as exc:
        print(f"warning: {exc}; every experiment is expected once, at its own seed.", file=sys.stderr)
        plan = {}
    if args.target:
        chosen = [e for e in chosen if any(m.target == args.target for m in plan.get(e.name, []))]
        plan = {k: [m for m in v if m.target == args.target] for k, v in plan.items()}
        if not chosen:
            raise _Fail(f"no selected experiment is run by a target named {args.target!r} in the Makefile")
    inv = inventory.Inventory(root, chosen, plan, mode=args.mode)
    print(inv.table())
    missing = inv.missing_lines()
    expected = len(inv.rows)
    print(f"\n{expected} expected (exp x seed x split) for {len(chosen)} experiments, {inv.n_runs} run folders "
          f"under {root}.")
    if missing:
        print(f"Missing, and the command that makes it ({len(missing)} experiment x seed):")
        print("\n".join(missing))
        return 1
    print("Nothing missing.")
    return 0


def _materialize(args: argparse.Namespace) -> int:
    try:
        written, skipped = materialize.materialize(args.table, args.out)
    except materialize.MaterializeError as exc:
        raise _Fail(str(exc)) from None
    print(f"wrote {len(written)} run folders under {args.out} from {args.table}")
    if skipped:
        print(f"{len(skipped)} lines without numbers were skipped:\n" + "\n".join(f"  {s}" for s in skipped))
    print(f"next: python -m zoolab.results {args.out} [--report NAME]; python -m zoolab.artifacts check {args.out}")
    return 0


def _package(args: argparse.Namespace) -> int:
    try:
        manifest = bundle.package(_root(args.root), args.out)
    except bundle.BundleError as exc:
        raise _Fail(str(exc)) from None
    total = sum(e["bytes"] for e in manifest)
    print(f"wrote {args.out}: {len(manifest)} files ({bundle.format_bytes(total)}) and manifest.json")
    return 0


def _limit(text: str) -> int:
    try:
        return bundle.parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _release(args: argparse.Namespace) -> int:
    root, chosen = _root(args.root), _experiments(args.exp)
    assets, missing = bundle.release_assets(root, chosen)
    too_big = [a for a in assets if a.size > args.limit]
    for asset in assets:
        flag = "  OVER THE LIMIT" if asset in too_big else ""
        print(f"{asset.name}: {len(asset.files)} files, {bundle.format_bytes(asset.size)}{flag}")
    if args.action == "check":
        if missing:
            print(f"\n{len(missing)} expected assets are missing (make the runs: python -m zoolab.artifacts "
                  "check ROOT says how):\n" + "\n".join(f"  {m}" for m in missing))
        if too_big:
            print(f"\n{len(too_big)} assets are over the release asset limit of {bundle.format_bytes(args.limit)}.")
        print(f"\n{len(assets)} assets present, {len(missing)} missing, {len(too_big)} over the limit.")
        return 1 if missing or too_big else 0
    if args.out is None:
        raise _Fail("release bundle needs --out DIR, the directory to write the assets and manifest.json into")
    try:
        manifest = bundle.bundle_release(root, args.out, args.limit, chosen if args.exp else None)
    except bundle.BundleError as exc:
        raise _Fail(str(exc), code=1) from None
    print(f"wrote {args.out}: {len(manifest['assets'])} assets and manifest.json")
    return 0


def _ledger(args: argparse.Namespace) -> int:
    path = args.out or experiments.repo_root() / "docs" / "experiments.md"
    try:
        text = ledger.ledger_markdown()
    except experiments.PlanError as exc:
        raise _Fail(str(exc)) from None
    if args.check:
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        if current != text:
            raise _Fail(f"{path} is out of date with conf/exp, the Makefile and multirun/: run `make ledger`", 1)
        print(f"{path} is up to date")
        return 0
    from zoolab.runfolder import write_text_atomic

    write_text_atomic(path, text)
    print(f"wrote {path}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m zoolab.artifacts", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    exp_help = "only these experiments (name or exp_id glob, repeatable), e.g. --exp 'sardet_*'"

    check = sub.add_parser("check", help="inventory: expected per exp x seed x split against ROOT's runs")
    check.add_argument("root", type=Path)
    check.add_argument("--exp", action="append", help=exp_help)
    check.add_argument("--target", help="only the experiments of this make target, e.g. reproduce-sardet")
    mode = check.add_mutually_exclusive_group()
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="expect real-data runs (val/test metrics) even where make would run smoke twins")
    mode.add_argument("--smoke", dest="mode", action="store_const", const="smoke",
                      help="expect the +smoke=cpu twins (smoke_metrics.json)")
    check.set_defaults(func=_check, mode=None)

    mat = sub.add_parser("materialize", help="run folders from zoolab's results.tsv or the SAR zoo ledger")
    mat.add_argument("table", type=Path)
    mat.add_argument("--out", type=Path, required=True, help="folder to write the run folders into")
    mat.set_defaults(func=_materialize)

    pack = sub.add_parser("package", help="metrics JSONs, run.json, results tables and reports in one zip")
    pack.add_argument("root", type=Path)
    pack.add_argument("--out", type=Path, required=True, help="the zip to write, e.g. metrics.zip")
    pack.set_defaults(func=_package)

    release = sub.add_parser("release", help="release assets: check them, or bundle them into one directory")
    release.add_argument("action", choices=["check", "bundle"])
    release.add_argument("root", type=Path)
    release.add_argument("--out", type=Path, help="bundle: the directory to write")
    release.add_argument("--exp", action="append", help=exp_help + " (check: default every experiment)")
    release.add_argument("--limit", type=_limit, default=bundle.DEFAULT_LIMIT,
                         help="largest allowed asset: bytes or e.g. 2GiB, 500MB (default 2GiB)")
    release.set_defaults(func=_release)

    led = sub.add_parser("ledger", help="write docs/experiments.md from conf/exp and multirun/")
    led.add_argument("--out", type=Path, help="where to write it (default docs/experiments.md of the checkout)")
    led.add_argument("--check", action="store_true", help="only compare: exit 1 when the file is out of date")
    led.set_defaults(func=_ledger)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except _Fail as exc:
        print(f"zoolab artifacts {args.command}: error: {exc}", file=sys.stderr)
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
