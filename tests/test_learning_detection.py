"""Learning test: a tiny RetinaNet (test_convnext, 32-channel FPN) on synthetic SAR scenes (3 classes) goes from
no detections worth the name at step 0 to a clearly non-zero mAP@0.5 within a couple of CPU minutes.

It runs the real path: the ``sardet_full_ft`` experiment composed with ``+smoke=cpu``, shrunk by overrides,
trained and evaluated by zoolab's runner (DetectionTask, warm-up schedule, COCO evaluation at score 0.0).
The step-0 figure comes from the identical model (same seed, same build order) scored the same way.
"""

from __future__ import annotations

import json

import lightning as L
from hydra.utils import instantiate

from zoolab.config import prepare_config
from zoolab.families.base import build_task_module as build_task
from zoolab.pipeline import run_pipeline as train_and_evaluate
from zoolab.runfolder import RunRecord

OVERRIDES = [
    "+exp=sardet_full_ft", "+smoke=cpu", "dataset=synthetic_sardet",
    "backbone.name=test_convnext",
    # Objects of 8-45 px drawn at 96 px, seen at 192 px so they fit the 32-512 px anchors.
    "head.fpn_channels=32", "head.image_size=[192,192]", "head.topk_candidates=200",
    "dataset.classes=[ship,aircraft,bridge]", "dataset.root.image_size=96",
    "dataset.root.counts={train:64,val:16,test:24}", "+dataset.root.objects_per_image=[1,1]",
    "dataset.batch_size=8", "dataset.max_images=null", "dataset.hflip=0.0",
    "optim.lr=1e-3", "sched.warmup_iters=8", "sched.milestones=[100]",
    "trainer.max_epochs=20", "+trainer.check_val_every_n_epoch=10", "callbacks.early_stopping.patience=20",
    "+trainer.enable_progress_bar=false",
]


def _step0_map50(cfg) -> float:
    """mAP@0.5 on the test split of the model exactly as training starts (same seed and build order)."""
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.dataset)
    datamodule.setup()
    task = build_task(cfg, datamodule.class_names)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_checkpointing=False,
                        enable_model_summary=False)
    trainer.test(task, dataloaders=datamodule.loader("test"), verbose=False)
    return task.evaluate_split("test").metrics["coco/bbox_mAP_50"]


def test_tiny_retinanet_learns_synthetic_sar(tmp_path, compose):
    run_dir = tmp_path / "run"
    cfg, choices = compose(OVERRIDES, output_dir=run_dir)
    cfg = prepare_config(cfg, OVERRIDES, choices.get("dataset"))

    before = _step0_map50(cfg)
    train_and_evaluate(cfg, run_dir, RunRecord(run_dir, exp="sardet_full_ft"))
    metrics = json.loads((run_dir / "smoke_metrics.json").read_text())
    print(f"learning test: mAP@0.5 step 0 {before:.3f} -> trained {metrics['coco/bbox_mAP_50']:.3f}, "
          f"mAP {metrics['coco/bbox_mAP']:.3f}")
    assert before < 0.02
    assert metrics["coco/bbox_mAP_50"] >= 0.1
    assert metrics["coco/bbox_mAP_50"] >= before + 0.08
    assert set(metrics["classwise"]) == {"ship", "aircraft", "bridge"}
    assert metrics["score_thresh"] == 0.0 and metrics["num_images"] == 24
