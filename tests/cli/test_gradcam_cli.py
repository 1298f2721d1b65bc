"""task=gradcam: Grad-CAM panels of a trained classifier on the embedded data, with a contact sheet."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from conftest import FAST, REPO, run_cli
from zoolab.errors import ZoolabError


def test_gradcam_panels_sheet_and_metrics(tmp_path, cache_dir):
    run_dir, out = tmp_path / "run", tmp_path / "cam"
    proc = run_cli(["+exp=cherry_resnet18_aug_unnorm", "+smoke=cpu", *FAST, f"hydra.run.dir={run_dir}"], REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_cli(["+exp=cherry_resnet18_aug_unnorm", "+smoke=cpu", *FAST, "task=gradcam", "task.sample=5",
                    f"ckpt={run_dir}/checkpoints/best.ckpt", f"hydra.run.dir={out}"], REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = out / "gradcam" / "val_sample5"
    panels = sorted(folder.glob("*.png"))
    assert len(panels) == 5
    for panel in panels:
        image = Image.open(io.BytesIO(panel.read_bytes())).convert("RGB")
        assert image.size == (448, 242)  # image | overlay, enlarged to 224, caption band below
        overlay = np.asarray(image, dtype=float)[:224, 224:]
        assert overlay.std() > 5  # a heat map, not a blank square
    sheet = (folder / "index.md").read_text()
    rows = [line for line in sheet.splitlines() if line.startswith("| ![")]
    assert sorted(r.split("](")[1].split(")")[0] for r in rows) == [p.name for p in panels]
    metrics = json.loads((folder / "metrics.json").read_text())
    wrong = sum("**" in r for r in rows)
    assert metrics["images"] == 5 and metrics["accuracy"] == pytest.approx((5 - wrong) / 5)
    assert "Layer `layer4`" in sheet
    assert json.loads((out / "run.json").read_text())["gradcam"] == "gradcam/val_sample5/index.md"


def test_vit_backbone_is_refused_with_a_reason():
    from zoolab.backbones.timm_backbone import TimmBackbone
    from zoolab.families.gradcam import target_layer

    assert target_layer(TimmBackbone("resnet18"))[0] == "layer4"
    with pytest.raises(ZoolabError, match="convolutional"):
        target_layer(TimmBackbone("vit_tiny_patch16_224"))
