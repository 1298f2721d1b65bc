"""The results committed under ``multirun/`` are traceable and current: every run names a commit of this
history made from a clean tree and ended ok (or failed with its reason), no committed file holds an
absolute path of the machine that made it, and every committed table and report is what the code prints
today from the committed runs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from zoolab.results.__main__ import load_report, report_text
from zoolab.results.aggregate import find_runs, load_run, write_tables

# An absolute path of a machine: a filesystem root folder that is not part of a URL or a relative path.
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:home|root|tmp|work|Users|mnt|opt|var|srv|scratch|data|private)/")


def _committed(pattern: str) -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z", "--", f"multirun/{pattern}"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout
    return [REPO / p for p in listed.split("\0") if p]


RUN_FILES = [p for p in _committed("**/run.json")]
TABLES = [p for p in _committed("**/results.md")]


def _is_ancestor(commit: str) -> bool:
    """Whether ``commit`` is in HEAD's history. A shallow clone may not hold the commit at all: there a
    well-formed hash that git does not know is accepted (the full history decides)."""
    found = subprocess.run(["git", "merge-base", "--is-ancestor", commit, "HEAD"], cwd=REPO, capture_output=True)
    if found.returncode == 0:
        return True
    shallow = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=REPO, capture_output=True,
                             text=True).stdout.strip() == "true"
    known = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=REPO, capture_output=True)
    return shallow and known.returncode != 0 and re.fullmatch(r"[0-9a-f]{40}", commit) is not None


def test_there_are_committed_results():
    assert RUN_FILES and TABLES


def test_every_committed_run_names_a_clean_commit_of_this_history():
    problems = []
    for path in RUN_FILES:
        record = json.loads(path.read_text())
        rel = path.relative_to(REPO)
        if record.get("source") == "materialized":
            continue
        if record.get("git_dirty") is not False:
            problems.append(f"{rel}: git_dirty is {record.get('git_dirty')}")
        commit = record.get("git_commit")
        if not commit or not _is_ancestor(commit):
            problems.append(f"{rel}: commit {commit} is not an ancestor of HEAD")
        if record.get("status") != "ok" and not (record.get("status") == "failed" and record.get("error")):
            problems.append(f"{rel}: status {record.get('status')} without an explanation")
    assert not problems, "\n".join(problems[:20])


def test_no_committed_result_holds_an_absolute_path():
    offenders = []
    for path in _committed("**"):
        if path.suffix in (".json", ".md", ".tsv", ".yaml", ".txt") and ABSOLUTE_PATH.search(path.read_text()):
            offenders.append(f"{path.relative_to(REPO)}: {ABSOLUTE_PATH.search(path.read_text()).group(0)}...")
    assert not offenders, "\n".join(offenders[:20])


@pytest.mark.parametrize("table", TABLES, ids=lambda p: str(p.relative_to(REPO / "multirun").parent))
def test_every_committed_table_and_report_is_what_the_code_prints_today(table, tmp_path):
    folder = table.parent
    copy = tmp_path / folder.name  # same folder name: the table's title is the folder's name
    shutil.copytree(folder, copy)
    rows = [load_run(d, copy) for d in find_runs(copy)]
    write_tables(copy, rows)
    assert (copy / "results.md").read_text() == table.read_text(), f"{table} is out of date: rerun its make target"
    for report in folder.glob("report_*.md"):
        name = report.stem[len("report_"):]
        expected = report_text(load_report(name), rows)
        assert report.read_text() == expected, f"{report} is out of date: rerun `python -m zoolab.results ... --report {name}`"
