"""Tests for zoolab.data.reid and the synthetic re-ID generator: layouts, held-out identities, items,
augmentation, Market-1501 names, errors, and the config that builds it all."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoolab.data.reid import ReidDataModule
from zoolab.data.reid_datasets import QueryGalleryEvalSet, SingleGalleryEvalSet
from zoolab.data.reid_layouts import parse_market_name
from zoolab.data.synthetic.reid import generate_reid_dataset
from zoolab.errors import ZoolabError

SIZE = [16, 8]


def write_image(path: Path, seed: int, size: tuple[int, int] = (12, 20)) -> Path:
    """A random RGB image of (W, H) = size, saved in the format the suffix names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def identity_tree(root: Path, train: dict[str, int], test: dict[str, int]) -> Path:
    seed = 0
    for split, counts in (("train", train), ("test", test)):
        for name, n in counts.items():
            for i in range(n):
                seed += 1
                write_image(root / split / name / f"{i}.{'png' if i % 2 else 'jpg'}", seed)
    return root


TRAIN = {f"id{i:02d}": 3 + i % 3 for i in range(10)}
TEST = {"t1": 3, "t2": 2, "t3": 4, "single": 1}


def _dm(root, **kwargs) -> ReidDataModule:
    defaults = dict(image_size=SIZE, batch_size=4, num_instances=2, num_workers=0, eval_batch_size=5)
    return ReidDataModule(root, **{**defaults, **kwargs})


def test_identity_folders_with_held_out_validation(tmp_path, caplog):
    root = identity_tree(tmp_path / "hands", TRAIN, TEST)
    dm = _dm(root, val_identities=0.3, split_seed=1)
    with caplog.at_level(logging.WARNING):
        dm.setup()
    assert "single" in caplog.text  # the one-image test identity is dropped with a warning
    train, val, test = dm.dataset("train"), dm.dataset("val"), dm.dataset("test")
    assert dm.eval_splits == ["val", "test"] and isinstance(val, SingleGalleryEvalSet)
    assert dm.num_classes == 7 and len(dm.class_names) == 7  # 10 identities - round(0.3 * 10) held out
    val_names = {s.path.parent.name for s in val.samples}
    assert len(val_names) == 3 and val_names.isdisjoint(dm.class_names)
    assert {s.path.parent.name for s in train.samples} == set(dm.class_names)
    assert all(s.path.parts[-3] == "train" for s in val.samples)  # validation comes from train/, never test/
    assert {s.path for s in val.samples}.isdisjoint({s.path for s in test.samples})
    assert val.num_splits == 3 and test.num_splits == 10
    # labels: contiguous, in class_names order
    for (path, _, _), label in zip(train.samples, train.labels):
        assert dm.class_names[label] == path.parent.name
    assert sorted(set(train.labels.tolist())) == list(range(7))
    assert len(test) == 9 and sorted(np.unique(test.pids).tolist()) == [0, 1, 2]
    image, label, camid, index = train[4]
    assert image.dtype == torch.uint8 and image.shape == (3, 16, 8)
    assert (label, camid, index) == (int(train.labels[4]), 0, 4)
    assert isinstance(label, int) and (test.camids == 0).all()
    # the same seed draws the same validation identities; another seed other ones
    again = _dm(root, val_identities=0.3, split_seed=1)
    assert again.class_names == dm.class_names
    assert _dm(root, val_identities=0.3, split_seed=5).class_names != dm.class_names


def test_validation_count_zero_and_loaders(tmp_path):
    root = identity_tree(tmp_path / "hands", TRAIN, TEST)
    dm = _dm(root, val_identities=2)
    assert dm.num_classes == 8 and len({s.path.parent.name for s in dm.dataset("val").samples}) == 2
    none = _dm(root, val_identities=0)
    assert none.eval_splits == ["test"] and none.num_classes == 10 and none.val_dataloader() == []
    images, labels, camids, index = next(iter(dm.loader("test")))
    assert images.shape == (5, 3, 16, 8) and index.tolist() == [0, 1, 2, 3, 4]
    assert labels.dtype == torch.int64
    batch = next(iter(dm.train_dataloader()))  # P x K = 2 x 2
    _, counts = np.unique(batch[1].numpy(), return_counts=True)
    assert counts.tolist() == [2, 2]
    plain = _dm(root, num_instances=0).train_dataloader()
    assert isinstance(plain.sampler, torch.utils.data.RandomSampler)
    with pytest.raises(ZoolabError, match="at least 2"):
        _dm(root, val_identities=1).setup()


