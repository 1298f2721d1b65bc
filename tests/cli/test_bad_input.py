"""Bad input stops with one clear paragraph, a non-zero exit, a failed run.json and no metrics file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import FAST, REPO, run_cli


def _assert_clean_failure(proc, run_dir: Path, *needles: str) -> None:
    assert proc.returncode != 0, proc.stdout[-2000:]
    message = proc.stderr
    for needle in needles:
        assert needle in message, message[-3000:]
    assert "Traceback" not in message, message[-3000:]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "failed"
    assert not list(run_dir.glob("*_metrics.json"))


def test_missing_data_root(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=cherry_resnet18_aug_unnorm", f"hydra.run.dir={run_dir}"], REPO,
                   env_extra={"CHERRY_ROOT": str(tmp_path / "nowhere")})
    _assert_clean_failure(proc, run_dir, "dataset root", "CHERRY_ROOT", "+smoke=cpu")


def test_corrupt_image_file(tmp_path, cache_dir):
    root = tmp_path / "cherries"
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("cherry_clean", "cherry_pit"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    bad = root / "train" / "cherry_pit" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=cherry_resnet18_aug_unnorm", f"dataset.root={root}", "backbone.pretrained=false",
                    f"hydra.run.dir={run_dir}"], REPO)
    _assert_clean_failure(proc, run_dir, "cannot be read", "broken.jpg")


def test_unknown_backbone_name(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=cherry_resnet18_aug_unnorm", "+smoke=cpu", *FAST, "backbone.name=resnet5O",
                    f"hydra.run.dir={run_dir}"], REPO)
    _assert_clean_failure(proc, run_dir, "unknown timm model 'resnet5O'", "backbone.name", "resnet50")


def test_misspelt_config_key(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=cherry_resnet18_aug_unnorm", "+smoke=cpu", "+optim.weight_decy=0.1",
                    f"hydra.run.dir={run_dir}"], REPO)
    _assert_clean_failure(proc, run_dir, "unknown config key 'optim.weight_decy'", "did you mean 'weight_decay'")


def test_misspelt_key_without_plus_is_refused_by_hydra(tmp_path, cache_dir):
    proc = run_cli(["+exp=cherry_resnet18_aug_unnorm", "trainer.max_epoch=3",
                    f"hydra.run.dir={tmp_path / 'run'}"], REPO)
    assert proc.returncode != 0
    assert "max_epoch" in proc.stderr


def test_missing_pretrained_weights(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=cherry_resnet18_aug_unnorm", "+smoke=cpu", *FAST, "backbone.pretrained=true",
                    "backbone.weights=/nonexistent/resnet18.safetensors", f"hydra.run.dir={run_dir}"], REPO)
    _assert_clean_failure(proc, run_dir, "backbone.weights", "does not exist")


def test_reusing_a_folder_of_another_experiment_is_refused(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"exp": "cherry_resnet50_aug", "status": "ok"}))
    proc = run_cli(["+exp=cherry_resnet18_aug_unnorm", "+smoke=cpu", f"hydra.run.dir={run_dir}"], REPO)
    assert proc.returncode == 1
    assert "holds a run of experiment 'cherry_resnet50_aug'" in proc.stderr
    assert json.loads((run_dir / "run.json").read_text())["exp"] == "cherry_resnet50_aug"
