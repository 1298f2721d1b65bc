"""Tests for zoolab.data.synthetic.sar: COCO layout, caching, determinism, shuffled ids, tight boxes."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoolab.data.coco_detection import CocoDetectionDataModule
from zoolab.data.synthetic.sar import SAR_CLASSES, generate_sar_dataset
from zoolab.errors import ZoolabError

COUNTS = {"train": 12, "val": 20, "test": 6}
SIZE = 96


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _coco(root: Path, split: str) -> dict:
    return json.loads((root / "Annotations" / f"{split}.json").read_text())


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return generate_sar_dataset(list(SAR_CLASSES), COUNTS, image_size=SIZE, seed=0,
                                cache_dir=str(tmp_path_factory.mktemp("sar-cache")))


def test_writes_the_sardet_layout_with_valid_coco_json(root):
    assert sorted(p.name for p in (root / "Annotations").iterdir()) == ["test.json", "train.json", "val.json"]
    for split, count in COUNTS.items():
        coco = _coco(root, split)
        assert len(coco["images"]) == count and len({i["id"] for i in coco["images"]}) == count
        assert sorted(p.name for p in (root / "JPEGImages" / split).iterdir()) == sorted(
            i["file_name"] for i in coco["images"])
        with Image.open(root / "JPEGImages" / split / coco["images"][0]["file_name"]) as img:
            assert img.format == "JPEG" and img.size == (SIZE, SIZE)
        image_ids = {i["id"] for i in coco["images"]}
        category_ids = {c["id"] for c in coco["categories"]}
        assert len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"])
        for ann in coco["annotations"]:
            assert ann["image_id"] in image_ids and ann["category_id"] in category_ids and ann["iscrowd"] == 0
            x, y, w, h = ann["bbox"]
            assert ann["area"] == w * h
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".sar-")], "temp dir left behind"


def test_category_ids_are_not_the_class_order(root):
    categories = _coco(root, "train")["categories"]
    ids = {c["name"]: c["id"] for c in categories}
    assert sorted(ids) == sorted(SAR_CLASSES)
    assert [ids[name] for name in SAR_CLASSES] != list(range(len(SAR_CLASSES)))
    assert [ids[name] for name in SAR_CLASSES] != list(range(1, len(SAR_CLASSES) + 1))
    assert [c["name"] for c in categories] != list(SAR_CLASSES)  # JSON order differs from class order too


def test_boxes_lie_inside_images_with_learnable_sizes_and_every_class_appears(root):
    for split in COUNTS:
        coco = _coco(root, split)
        sizes = {i["id"]: (i["width"], i["height"]) for i in coco["images"]}
        for ann in coco["annotations"]:
            x, y, w, h = ann["bbox"]
            width, height = sizes[ann["image_id"]]
            assert x >= 0 and y >= 0 and x + w <= width and y + h <= height
            assert 4 <= min(w, h) and max(w, h) <= 60 * SIZE / 128 + 2
    train = _coco(root, "train")
    assert {a["category_id"] for a in train["annotations"]} == {c["id"] for c in train["categories"]}
    per_image = np.bincount([a["image_id"] for a in train["annotations"]], minlength=COUNTS["train"] + 1)[1:]
    assert per_image.min() >= 1 and per_image.max() <= 4  # objects_per_image=(1, 4), no empty train image


def test_boxes_are_tight_around_bright_objects(root):
    coco = _coco(root, "val")
    image_info = next(i for i in coco["images"] if any(a["image_id"] == i["id"] for a in coco["annotations"]))
    pixels = np.asarray(Image.open(root / "JPEGImages" / "val" / image_info["file_name"]), dtype=np.float32)
    inside = np.zeros(pixels.shape, dtype=bool)
    for ann in (a for a in coco["annotations"] if a["image_id"] == image_info["id"]):
        x, y, w, h = ann["bbox"]
        inside[y:y + h, x:x + w] = True
    assert pixels[inside].mean() > 2.5 * pixels[~inside].mean()


def test_val_and_test_contain_empty_images_train_does_not(root):
    def empty(split):
        coco = _coco(root, split)
        return {i["id"] for i in coco["images"]} - {a["image_id"] for a in coco["annotations"]}

    assert not empty("train")
    assert empty("val") or empty("test")


def test_same_arguments_give_identical_files_and_reuse_the_cache(root, tmp_path):
    before = _digests(root)
    assert generate_sar_dataset(list(SAR_CLASSES), COUNTS, SIZE, 0, str(root.parent.parent)) == root
    assert _digests(root) == before
    fresh = generate_sar_dataset(list(SAR_CLASSES), COUNTS, SIZE, 0, str(tmp_path))
    assert fresh != root and _digests(fresh) == before
    other = generate_sar_dataset(list(SAR_CLASSES), COUNTS, SIZE, 1, str(tmp_path))
    assert other != fresh and _digests(other) != before


def test_loader_reads_it_by_name(root):
    dm = CocoDetectionDataModule(root=root, classes=["harbor", "ship"], num_workers=0, hflip=0.0)
    dm.setup()
    ids = {c["name"]: c["id"] for c in _coco(root, "val")["categories"]}
    assert dm.dataset("val").category_ids == [ids["harbor"], ids["ship"]]
    image, target = dm.dataset("val")[0]
    assert image.shape == (3, SIZE, SIZE) and set(target["labels"].tolist()) <= {0, 1}


def test_hundred_images_at_128_px_take_under_two_seconds(tmp_path):
    start = time.perf_counter()
    generate_sar_dataset(list(SAR_CLASSES), {"train": 60, "val": 20, "test": 20}, 128, 0, str(tmp_path))
    assert time.perf_counter() - start < 2.0


def test_unknown_class_raises(tmp_path):
    with pytest.raises(ZoolabError, match="submarine"):
        generate_sar_dataset(["ship", "submarine"], COUNTS, SIZE, 0, str(tmp_path))
