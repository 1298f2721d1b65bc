"""Results written into a checkout need committed code: ``zoolab.provenance`` refuses a dirty tree (or
untracked code) unless ALLOW_DIRTY is set, lets results go outside the checkout, records the diff's hash,
and the provenance line says which commit made a table."""

from __future__ import annotations

import subprocess
import sys

import pytest

from zoolab.provenance import git_state, provenance_line, require_clean


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "code.py").write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    return repo


def test_clean_tree_may_write_and_records_no_diff(repo, monkeypatch):
    monkeypatch.delenv("ALLOW_DIRTY", raising=False)
    assert require_clean(repo / "multirun", cwd=repo) is None
    state = git_state(repo)
    assert state["git_dirty"] is False and len(state["git_commit"]) == 40 and "git_diff_sha256" not in state


def test_dirty_tree_is_refused_unless_allowed(repo, monkeypatch):
    monkeypatch.delenv("ALLOW_DIRTY", raising=False)
    (repo / "src" / "code.py").write_text("x = 2\n")
    message = require_clean(repo / "multirun", cwd=repo)
    assert message and "uncommitted" in message and "src/code.py" in message and "ALLOW_DIRTY=1" in message
    assert require_clean(repo.parent / "elsewhere", cwd=repo) is None  # outside the checkout: fine
    monkeypatch.setenv("ALLOW_DIRTY", "1")
    assert require_clean(repo / "multirun", cwd=repo) is None
    state = git_state(repo)
    assert state["git_dirty"] is True and len(state["git_diff_sha256"]) == 64


def test_untracked_code_counts_but_untracked_results_do_not(repo, monkeypatch):
    monkeypatch.delenv("ALLOW_DIRTY", raising=False)
    (repo / "multirun").mkdir()
    (repo / "multirun" / "run.json").write_text("{}")
    assert require_clean(repo / "multirun", cwd=repo) is None
    (repo / "src" / "new.py").write_text("y = 1\n")
    assert "src/new.py" in require_clean(repo / "multirun", cwd=repo)


def test_command_line_exit_codes(repo, monkeypatch):
    monkeypatch.delenv("ALLOW_DIRTY", raising=False)
    run = [sys.executable, "-m", "zoolab.provenance", "--require-clean", "multirun"]
    assert subprocess.run(run, cwd=repo, capture_output=True).returncode == 0
    (repo / "src" / "code.py").write_text("x = 3\n")
    refused = subprocess.run(run, cwd=repo, capture_output=True, text=True)
    assert refused.returncode == 1 and "refusing to write results" in refused.stderr


def test_provenance_line_names_commits_and_dirty_runs():
    clean = [{"git_commit": "a" * 40, "git_dirty": False}] * 2
    assert provenance_line(clean) == "Made by zoolab at commit `aaaaaaaaaa` (clean tree)."
    mixed = clean + [{"git_commit": "b" * 40, "git_dirty": True, "git_diff_sha256": "c" * 64}]
    line = provenance_line(mixed)
    assert "commits `aaaaaaaaaa`, `bbbbbbbbbb`" in line and "1 of 3 runs from uncommitted code" in line
    assert "cccccccccccc" in line
