"""Learning test: ResNet-18 on the synthetic cherries rises far above chance (0.5) in a few CPU minutes."""

from __future__ import annotations

import json

from conftest import REPO, run_cli


def test_cherry_resnet18_learns(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=cherry_resnet18_aug_unnorm", "+smoke=cpu", "trainer.max_epochs=4",
                    "task.module.latency.runs=5", "task.module.latency.variants=[eager]", f"hydra.run.dir={run_dir}"], REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "smoke_metrics.json").read_text())
    print("learning test metrics:", {k: metrics[k] for k in ("accuracy", "f1")})
    assert metrics["accuracy"] >= 0.9
    assert metrics["f1"] >= 0.9
    assert metrics["threshold"]["fitted_on"] == "val"
    assert (run_dir / "plots" / "confusion_matrix_test.png").stat().st_size > 0
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "ok" and record["params"]["trainable"] == 11177538
