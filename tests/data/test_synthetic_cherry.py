"""Tests for zoolab.data.synthetic.cherry: layout, caching by spec hash, classes and pit visibility."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoolab.data.synthetic.cherry import generate_cherry_dataset

COUNTS = {"train": 3, "val": 2, "test": 1}
SIZE = 32


def _tree(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def binary_root(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("cherry-cache")
    return Path(generate_cherry_dataset(["cherry_clean", "cherry_pit"], COUNTS, image_size=SIZE, seed=0,
                                        cache_dir=str(cache)))


def test_writes_imagefolder_layout_with_requested_counts(binary_root):
    for split, n in COUNTS.items():
        for cls in ("cherry_clean", "cherry_pit"):
            files = sorted((binary_root / split / cls).iterdir())
            assert len(files) == n
            assert all(f.suffix == ".jpg" for f in files)
            with Image.open(files[0]) as img:
                assert img.format == "JPEG" and img.mode == "RGB" and img.size == (SIZE, SIZE)
    assert sorted(p.name for p in binary_root.iterdir() if p.is_dir()) == ["test", "train", "val"]
    spec = json.loads((binary_root / "spec.json").read_text())
    assert spec["counts"] == COUNTS and spec["classes"] == ["cherry_clean", "cherry_pit"]
    assert not [p for p in binary_root.parent.iterdir() if p.name.startswith(".cherry-")], "temp dir left behind"


def test_second_call_reuses_the_tree_without_rewriting(binary_root):
    before = _tree(binary_root)
    again = generate_cherry_dataset(["cherry_clean", "cherry_pit"], COUNTS, image_size=SIZE, seed=0,
                                    cache_dir=str(binary_root.parent.parent))
    assert Path(again) == binary_root
    assert _tree(binary_root) == before


def test_different_seed_or_size_gives_a_different_root(binary_root):
    cache = str(binary_root.parent.parent)
    other_seed = Path(generate_cherry_dataset(["cherry_clean", "cherry_pit"], COUNTS, image_size=SIZE, seed=1,
                                              cache_dir=cache))
    assert other_seed != binary_root and other_seed.parent == binary_root.parent
    a = np.asarray(Image.open(binary_root / "train" / "cherry_pit" / "train_cherry_pit_00000.jpg"))
    b = np.asarray(Image.open(other_seed / "train" / "cherry_pit" / "train_cherry_pit_00000.jpg"))
    assert not np.array_equal(a, b)


def test_cache_dir_defaults_to_zoolab_cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOOLAB_CACHE", str(tmp_path))
    root = Path(generate_cherry_dataset(["cherry_clean"], {"train": 1, "val": 1}, image_size=16, seed=3))
    assert root.parent == tmp_path / "synthetic"
    assert sorted(p.name for p in root.iterdir()) == ["spec.json", "train", "val"]


def test_three_class_tree_with_cherry_maybe(tmp_path):
    classes = ["cherry_clean", "cherry_maybe", "cherry_pit"]
    root = Path(generate_cherry_dataset(classes, {"train": 2, "val": 1}, image_size=SIZE, cache_dir=str(tmp_path)))
    for split, n in {"train": 2, "val": 1}.items():
        assert sorted(p.name for p in (root / split).iterdir()) == sorted(classes)
        assert len(list((root / split / "cherry_maybe").glob("*.jpg"))) == n


def test_unknown_class_raises_value_error(tmp_path):
    with pytest.raises(ValueError, match="cherry_rotten"):
        generate_cherry_dataset(["cherry_clean", "cherry_rotten"], COUNTS, cache_dir=str(tmp_path))
    assert not (tmp_path / "synthetic").exists() or not any((tmp_path / "synthetic").iterdir())


def test_pits_change_the_cherry_centre_more_than_clean_to_clean_variation(tmp_path):
    n, size = 12, 64
    root = Path(generate_cherry_dataset(["cherry_clean", "cherry_pit"], {"train": 2 * n}, image_size=size, seed=7,
                                        cache_dir=str(tmp_path)))
    lo, hi = int(size * 0.4), int(size * 0.6)  # always inside the cherry ellipse

    def centres(cls: str) -> np.ndarray:
        files = sorted((root / "train" / cls).glob("*.jpg"))
        return np.stack([np.asarray(Image.open(f), dtype=np.float32)[lo:hi, lo:hi] for f in files])

    clean, pit = centres("cherry_clean"), centres("cherry_pit")
    clean_a, clean_b = clean[:n], clean[n:]
    clean_vs_clean = np.abs(clean_a - clean_b).mean()
    pit_vs_clean = np.abs(pit[:n] - clean_b).mean()
    assert pit_vs_clean > 1.5 * clean_vs_clean, (pit_vs_clean, clean_vs_clean)
    # and the pit is pale: the green channel of the centre is much brighter with a pit
    assert pit[..., 1].mean() > clean[..., 1].mean() + 15
