"""Which code made a result: the commit and state of the working tree recorded in every ``run.json``,
the line that says so under every results table and report, and the guard of the ``reproduce-*``
targets that write into the repository's ``multirun/``.

``python -m zoolab.provenance --require-clean DIR`` exits 1 with one message when DIR lies inside this
checkout and the tree holds uncommitted changes to tracked files or untracked files in the code
folders; ``ALLOW_DIRTY=1`` lets it pass (every run then records the hash of its diff, and every table
made from such runs says it comes from uncommitted code).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["git_state", "provenance_line", "require_clean", "CODE_PATHS"]

# Untracked files here change what runs; untracked results elsewhere (multirun/, runs/) do not.
CODE_PATHS = ("src", "conf", "Makefile", "pyproject.toml")


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)


def git_state(cwd: Path | None = None) -> dict:
    """``git_commit``, ``git_dirty`` and, for a dirty tree, ``git_diff_sha256`` (None outside git)."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        sha = _git(["rev-parse", "HEAD"], cwd)
        if sha.returncode != 0:
            return {"git_commit": None, "git_dirty": None}
        status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
        state = {"git_commit": sha.stdout.strip(), "git_dirty": bool(status.stdout.strip())}
        if state["git_dirty"]:
            state["git_diff_sha256"] = hashlib.sha256(_git(["diff", "HEAD"], cwd).stdout.encode()).hexdigest()
        return state
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}


def provenance_line(rows: Sequence[dict]) -> str:
    """One Markdown line: the commit(s) whose code made ``rows``, and whether any came from a dirty tree."""
    commits = sorted({str(r.get("git_commit"))[:10] for r in rows if r.get("git_commit")})
    materialized = sum(r.get("source") == "materialized" for r in rows)
    dirty = [r for r in rows if r.get("git_dirty")]
    if not commits:
        where = "no recorded commit"
    else:
        where = f"commit{'s' if len(commits) > 1 else ''} {', '.join(f'`{c}`' for c in commits)}"
    line = f"Made by zoolab at {where}"
    if dirty:
        diffs = sorted({str(r.get("git_diff_sha256") or "?")[:12] for r in dirty})
        line += (f"; **{len(dirty)} of {len(rows)} runs from uncommitted code** "
                 f"(diff sha256 {', '.join(diffs)})")
    else:
        line += " (clean tree)"
    if materialized:
        line += f"; {materialized} rows materialized from a results table"
    return line + "."


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def require_clean(results_dir: Path, cwd: Path | None = None) -> str | None:
    """Why results may not be written into ``results_dir`` now, or None when they may."""
    cwd = cwd or Path.cwd()
    top = _git(["rev-parse", "--show-toplevel"], cwd)
    if top.returncode != 0 or not _inside(results_dir, Path(top.stdout.strip())):
        return None
    root = Path(top.stdout.strip())
    tracked = _git(["status", "--porcelain", "--untracked-files=no"], root).stdout.splitlines()
    untracked = _git(["status", "--porcelain", "--untracked-files=all", "--", *CODE_PATHS], root).stdout.splitlines()
    changes = sorted(set(tracked) | {line for line in untracked if line.startswith("??")})
    if not changes or os.environ.get("ALLOW_DIRTY"):
        return None
    shown = "\n".join(f"    {c}" for c in changes[:10]) + (f"\n    ... {len(changes) - 10} more" if len(changes) > 10 else "")
    return (f"zoolab: error: refusing to write results into {results_dir} from uncommitted code. Where: the "
            f"working tree of {root} has {len(changes)} uncommitted change(s):\n{shown}\nFix: commit (or stash) "
            "them first, so every committed number names the commit that made it; or write elsewhere "
            "(RESULTS_ROOT=/tmp/results); or set ALLOW_DIRTY=1 to go on, and the runs record the diff's hash "
            "and every table made from them says it comes from uncommitted code.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoolab.provenance", description=__doc__.split("\n\n")[0])
    parser.add_argument("--require-clean", metavar="DIR", type=Path, required=True,
                        help="the folder results are about to be written into")
    args = parser.parse_args(argv)
    problem = require_clean(args.require_clean)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
