"""Bad data on disk (in the real formats) stops at start-up, or at the first unreadable file, with one
paragraph naming the file, a failed run.json and no metrics file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from test_bad_input import _assert_clean_failure

from conftest import REPO, run_cli
from zoolab.data.embedding_cache import EmbeddingCache, save_cache

CHERRY_CLASSES = ("cherry_clean", "cherry_pit")
# The real cherry dataset config with tiny images and a short run; only the tree on disk is ours.
CHERRY_FAST = ["backbone.pretrained=false", "backbone.input_size=32", "dataset.batch_size=4",
               "trainer.max_epochs=1", "task.module.latency.input_size=32", "task.module.latency.runs=3",
               "task.module.latency.warmup=1"]


def _jpeg_bytes(rng: np.random.Generator, size: int = 40) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def _cherry_tree(root: Path, per_class: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for cls in CHERRY_CLASSES:
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(per_class):
                (folder / f"{i}.jpg").write_bytes(_jpeg_bytes(rng))
    return root


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _run_cherry(root: Path, run_dir: Path, *extra: str):
    return run_cli(["+exp=cherry_resnet18_aug_unnorm", f"dataset.root={root}", *CHERRY_FAST, *extra,
                    f"hydra.run.dir={run_dir}"], REPO)


def test_empty_class_folder_stops_at_start_up(tmp_path, cache_dir):
    root = _cherry_tree(tmp_path / "cherries")
    for image in (root / "val" / "cherry_pit").iterdir():
        image.unlink()
    run_dir = tmp_path / "run"
    proc = _run_cherry(root, run_dir)
    _assert_clean_failure(proc, run_dir, "cherry_pit", str(root / "val"), "no images")
    assert "train" not in json.loads((run_dir / "run.json").read_text()).get("seconds", {})


def test_truncated_jpeg_stops_at_start_up(tmp_path, cache_dir):
    root = _cherry_tree(tmp_path / "cherries")
    _truncate(root / "train" / "cherry_pit" / "2.jpg")
    run_dir = tmp_path / "run"
    proc = _run_cherry(root, run_dir)
    _assert_clean_failure(proc, run_dir, "cannot be read", str(root / "train" / "cherry_pit" / "2.jpg"),
                          "truncated")
    assert "train" not in json.loads((run_dir / "run.json").read_text()).get("seconds", {})


def test_truncated_jpeg_in_a_loader_worker_is_one_paragraph(tmp_path, cache_dir):
    root = _cherry_tree(tmp_path / "cherries")
    bad = root / "train" / "cherry_pit" / "2.jpg"
    _truncate(bad)
    run_dir = tmp_path / "run"
    proc = _run_cherry(root, run_dir, "dataset.verify=false", "dataset.num_workers=1")
    _assert_clean_failure(proc, run_dir, f"cannot read image {bad}", "truncated")
    assert "DataLoader worker" not in proc.stderr and "Original Traceback" not in proc.stderr, proc.stderr[-3000:]
    error = json.loads((run_dir / "run.json").read_text())["error"]
    assert "Traceback" not in error and str(bad) in error


def _coco_split(root: Path, split: str, num_images: int, annotated: bool) -> None:
    rng = np.random.default_rng(1)
    folder = root / "JPEGImages" / split
    folder.mkdir(parents=True)
    images, annotations = [], []
    for i in range(1, num_images + 1):
        name = f"{split}_{i}.jpg"
        (folder / name).write_bytes(_jpeg_bytes(rng, 64))
        images.append({"id": i, "file_name": name, "width": 64, "height": 64})
        if annotated:
            annotations.append({"id": i, "image_id": i, "category_id": 1, "bbox": [8, 8, 20, 12],
                                "area": 240, "iscrowd": 0})
    categories = [{"id": k + 1, "name": name} for k, name in
                  enumerate(["ship", "aircraft", "car", "tank", "bridge", "harbor"])]
    (root / "Annotations").mkdir(exist_ok=True)
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (root / "Annotations" / f"{split}.json").write_text(json.dumps(coco))


def test_coco_training_json_without_annotated_images_stops_at_start_up(tmp_path, cache_dir):
    root = tmp_path / "sar"
    _coco_split(root, "train", 3, annotated=False)
    _coco_split(root, "val", 2, annotated=True)
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=sardet_smoke_r50", f"dataset.root={root}", "backbone.pretrained=false",
                    "trainer.accelerator=cpu", "dataset.num_workers=0", "head.image_size=[64,64]",
                    f"hydra.run.dir={run_dir}"], REPO)
    _assert_clean_failure(proc, run_dir, str(root / "Annotations" / "train.json"), "no training image",
                          "3 images")
    assert "num_samples" not in proc.stderr


def _real_style_cache(backbone: str, dim: int) -> EmbeddingCache:
    """A cache as ``+exp=embed_*`` writes it (its meta names the timm encoder and the width)."""
    classes = [f"class_{k}" for k in range(4)] + ["background"]
    n = 40 * len(classes)
    labels = torch.arange(n) % len(classes)
    meta = dict(backbone=backbone, encoder=backbone, dim=dim, pooling="cls", pooling_used="cls",
                input_size=256, synthetic=False, num_images=n)
    return EmbeddingCache(torch.randn(n, dim, generator=torch.Generator().manual_seed(0)), labels,
                          torch.arange(n) // 2, [f"{classes[y]}/{i}.jpg" for i, y in enumerate(labels.tolist())],
                          classes, meta)


def test_embedding_cache_of_another_encoder_is_refused(tmp_path, cache_dir):
    emb_root = tmp_path / "embeddings"
    cache = save_cache(emb_root / "dinov3_vits16.safetensors",
                       _real_style_cache("vit_large_patch16_dinov3.lvd1689m", 1024))
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=clf_dinov3_vits16_mlp256", "trainer.max_epochs=1", "trainer.accelerator=cpu",
                    f"hydra.run.dir={run_dir}"], REPO, env_extra={"EMB_ROOT": str(emb_root)})
    _assert_clean_failure(proc, run_dir, str(cache), "vit_large_patch16_dinov3.lvd1689m", "1024",
                          "vit_small_patch16_dinov3.lvd1689m", "embed_dinov3_vits16")
