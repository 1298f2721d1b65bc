"""The re-ID family through the command line: chronology smoke runs, zero-shot baseline, quirk replay,
missing data. Most runs shrink CLIP through ``backbone.model_cfg``; one keeps the real ViT-B/16."""

from __future__ import annotations

import csv
import json
import shutil

import yaml

from conftest import REPO, run_cli

METRIC_KEYS = ("rank1", "rank5", "rank10", "mAP")
# A tiny CLIP (same code paths as ViT-B-16: patch embedding, transformer blocks, text tower, projections).
TINY_VIT = ["backbone.model_cfg={embed_dim:64,vision_cfg:{width:64,layers:2,head_width:32,patch_size:8},"
            "text_cfg:{width:64,layers:1,heads:2}}", "backbone.image_size=[32,32]"]
# Few, small synthetic identities; one short epoch.
FAST = ["dataset=synthetic_reid", "dataset.root.num_identities={train:10,test:5}",
        "dataset.root.images_per_identity=[3,4]", "dataset.root.image_size=[32,32]", "dataset.val_identities=3",
        "dataset.num_splits=3", "trainer.max_epochs=1", "task.module.latency.enabled=false"]


def _smoke_metrics(run_dir) -> dict:
    metrics = json.loads((run_dir / "smoke_metrics.json").read_text())
    for key in METRIC_KEYS:
        assert 0.0 <= metrics[key] <= 1.0, (key, metrics[key])
    assert metrics["rank1"] <= metrics["rank5"] <= metrics["rank10"]
    assert metrics["num_splits"] == 3 and metrics["num_gallery"] == 5
    return metrics


def test_chronology_exp_trains_and_writes_reid_metrics(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=promptsg_vitb16_v8", "+smoke=cpu", *TINY_VIT, *FAST, f"hydra.run.dir={run_dir}"],
                   REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _smoke_metrics(run_dir)
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "ok" and record["task"] == "reid" and record["exp_id"] == "PSG-ViT-v8"
    assert set(record["params"]["per_component"]) == {"backbone", "promptsg", "head", "loss"}
    assert record["reported"] == {"rank1": 85.86, "mAP": 89.99}
    # Selection read the validation split: val/rank1 was logged every epoch and best.ckpt exists.
    with open(run_dir / "metrics.csv", newline="") as fh:
        assert any(row.get("val/rank1") for row in csv.DictReader(fh))
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    resolved = yaml.safe_load((run_dir / "resolved_config.yaml").read_text())
    assert resolved["head"]["reduction_dim"] == 1024 and resolved["task"]["module"]["grad_clip"] == 0.5
    assert resolved["task"]["module"]["promptsg"]["mode"] == "paper"


def test_real_vitb16_architecture_smoke_run(tmp_path, cache_dir):
    """+smoke=cpu keeps the real ViT-B/16: parameter counts are the architecture's, at the 64x64 smoke size."""
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=promptsg_vitb16_v8", "+smoke=cpu", *FAST, "trainer.limit_train_batches=1",
                    "trainer.limit_val_batches=1", f"hydra.run.dir={run_dir}"], REPO)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # ~3.4 GB of checkpoints and export
    assert proc.returncode == 0, proc.stderr[-3000:]
    _smoke_metrics(run_dir)
    params = json.loads((run_dir / "run.json").read_text())["params"]["per_component"]
    # open_clip ViT-B-16 = 149,620,737 parameters incl. logit_scale (not in the backbone); the positional
    # embedding shrinks from 14x14+1 to 4x4+1 rows of 768 at 64x64.
    assert params["backbone"]["total"] == 149_620_737 - 1 - (197 - 17) * 768
    # Stage 3 trains the whole image tower (86.2M at 224) and never the text tower.
    assert params["backbone"]["trainable"] == 86_192_640 - (197 - 17) * 768
    # BNNeck: Linear 512 -> 1024 (+ bias), BN weight (bias frozen), ArcFace 1024 x 7 training identities
    # (10 synthetic identities, 3 held out for validation).
    assert params["head"]["trainable"] == 512 * 1024 + 1024 + 1024 + 1024 * 7


def test_zero_shot_baseline_runs_without_training(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=clip_zeroshot_vitb16", "+smoke=cpu", *TINY_VIT, *FAST, f"hydra.run.dir={run_dir}"],
                   REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _smoke_metrics(run_dir)
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "ok" and "fit" not in record["seconds"]
    assert set(record["params"]["per_component"]) == {"backbone"}
    assert not (run_dir / "checkpoints").exists()


def test_clipfh_quirks_stack_replays_the_original(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    # quirk #12 (last-epoch weights) hit only v9-v11 in the original, so it is added by hand, not by the stack
    proc = run_cli(["+exp=promptsg_vitb16_v9", "+smoke=cpu", "+stack=clipfh_quirks", *TINY_VIT, *FAST,
                    "task.module.use_last_epoch_weights=true", f"hydra.run.dir={run_dir}"], REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = _smoke_metrics(run_dir)
    assert metrics["evaluated_weights"] == "last_epoch"
    resolved = yaml.safe_load((run_dir / "resolved_config.yaml").read_text())
    module = resolved["task"]["module"]
    assert module["promptsg"]["mode"] == "clipfh" and module["promptsg"]["self_layers"] == 3
    assert module["clip_after_step"] and module["select_on"] == "test_split0"
    assert module["train_normalize"] is False and resolved["dataset"]["num_instances"] == 0
    assert resolved["sched"] is None and resolved["loss"]["triplet_exclude_self"] is False


def test_missing_hands_root_says_what_to_set(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=promptsg_vitb16_v8", "backbone.pretrained=false", f"hydra.run.dir={run_dir}"], REPO,
                   env_extra={"HANDS_ROOT": str(tmp_path / "nowhere")})
    assert proc.returncode == 1
    assert "HANDS_ROOT" in proc.stderr and "+smoke=cpu" in proc.stderr and "dataset.root" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert not list(run_dir.glob("*_metrics.json"))
