"""docs/experiments.md is what `make ledger` writes from conf/exp, the Makefile and multirun/."""

from __future__ import annotations

import shutil

import pytest

from zoolab.artifacts.experiments import read_experiments, repo_root
from zoolab.artifacts.ledger import ledger_markdown


@pytest.mark.skipif(shutil.which("make") is None, reason="the ledger reads the Makefile with make -n")
def test_experiments_md_is_up_to_date():
    path = repo_root() / "docs" / "experiments.md"
    expected = ledger_markdown()
    assert path.read_text(encoding="utf-8") == expected, "docs/experiments.md is out of date: run `make ledger`"
    for exp in read_experiments():
        assert f"`{exp.name}`" in expected
