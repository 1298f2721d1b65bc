"""The SAR detection family through the command line: a smoke run of E0013 with the real ConvNeXt-S (its
trainable counts are the ledger's), painted detections from its checkpoints, and clear errors."""

from __future__ import annotations

import json
import numpy as np

from safetensors import safe_open

from conftest import REPO, run_cli

# Keep the real architecture, shrink everything else: one epoch of one batch, two val/test images.
FAST = ["trainer.max_epochs=1", "dataset.max_images={train:4,val:2,test:2}", "head.image_size=[64,64]"]
LORA_R8_FC2 = 541_440       # 36 blocks x fc2 x r(in + out), see docs/detection.md
NECK, HEAD = 4_474_880, 4_928_090
COCO_KEYS = {f"coco/bbox_{k}" for k in ("mAP", "mAP_50", "mAP_75", "mAP_s", "mAP_m", "mAP_l")}


def _tensor_sizes(path) -> dict[str, int]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_slice(k).get_shape() for k in f.keys()}


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def test_lora_smoke_run_counts_metrics_weights_and_visualize(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=sardet_lora_r8_fc2", "+smoke=cpu", *FAST, f"hydra.run.dir={run_dir}"], REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]

    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "ok" and record["exp_id"] == "E0013"
    parts = record["params"]["per_component"]
    assert parts["backbone"]["trainable"] == parts["backbone"]["lora"] == LORA_R8_FC2
    assert parts["backbone"]["total"] == 49_453_152 + LORA_R8_FC2
    assert (parts["neck"]["trainable"], parts["head"]["trainable"]) == (NECK, HEAD)
    assert record["params"]["trainable"] == LORA_R8_FC2 + NECK + HEAD

    metrics = json.loads((run_dir / "smoke_metrics.json").read_text())
    assert COCO_KEYS <= set(metrics) and all(-1.0 <= metrics[k] <= 1.0 for k in COCO_KEYS)
    assert metrics["score_thresh"] == 0.0
    assert not (run_dir / "val_metrics.json").exists()

    # Adapter-only weights: exactly the trained tensors; the export has LoRA merged away.
    adapter = _tensor_sizes(run_dir / "checkpoints" / "adapter.safetensors")
    assert sum(_numel(s) for s in adapter.values()) == LORA_R8_FC2 + NECK + HEAD
    exported = _tensor_sizes(run_dir / "checkpoints" / "model.safetensors")
    assert not any("lora_" in k or "base_layer" in k for k in exported)
    assert "backbone.model.stages_3.blocks.2.mlp.fc2.weight" in exported

    # A full-split export and a seeded sample from each of two weight files (first-N: test_visual_helpers).
    vis = ["+exp=sardet_lora_r8_fc2", "+smoke=cpu", "task=visualize", "head.image_size=[64,64]", "task.score_thresh=0.0"]
    full = tmp_path / "vis_full"
    proc = run_cli([*vis, f"ckpt={run_dir / 'checkpoints' / 'best.ckpt'}", f"hydra.run.dir={full}"], REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = json.loads((full / "run.json").read_text())["visualizations"]
    exported = json.loads((full / "visualizations" / "val" / "metrics.json").read_text())
    assert exported["images"] == len(written) > 2 and COCO_KEYS <= set(exported) and exported["seconds_per_image"] > 0
    assert all((full / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)
    # the same numbers in the run's metrics file, which the sardet report lists beside the painting rows
    smoke = json.loads((full / "smoke_metrics.json").read_text())
    assert {k: smoke[k] for k in COCO_KEYS} == {k: exported[k] for k in COCO_KEYS}

    samples = []
    for ckpt in ("best.ckpt", "model.safetensors"):
        vis_dir = tmp_path / f"vis_sample_{ckpt}"
        proc = run_cli([*vis, f"ckpt={run_dir / 'checkpoints' / ckpt}", "task.sample=3", "task.sample_seed=5",
                        f"hydra.run.dir={vis_dir}"], REPO)
        assert proc.returncode == 0, proc.stderr[-3000:]
        samples.append(sorted(p.name for p in (vis_dir / "visualizations" / "val_sample3").glob("*.png")))
    assert len(samples[0]) == 3 and samples[0] == samples[1]  # the same images for every model
    assert set(samples[0]) <= {p.rsplit("/", 1)[-1] for p in written}

    # EigenCAM bundle: detections, then C3-C5 and P3-P5 maps side by side, with a contact sheet
    cam_dir = tmp_path / "cam"
    proc = run_cli(["+exp=sardet_lora_r8_fc2", "+smoke=cpu", "task=gradcam_detection", "head.image_size=[64,64]",
                    "task.num_images=2", f"ckpt={run_dir / 'checkpoints' / 'best.ckpt'}", f"hydra.run.dir={cam_dir}"],
                   REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from PIL import Image

    panels = sorted((cam_dir / "gradcam" / "val").glob("*.png"))
    assert len(panels) == 2
    for panel in panels:
        image = Image.open(panel).convert("RGB")
        assert image.size == (7 * 64, 64)  # detections + 6 levels at the detector's input size
        maps = np.asarray(image, dtype=float)[:, 64:]
        assert maps.std() > 5
    cam_metrics = json.loads((cam_dir / "gradcam" / "val" / "metrics.json").read_text())
    assert cam_metrics["levels"] == ["C3", "C4", "C5", "P3", "P4", "P5"] and cam_metrics["images"] == 2
    assert (cam_dir / "gradcam" / "val" / "index.md").read_text().count("| ![") == 2
