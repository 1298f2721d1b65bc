"""A whole report per family, as a user makes it: the ``reproduce-*`` make target on the embedded data
(``RESULTS_ROOT`` outside the repository), ending with its report and no failed run. Minutes each on
2 cores: ``make test-slow``."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import REPO

TARGETS = {
    "reproduce-cherry": "cherry",
    "reproduce-classifier-second-gen": "classifier_second_gen",
    "reproduce-sardet": "sardet",
    "reproduce-promptsg": "promptsg",
}


@pytest.mark.slow
@pytest.mark.parametrize("target", list(TARGETS))
def test_report_target_runs_end_to_end_on_the_embedded_data(target, tmp_path, cache_dir):
    env = {k: v for k, v in os.environ.items() if k not in ("CHERRY_ROOT", "EMB_ROOT", "SARDET_ROOT", "HANDS_ROOT")}
    proc = subprocess.run(["make", "-s", target, f"RESULTS_ROOT={tmp_path}"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=3600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (stamp,) = (tmp_path / target).iterdir()
    report = (stamp / f"report_{TARGETS[target]}.md").read_text()
    assert "Made by zoolab at commit" in report
    table = (stamp / "results.md").read_text()
    assert " 0 failed." in table, table[:500]
