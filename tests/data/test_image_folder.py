"""Tests for zoolab.data.image_folder: class order, relabelling, missing/extra folders, corrupt images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoolab.data.image_folder import ImageFolderDataModule
from zoolab.errors import ZoolabError

SIZE = 32


def _write_image(path: Path, value: int, mode: str = "RGB", size: tuple[int, int] = (40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(np.full(shape, value, dtype=np.uint8), mode=mode).save(path)
    return path


def _make_tree(root: Path, classes: dict[str, int], splits=("train", "val", "test"), n: int = 2) -> Path:
    """Per split and class: n JPEGs plus one grayscale PNG, filled with the class's grey value."""
    for split in splits:
        for cls, value in classes.items():
            for i in range(n):
                _write_image(root / split / cls / f"{i}.jpg", value)
            _write_image(root / split / cls / "extra.png", value, mode="L", size=(20, 50))
    return root


def _dm(root, classes, **kwargs) -> ImageFolderDataModule:
    return ImageFolderDataModule(root=str(root), classes=classes, image_size=SIZE, num_workers=0, **kwargs)


def test_labels_follow_config_order_not_alphabetical(tmp_path):
    root = _make_tree(tmp_path / "data", {"zeta": 200, "alpha": 10})
    dm = _dm(root, ["zeta", "alpha"])
    dm.setup()
    assert dm.num_classes == 2 and dm.eval_splits == ["val", "test"]
    train = dm.datasets["train"]
    assert len(train) == 6
    for path, label in train.samples:
        assert label == {"zeta": 0, "alpha": 1}[path.parent.name]
    for i in range(len(train)):
        image, label = train[i]
        assert image.dtype == torch.uint8 and image.shape == (3, SIZE, SIZE)
        assert abs(image.float().mean().item() - (200 if label == 0 else 10)) < 3