def test_augment_off_is_bicubic_resize_only_and_augment_keys(tmp_path):
    root = identity_tree(tmp_path / "hands", TRAIN, TEST)
    dm = _dm(root, augment=None)
    path = dm.dataset("train").samples[0].path
    expected = np.asarray(Image.open(path).convert("RGB").resize((8, 16), Image.Resampling.BICUBIC))
    image = dm.dataset("train")[0][0]
    np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), expected)

    flipped = _dm(root, augment={"hflip": 1.0}).dataset("train")[0][0]
    assert torch.equal(flipped, image.flip(-1))
    torch.manual_seed(0)
    shifted = [_dm(root, augment={"pad": 2}).dataset("train")[0][0] for _ in range(8)]
    for out in shifted:  # a window of the zero-padded image: every pixel is original or padding
        padded = torch.nn.functional.pad(image, (2, 2, 2, 2))
        assert any(torch.equal(out, padded[:, i:i + 16, j:j + 8]) for i in range(5) for j in range(5))
    assert any(not torch.equal(out, image) for out in shifted)
    erased = _dm(root, augment={"random_erasing": 1.0}).dataset("train")[0][0]
    assert erased.shape == image.shape and not torch.equal(erased, image)
    assert torch.equal(_dm(root, augment={"hflip": 1.0}).dataset("test")[0][0], dm.dataset("test")[0][0])
    with pytest.raises(ZoolabError, match=r"unknown re-ID augmentation key.*'flip'"):
        _dm(root, augment={"flip": 0.5})
    with pytest.raises(ZoolabError, match="probability"):
        _dm(root, augment={"hflip": 2})


def test_missing_root_names_env_var_and_layout(tmp_path, monkeypatch):
    monkeypatch.delenv("HANDS_ROOT", raising=False)
    with pytest.raises(ZoolabError) as err:
        _dm(None, root_env="HANDS_ROOT").setup()
    message = str(err.value)
    assert "HANDS_ROOT" in message and "<root>/train/<identity>/*.jpg" in message and "+smoke=cpu" in message
    with pytest.raises(ZoolabError, match="bounding_box_train"):
        _dm(tmp_path / "nowhere", protocol="market1501", root_env="MARKET_ROOT").setup()
    root = identity_tree(tmp_path / "hands", TRAIN, TEST)
    monkeypatch.setenv("HANDS_ROOT", str(root))
    assert _dm(None, root_env="HANDS_ROOT").num_classes == 8


def test_bad_folders_and_files_are_named(tmp_path):
    root = identity_tree(tmp_path / "hands", TRAIN, TEST)
    (root / "train" / "empty").mkdir()
    with pytest.raises(ZoolabError, match=r"identity folder .*empty holds no images"):
        _dm(root).setup()
    (root / "train" / "empty").rmdir()
    bad = root / "test" / "t1" / "0.jpg"
    bad.write_bytes(b"not an image")
    dm = _dm(root)
    index = next(i for i, s in enumerate(dm.dataset("test").samples) if s.path == bad)
    with pytest.raises(ZoolabError, match=r"cannot read image .*t1/0\.jpg"):
        dm.dataset("test")[index]
    with pytest.raises(ZoolabError, match="protocol"):
        _dm(root, protocol="cuhk03")


def market_tree(root: Path, names: dict[str, list[str]]) -> Path:
    for i, (folder, files) in enumerate((f, n) for f, ns in names.items() for n in ns):
        write_image(root / folder / files, i, size=(8, 16))
    return root


def test_market_names_junk_distractors_and_validation(tmp_path):
    assert parse_market_name("0002_c1s1_000451_03.jpg") == (2, 0)
    assert parse_market_name("-1_c6s2_000001_01.jpg") == (-1, 5)
    with pytest.raises(ZoolabError, match="not a Market-1501 file name"):
        parse_market_name("person_7.jpg")
    train = [f"{pid:04d}_c{cam}s1_{pid * 10 + k:06d}_00.jpg" for pid in (1, 3, 5, 7)
             for k, cam in enumerate((1, 1, 2))]
    root = market_tree(tmp_path / "market", {
        "bounding_box_train": train + ["0009_c1s1_000900_00.jpg", "-1_c1s1_000901_00.jpg"],
        "query": ["0011_c1s1_000001_00.jpg", "-1_c2s1_000002_00.jpg"],
        "bounding_box_test": ["0011_c2s1_000003_00.jpg", "0000_c1s1_000004_00.jpg", "-1_c3s1_000005_00.jpg"],
    })
    dm = _dm(root, protocol="market1501", val_identities=2, batch_size=2, num_instances=1)
    dm.setup()
    # pid 9 has one camera and one image: never drawn for validation, always trained on
    assert "9" in dm.class_names and dm.num_classes == 3
    assert all(name.isdigit() for name in dm.class_names) and "-1" not in dm.class_names
    test = dm.dataset("test")
    assert isinstance(test, QueryGalleryEvalSet) and (test.num_queries, test.num_gallery) == (1, 2)
    assert test.pids.tolist() == [11, 0, 11] and test.camids.tolist() == [0, 0, 1]
    val = dm.dataset("val")  # per held-out pid: first image per camera -> query, the rest -> gallery
    assert (val.num_queries, val.num_gallery) == (4, 2)
    held = {str(p) for p in val.pids}
    assert len(held) == 2 and held.isdisjoint(dm.class_names)
    assert sorted(val.camids[:4].tolist()) == [0, 0, 1, 1] and val.camids[4:].tolist() == [0, 0]


