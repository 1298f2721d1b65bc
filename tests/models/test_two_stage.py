"""The two-stage method: head growth, misclassification relabelling, and an end-to-end smoke run."""

from __future__ import annotations

import json

import torch

from conftest import FAST, REPO, run_cli
from zoolab.tasks.two_stage import grow_head


def test_grow_head_keeps_old_rows_in_their_new_places():
    old = torch.nn.Linear(4, 2)
    grown = grow_head(old, [0, 2])
    assert grown.out_features == 3
    assert torch.equal(grown.weight[0], old.weight[0]) and torch.equal(grown.weight[2], old.weight[1])
    assert torch.equal(grown.bias[[0, 2]], old.bias)
    assert torch.count_nonzero(grown.weight[1]) == 0 and grown.bias[1] == 0


def test_two_stage_runs_end_to_end_on_three_classes(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=cherry_resnet50_two_stage", "+smoke=cpu", *FAST, "backbone=resnet18",
                    "backbone.input_size=32", "backbone.pretrained=false", "trainer.max_epochs=1",
                    f"hydra.run.dir={run_dir}"], REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    labels = json.loads((run_dir / "stage2_labels.json").read_text())
    assert labels["train_images"] == 3 * 40
    assert len(labels["files"]) == labels["misclassified_by_stage1"]
    metrics = json.loads((run_dir / "smoke_metrics.json").read_text())
    assert list(metrics["per_class"]) == ["cherry_clean", "cherry_maybe", "cherry_pit"]
    assert len(metrics["confusion_matrix"]) == 3
    assert (run_dir / "stage1" / "checkpoints" / "last.ckpt").is_file()
    record = json.loads((run_dir / "run.json").read_text())
    assert {"stage1_fit", "relabel", "fit", "evaluate"} <= set(record["seconds"])
