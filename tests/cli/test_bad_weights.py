"""A ``backbone.weights`` file that is no checkpoint, or the checkpoint of another architecture, stops every
backbone loader (timm pooled features, timm feature maps for detection, open_clip) with one short
paragraph: the file, ``backbone.weights``, what is wrong, the first mismatched keys, and the fix."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import REPO, run_cli
from safetensors.torch import save_file

MAX_MESSAGE = 1500  # torch's own list of size mismatches runs to several KB


@pytest.fixture(scope="module")
def resnet18_state() -> dict:
    import timm

    torch.manual_seed(0)
    return {k: v.contiguous() for k, v in timm.create_model("resnet18", num_classes=0).state_dict().items()}


def assert_clean_failure(proc, run_dir: Path, weights: Path, *needles: str) -> str:
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("zoolab: error:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    message = lines[0]
    for needle in (str(weights), "backbone.weights", "backbone.pretrained=false", *needles):
        assert needle in message, message
    assert len(message) < MAX_MESSAGE, (len(message), message)
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "failed"
    assert not list(run_dir.glob("*_metrics.json"))
    assert not (run_dir / "checkpoints").exists() or not any((run_dir / "checkpoints").iterdir())
    return message


def test_text_file_is_not_a_readable_checkpoint(tmp_path, cache_dir):
    weights = tmp_path / "resnet18.safetensors"
    weights.write_text("<html>404 Not Found</html>\n")
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=cherry_resnet18_aug_unnorm", "+smoke=cpu", "backbone.pretrained=true",
                    f"backbone.weights={weights}", f"hydra.run.dir={run_dir}"], REPO)
    assert_clean_failure(proc, run_dir, weights, "not a readable checkpoint", "text")


def test_safetensors_of_another_architecture(tmp_path, cache_dir, resnet18_state):
    weights = tmp_path / "resnet18.safetensors"
    save_file(resnet18_state, str(weights))
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=cherry_efficientnet_b0", "+smoke=cpu", "backbone.pretrained=true",
                    f"backbone.weights={weights}", f"hydra.run.dir={run_dir}"], REPO)
    message = assert_clean_failure(proc, run_dir, weights, "architecture mismatch", "efficientnet_b0",
                                   "not in the file", "not in the model")
    assert "conv_stem.weight [32, 3, 3, 3]" in message  # a missing key with its shape
    assert re.search(r"and \d+ more", message)  # the rest only counted


def test_torch_file_of_another_architecture_for_detection(tmp_path, cache_dir, resnet18_state):
    """The detection backbone (timm feature maps, loaded before the feature wrapping) checks the same way."""
    weights = tmp_path / "resnet18.pt"
    torch.save(resnet18_state, weights)
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=sardet_linear_probe", "+smoke=cpu", "backbone.pretrained=true",
                    f"backbone.weights={weights}", f"hydra.run.dir={run_dir}"], REPO)
    assert_clean_failure(proc, run_dir, weights, "architecture mismatch", "convnext_small",
                         "stem.0.weight [96, 3, 4, 4]")


def test_shape_mismatches_are_summarised(tmp_path, cache_dir):
    """A narrower ResNet-18: every conv and norm differs in shape; only the first few are shown."""
    import timm

    weights = tmp_path / "narrow_resnet18.pt"
    torch.save(timm.create_model("resnet18", num_classes=0, channels=(32, 64, 128, 256))
               .state_dict(), weights)
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=cherry_resnet18_aug_unnorm", "+smoke=cpu", "backbone.pretrained=true",
                    f"backbone.weights={weights}", f"hydra.run.dir={run_dir}"], REPO)
    message = assert_clean_failure(proc, run_dir, weights, "architecture mismatch", "differ in shape",
                                   "layer1.0.conv1.weight [32, 64, 3, 3] vs [64, 64, 3, 3]")
    assert re.search(r"\d{2,} tensors differ in shape", message)
    assert message.count(" vs [") <= 5


def test_deeper_model_of_the_same_family_is_refused(tmp_path):
    """ResNet-34 weights hold every ResNet-18 key with the right shape, plus extra blocks: timm (strict=False
    once the classifier is removed) would load them silently; zoolab names the extra keys."""
    import timm

    from zoolab.backbones.timm_backbone import TimmBackbone
    from zoolab.errors import ZoolabError

    weights = tmp_path / "resnet34.safetensors"
    save_file(timm.create_model("resnet34", num_classes=0).state_dict(), str(weights))
    with pytest.raises(ZoolabError, match="architecture mismatch") as info:
        TimmBackbone("resnet18.tv_in1k", pretrained=True, weights=str(weights))
    assert "not in the model: layer1.2." in str(info.value) and "backbone.weights" in str(info.value)


def test_open_clip_backbone_rejects_a_text_file(tmp_path, cache_dir):
    weights = tmp_path / "ViT-B-16.pt"
    weights.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=promptsg_vitb16_v1", "+smoke=cpu", "backbone.pretrained=true",
                    f"backbone.weights={weights}", f"hydra.run.dir={run_dir}"], REPO)
    assert_clean_failure(proc, run_dir, weights, "not a readable checkpoint", "git-lfs")