def test_loader_batches_uint8_images_and_labels(tmp_path):
    dm = _dm(_make_tree(tmp_path / "data", {"a": 50, "b": 150}), ["a", "b"], batch_size=4)
    dm.setup()
    images, labels = next(iter(dm.val_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (4, 3, SIZE, SIZE)
    assert labels.tolist() == [0, 0, 0, 1]
    assert sum(len(b[1]) for b in dm.train_dataloader()) == 6


def test_missing_root_names_the_key_the_env_var_and_smoke(tmp_path):
    dm = _dm(tmp_path / "absent", ["a", "b"], root_env="CHERRY_ROOT")
    with pytest.raises(ZoolabError) as info:
        dm.setup()
    message = str(info.value)
    assert "dataset.root" in message
    assert "CHERRY_ROOT" in message
    assert "+smoke=cpu" in message
    assert str(tmp_path / "absent") in message


def test_root_without_val_split_is_rejected(tmp_path):
    root = _make_tree(tmp_path / "data", {"a": 50, "b": 150}, splits=("train",))
    with pytest.raises(ZoolabError, match="dataset.root"):
        _dm(root, ["a", "b"]).setup()


def test_extra_class_folder_raises(tmp_path):
    root = _make_tree(tmp_path / "data", {"a": 50, "b": 150, "c": 250})
    with pytest.raises(ZoolabError) as info:
        _dm(root, ["a", "b"]).setup()
    assert "'c'" in str(info.value)


def test_missing_class_folder_raises(tmp_path):
    root = _make_tree(tmp_path / "data", {"a": 50, "b": 150})
    for path in (root / "train" / "b").iterdir():
        path.unlink()
    (root / "train" / "b").rmdir()
    with pytest.raises(ZoolabError):
        _dm(root, ["a", "b"]).setup()


def test_relabel_folds_a_third_folder_into_a_class(tmp_path):
    root = _make_tree(tmp_path / "data", {"a": 50, "b": 150, "maybe": 100})
    dm = _dm(root, ["a", "b"], relabel={"maybe": "b"})
    dm.setup()
    train = dm.datasets["train"]
    assert len(train) == 9
    labels = {path.parent.name: label for path, label in train.samples}
    assert labels == {"a": 0, "b": 1, "maybe": 1}
    assert train.targets.count(1) == 6


def test_relabel_to_an_unknown_class_raises(tmp_path):
    root = _make_tree(tmp_path / "data", {"a": 50, "b": 150, "maybe": 100})
    with pytest.raises(ZoolabError, match="dataset.relabel"):
        _dm(root, ["a", "b"], relabel={"maybe": "c"}).setup()


@pytest.fixture
def corrupt_tree(tmp_path) -> tuple[Path, Path]:
    root = _make_tree(tmp_path / "data", {"a": 50, "b": 150})
    bad = root / "train" / "b" / "broken.jpg"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    return root, bad


def test_corrupt_image_fails_setup_by_name_when_verifying(corrupt_tree):
    root, bad = corrupt_tree
    with pytest.raises(ZoolabError) as info:
        _dm(root, ["a", "b"], verify=True).setup()
    assert str(bad) in str(info.value)
    assert "1 image file(s)" in str(info.value)


def test_corrupt_image_fails_on_read_by_name_without_verifying(corrupt_tree):
    root, bad = corrupt_tree
    dm = _dm(root, ["a", "b"], verify=False)
    dm.setup()
    train = dm.datasets["train"]
    index = [path for path, _ in train.samples].index(bad)
    train[(index + 1) % len(train)]  # the other images still read
    with pytest.raises(ZoolabError) as info:
        train[index]
    assert str(bad) in str(info.value)


def test_missing_test_split_is_skipped(tmp_path):
    dm = _dm(_make_tree(tmp_path / "data", {"a": 50, "b": 150}, splits=("train", "val")), ["a", "b"])
    dm.setup()
    assert dm.eval_splits == ["val"]
    assert set(dm.datasets) == {"train", "val"}
    assert dm.test_dataloader().dataset is dm.datasets["val"]


def test_unknown_augment_profile_fails_at_construction(tmp_path):
    with pytest.raises(ZoolabError) as info:
        _dm(tmp_path / "absent", ["a", "b"], augment="fancy")
    assert info.value.where == "dataset.augment"
    assert "fancy" in str(info.value)


def test_train_split_uses_augmentation_but_eval_splits_do_not(tmp_path):
    dm = _dm(_make_tree(tmp_path / "data", {"a": 50, "b": 150}), ["a", "b"], augment="enhanced")
    dm.setup()
    train_steps = [type(t).__name__ for t in dm.datasets["train"].transform.transforms]
    val_steps = [type(t).__name__ for t in dm.datasets["val"].transform.transforms]
    assert "MotionBlur" in train_steps and "ColorJitter" in train_steps
    assert val_steps == ["PILToTensor", "Resize"]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_empty_class_folder_fails_setup_naming_class_and_split(tmp_path):
    root = _make_tree(tmp_path / "data", {"a": 50, "b": 150})
    for image in (root / "test" / "b").iterdir():
        image.unlink()
    with pytest.raises(ZoolabError) as info:
        _dm(root, ["a", "b"], verify=False).setup()
    assert "['b'] have no images" in str(info.value) and str(root / "test") in str(info.value)


def test_class_fed_only_by_a_relabelled_folder_is_not_empty(tmp_path):
    root = _make_tree(tmp_path / "data", {"a": 50, "maybe": 150})
    dm = _dm(root, ["a", "b"], relabel={"maybe": "b"}, verify=False)
    dm.setup()
    assert set(dm.datasets["val"].targets) == {0, 1}


def test_truncated_jpeg_fails_setup_when_verifying(tmp_path):
    root = _make_tree(tmp_path / "data", {"a": 50, "b": 150})
    bad = root / "val" / "a" / "1.jpg"
    _truncate(bad)
    with pytest.raises(ZoolabError) as info:
        _dm(root, ["a", "b"]).setup()
    assert str(bad) in str(info.value) and "truncated" in str(info.value)


def test_jpeg_with_bytes_after_its_end_marker_passes_verification(tmp_path):
    root = _make_tree(tmp_path / "data", {"a": 50, "b": 150})
    padded = root / "train" / "a" / "0.jpg"
    padded.write_bytes(padded.read_bytes() + b"\0" * 16)
    _dm(root, ["a", "b"]).setup()


def test_unreadable_image_in_a_loader_worker_keeps_its_one_paragraph(tmp_path):
    from zoolab.data.image_folder import UnreadableImageError

    root = _make_tree(tmp_path / "data", {"a": 50, "b": 150})
    bad = root / "train" / "b" / "0.jpg"
    _truncate(bad)
    dm = ImageFolderDataModule(root=str(root), classes=["a", "b"], image_size=SIZE, num_workers=1, verify=False,
                               batch_size=64)
    dm.setup()
    with pytest.raises(UnreadableImageError) as info:
        next(iter(dm.loader("train")))
    message = str(info.value)
    assert message.startswith(f"cannot read image {bad}: ")
    assert "Traceback" not in message and "\n" not in message and message.endswith("Fix: replace or delete it.")