def test_synthetic_generator_layouts_and_determinism(tmp_path):
    kwargs = dict(num_identities={"train": 3, "test": 2}, images_per_identity=[2, 3], image_size=[24, 16],
                  seed=0)
    root = generate_reid_dataset(**kwargs, cache_dir=tmp_path / "a")
    assert sorted(p.name for p in root.iterdir()) == ["spec.json", "test", "train"]
    train_ids, test_ids = sorted((root / "train").iterdir()), sorted((root / "test").iterdir())
    assert len(train_ids) == 3 and len(test_ids) == 2
    assert {p.name for p in train_ids}.isdisjoint(p.name for p in test_ids)
    for folder in train_ids + test_ids:
        images = sorted(folder.iterdir())
        assert 2 <= len(images) <= 3
        with Image.open(images[0]) as img:
            assert img.format == "JPEG" and img.size == (16, 24)
    files = sorted(p.relative_to(root) for p in root.rglob("*.jpg"))
    mtimes = [(root / f).stat().st_mtime_ns for f in files]
    assert generate_reid_dataset(**kwargs, cache_dir=tmp_path / "a") == root  # reused, not rewritten
    assert [(root / f).stat().st_mtime_ns for f in files] == mtimes
    other = generate_reid_dataset(**kwargs, cache_dir=tmp_path / "b")  # same arguments, fresh cache
    assert sorted(p.relative_to(other) for p in other.rglob("*.jpg")) == files
    assert all((root / f).read_bytes() == (other / f).read_bytes() for f in files)
    reseeded = generate_reid_dataset(**{**kwargs, "seed": 1}, cache_dir=tmp_path / "a")
    assert reseeded != root and not [p for p in root.parent.iterdir() if p.name.startswith(".reid-")]

    market = generate_reid_dataset(**kwargs, cache_dir=tmp_path / "a", protocol="market1501")
    names = {f: [parse_market_name(p.name) for p in sorted((market / f).iterdir())]
             for f in ("bounding_box_train", "query", "bounding_box_test")}
    assert {pid for pid, _ in names["bounding_box_train"]} == {1, 2, 3}
    assert {pid for pid, _ in names["query"]} == {4, 5}
    assert len(names["query"]) == len(set(names["query"]))  # one query per identity and camera
    assert {0, -1} <= {pid for pid, _ in names["bounding_box_test"]}
    dm = _dm(market, protocol="market1501", val_identities=0, batch_size=2, num_instances=1)
    assert dm.class_names == ["1", "2", "3"] and dm.dataset("test").num_gallery >= 2


def test_synthetic_config_builds_the_datamodule(compose):
    from hydra.utils import instantiate

    cfg, _ = compose(["dataset=synthetic_reid", "+backbone.image_size=[32,32]",
                      "dataset.root.num_identities={train:8,test:4}", "dataset.root.image_size=[32,32]"])
    dm = instantiate(cfg.dataset)
    dm.setup()
    assert dm.protocol == "single_gallery" and dm.image_size == (32, 32) and dm.augment == {}
    assert dm.num_classes == 6 and dm.eval_splits == ["val", "test"]  # round(0.2 * 8) = 2 held out
    assert dm.dataset("test")[0][0].shape == (3, 32, 32)
    for name in ("hands11k", "market1501"):
        cfg, _ = compose([f"dataset={name}", "+backbone.image_size=[32,32]"])
        dm = instantiate(cfg.dataset)
        env = {"hands11k": "HANDS_ROOT", "market1501": "MARKET_ROOT"}[name]
        assert dm.root is None and dm.root_env == env
    assert dm.augment == {"hflip": 0.5, "pad": 10, "random_erasing": 0.5} and dm.batch_size == 64
