"""Tests for zoolab.data.coco_detection: by-name classes, MMDetection's filters, splits, flips, errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoolab.data.coco_detection import CocoDetectionDataModule, collate_detection
from zoolab.errors import ZoolabError

CLASSES = ["ship", "aircraft", "car"]
# JSON order and ids deliberately differ from the class order; "bridge" is not a configured class.
CATEGORIES = [{"id": 9, "name": "car"}, {"id": 3, "name": "ship"}, {"id": 11, "name": "bridge"},
              {"id": 5, "name": "aircraft"}]


def _ann(ann_id, image_id, category_id, bbox, **extra):
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": bbox,
            "area": extra.pop("area", bbox[2] * bbox[3]), "iscrowd": extra.pop("iscrowd", 0), **extra}


def _image(image_id, width, height):
    return {"id": image_id, "file_name": f"img_{image_id}.png", "width": width, "height": height}


# Image 1 (40x30) carries every filter case; image 2 (20x16) one car; image 3 has no annotation;
# image 4 is 12 px tall (below min_size 16) with one ship.
IMAGES = [_image(1, 40, 30), _image(2, 20, 16), _image(3, 24, 24), _image(4, 40, 12)]
ANNOTATIONS = [
    _ann(1, 1, 3, [2, 3, 10, 8]),               # ship: kept as is
    _ann(2, 1, 3, [4, 4, 6, 6], iscrowd=1),     # crowd: not a training target
    _ann(3, 1, 5, [5, 5, 8, 8], ignore=1),      # ignore flag
    _ann(4, 1, 5, [6, 6, 8, 8], area=0),        # zero area
    _ann(5, 1, 5, [6, 6, 0.5, 8]),              # w < 1
    _ann(6, 1, 5, [35, 25, 10, 10]),            # aircraft partly outside: clipped to the image
    _ann(7, 1, 5, [50, 5, 5, 5]),               # no overlap with the image
    _ann(8, 1, 9, [-4, -2, 10, 6]),             # car starting left/above the image: clipped
    _ann(9, 1, 11, [20, 10, 5, 5]),             # bridge: category not configured
    _ann(10, 2, 9, [1, 2, 5, 6]),               # car
    _ann(11, 4, 3, [3, 2, 10, 6]),              # ship on a small image
    _ann(12, 2, 11, [3, 3, 4, 4]),              # bridge again
]
EXPECTED_IMAGE_1 = ([[2, 3, 12, 11], [35, 25, 40, 30], [0, 0, 6, 4]], [0, 1, 2])


def _write_split(root: Path, split: str, images=IMAGES, annotations=ANNOTATIONS, categories=CATEGORIES):
    folder = root / "JPEGImages" / split
    folder.mkdir(parents=True, exist_ok=True)
    for info in images:
        grey = np.full((info["height"], info["width"]), 10 * info["id"], dtype=np.uint8)
        grey[:, : info["width"] // 4] = 250  # a bright left stripe to check flips
        Image.fromarray(grey, mode="L").save(folder / info["file_name"])
    (root / "Annotations").mkdir(exist_ok=True)
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (root / "Annotations" / f"{split}.json").write_text(json.dumps(coco))


@pytest.fixture
def root(tmp_path) -> Path:
    for split in ("train", "val"):
        _write_split(tmp_path / "sar", split)
    return tmp_path / "sar"


def _dm(root, **kwargs) -> CocoDetectionDataModule:
    kwargs = {"num_workers": 0, "hflip": 0.0, **kwargs}
    dm = CocoDetectionDataModule(root=str(root), classes=CLASSES, **kwargs)
    dm.setup()
    return dm


def _item(dataset, image_id):
    return dataset[dataset.image_ids.index(image_id)]


def test_classes_map_by_name_and_filters_keep_exact_boxes(root):
    val = _dm(root).dataset("val")
    assert val.category_ids == [3, 5, 9]
    assert val.annotation_file == root / "Annotations" / "val.json"
    image, target = _item(val, 1)
    assert target["image_id"] == 1
    assert target["boxes"].dtype == torch.float32 and target["labels"].dtype == torch.int64
    assert target["boxes"].tolist() == EXPECTED_IMAGE_1[0]
    assert target["labels"].tolist() == EXPECTED_IMAGE_1[1]
    assert _item(val, 2)[1]["boxes"].tolist() == [[1, 2, 6, 8]] and _item(val, 2)[1]["labels"].tolist() == [2]


def test_images_are_float_rgb_in_unit_range_at_original_size(root):
    image, _ = _item(_dm(root).dataset("val"), 2)
    assert image.dtype == torch.float32 and image.shape == (3, 16, 20)
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])  # greyscale -> 3 channels
    assert image[0, 0, 0].item() == pytest.approx(250 / 255)
    assert image[0, 0, -1].item() == pytest.approx(20 / 255)


def test_unknown_category_is_skipped_with_one_warning_giving_the_count(root, caplog):
    with caplog.at_level(logging.WARNING, logger="zoolab.data.coco_detection"):
        _dm(root, max_images={"train": 1})
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "not in dataset.classes" in r.getMessage()]
    assert len(warnings) == 2  # one per split (train and val), not one per annotation
    assert all("skipped 2 annotations" in w for w in warnings)


def test_missing_class_lists_the_categories_found(root):
    with pytest.raises(ZoolabError) as info:
        CocoDetectionDataModule(root=str(root), classes=["ship", "tank"], num_workers=0).setup()
    message = str(info.value)
    assert "['tank']" in message and "dataset.classes" in message
    for found in ("car (id 9)", "ship (id 3)", "bridge (id 11)", "aircraft (id 5)"):
        assert found in message


def test_empty_and_small_images_are_dropped_from_train_only(root):
    dm = _dm(root)
    assert dm.dataset("val").image_ids == [1, 2, 3, 4]
    assert dm.dataset("train").image_ids == [1, 2]  # 3 has no boxes, 4 is 12 px tall
    assert _item(dm.dataset("val"), 3)[1]["boxes"].shape == (0, 4)
    assert _dm(root, min_size=10).dataset("train").image_ids == [1, 2, 4]
    assert _dm(root, filter_empty_gt=False, min_size=0).dataset("train").image_ids == [1, 2, 3, 4]


def test_max_images_caps_each_split(root):
    dm = _dm(root, max_images={"train": 1, "val": 3})
    assert dm.dataset("train").image_ids == [1] and dm.dataset("val").image_ids == [1, 2, 3]
    with pytest.raises(ZoolabError, match="max_images"):
        CocoDetectionDataModule(root=str(root), classes=CLASSES, max_images={"valid": 2})


def test_hflip_mirrors_image_and_boxes_exactly(root):
    train = _dm(root, hflip=1.0).dataset("train")
    image, target = _item(train, 1)
    assert target["boxes"].tolist() == [[28, 3, 38, 11], [0, 25, 5, 30], [34, 0, 40, 4]]
    assert target["labels"].tolist() == EXPECTED_IMAGE_1[1]
    plain, _ = _item(_dm(root).dataset("val"), 1)
    assert torch.equal(image, plain.flip(-1))
    assert image[0, 0, -1].item() == pytest.approx(250 / 255)  # the bright stripe moved to the right
    val_image, val_target = _item(_dm(root, hflip=1.0).dataset("val"), 1)  # no flip outside training
    assert torch.equal(val_image, plain) and val_target["boxes"].tolist() == EXPECTED_IMAGE_1[0]


def test_collate_and_loaders(root):
    dm = _dm(root, batch_size=2, eval_batch_size=3)
    images, targets = next(iter(dm.loader("val")))
    assert [tuple(i.shape) for i in images] == [(3, 30, 40), (3, 16, 20), (3, 24, 24)]
    assert [t["image_id"] for t in targets] == [1, 2, 3]
    assert [len(t["boxes"]) for t in targets] == [3, 1, 0]
    batches = list(dm.train_dataloader())
    assert [len(b[0]) for b in batches] == [2] and sorted(t["image_id"] for t in batches[0][1]) == [1, 2]
    assert collate_detection([]) == ([], [])
    assert dm.eval_splits == ["val"]  # no test.json here


def test_missing_image_fails_at_setup_naming_file_and_split(root):
    (root / "JPEGImages" / "val" / "img_2.png").unlink()
    with pytest.raises(ZoolabError) as info:
        CocoDetectionDataModule(root=str(root), classes=CLASSES, num_workers=0).setup()
    message = str(info.value)
    assert str(root / "JPEGImages" / "val" / "img_2.png") in message and "val split" in message


def test_corrupt_image_fails_when_loaded_naming_the_file(root):
    bad = root / "JPEGImages" / "val" / "img_2.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    val = _dm(root).dataset("val")  # setup only checks existence
    _item(val, 1)
    with pytest.raises(ZoolabError, match=str(bad)):
        _item(val, 2)


def test_training_json_without_a_kept_box_fails_at_setup(tmp_path):
    root = tmp_path / "sar"
    _write_split(root, "train", annotations=[])
    _write_split(root, "val")
    with pytest.raises(ZoolabError) as info:
        _dm(root)
    message = str(info.value)
    assert "no training image is left" in message and str(root / "Annotations" / "train.json") in message
    assert "of its 4 images, 0 have a box" in message and "1 are below dataset.min_size=16" in message


def test_evaluation_json_without_images_fails_at_setup(root):
    _write_split(root, "val", images=[], annotations=[])
    with pytest.raises(ZoolabError, match="val.json lists no images"):
        _dm(root)


def test_missing_root_explains_env_var_key_and_layout(tmp_path, monkeypatch):
    monkeypatch.delenv("SARDET_ROOT", raising=False)
    dm = CocoDetectionDataModule(root=str(tmp_path / "absent"), classes=CLASSES)
    with pytest.raises(ZoolabError) as info:
        dm.setup()
    message = str(info.value)
    for part in (str(tmp_path / "absent"), "SARDET_ROOT", "dataset.root", "Annotations/{train,val,test}.json",
                 "JPEGImages/{train,val,test}", "+smoke=cpu"):
        assert part in message


def test_null_root_reads_the_environment_variable_then_the_default(root, monkeypatch, tmp_path):
    monkeypatch.setenv("SARDET_ROOT", str(root))
    dm = CocoDetectionDataModule(root=None, classes=CLASSES, num_workers=0)
    dm.setup()
    assert dm.root == root and dm.dataset("val").image_ids == [1, 2, 3, 4]
    monkeypatch.delenv("SARDET_ROOT")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ZoolabError, match="data/SARDet_100K"):
        CocoDetectionDataModule(root=None, classes=CLASSES).setup()


def test_test_split_is_evaluated_when_its_json_exists(root):
    _write_split(root, "test", images=IMAGES[:2], annotations=ANNOTATIONS[:10])
    dm = _dm(root)
    assert dm.eval_splits == ["val", "test"] and dm.dataset("test").image_ids == [1, 2]
    with pytest.raises(ZoolabError, match="split 'smoke'"):
        dm.dataset("smoke")
