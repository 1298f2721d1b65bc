"""The embedding cache file: round trip, key sensitivity, corrupt files, safetensors only."""

from __future__ import annotations

import json
import pickle
import struct

import pytest
import torch

from zoolab.data.embedding_cache import EmbeddingCache, cache_info, cache_key, load_cache, save_cache
from zoolab.errors import ZoolabError


def _cache(n: int = 7, dim: int = 5) -> EmbeddingCache:
    g = torch.Generator().manual_seed(0)
    return EmbeddingCache(
        embeddings=torch.randn(n, dim, generator=g),
        labels=torch.arange(n) % 3,
        groups=torch.arange(n) // 2,
        image_ids=[f"c{i % 3}/img_{i}.jpg" for i in range(n)],
        class_names=["a", "b", "background"],
        meta={"encoder": "vit_x", "pooling": "cls", "mean": [0.1, 0.2, 0.3], "synthetic": False},
    )


def test_round_trip(tmp_path):
    cache = _cache()
    path = save_cache(tmp_path / "sub" / "c.safetensors", cache)
    loaded = load_cache(path)
    assert torch.equal(loaded.embeddings, cache.embeddings) and loaded.embeddings.dtype == torch.float32
    assert torch.equal(loaded.labels, cache.labels) and loaded.labels.dtype == torch.int64
    assert torch.equal(loaded.groups, cache.groups) and loaded.groups.dtype == torch.int64
    assert loaded.image_ids == cache.image_ids and loaded.class_names == cache.class_names
    assert loaded.meta == cache.meta
    assert (len(loaded), loaded.dim, loaded.num_classes) == (7, 5, 3)
    assert cache_info(path) == {"num_images": 7, "dim": 5, "meta": cache.meta}
    assert [p.name for p in path.parent.iterdir()] == ["c.safetensors"]  # no temp file left behind


def test_inconsistent_fields_are_refused():
    with pytest.raises(ValueError, match="N=3"):
        EmbeddingCache(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long), torch.zeros(3), ["a", "b", "c"],
                       ["x"], {})
    with pytest.raises(ValueError, match="labels must lie"):
        EmbeddingCache(torch.zeros(2, 2), torch.tensor([0, 5]), torch.zeros(2), ["a", "b"], ["x", "y"], {})


BASE = dict(backbone="vit_large_patch16_dinov3.lvd1689m", weights="ab" * 32, pooling="cls", input_size=256,
            normalize=True, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])


def test_cache_key_is_stable_and_order_free():
    key = cache_key(**BASE)
    assert len(key) == 12 and int(key, 16) >= 0
    assert cache_key(**dict(reversed(list(BASE.items())))) == key


@pytest.mark.parametrize("field,value", [
    ("backbone", "vit_large_patch16_dinov3.sat493m"), ("weights", "cd" * 32),
    ("weights", "random-init(seed=42)"),
    ("pooling", "mean"), ("pooling", "both"), ("input_size", 224), ("normalize", False),
    ("mean", [0.430, 0.411, 0.296]), ("std", [0.213, 0.156, 0.143]),
])
def test_cache_key_changes_with_every_setting(field, value):
    assert cache_key(**{**BASE, field: value}) != cache_key(**BASE)


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(ZoolabError) as err:
        load_cache(tmp_path / "nope.safetensors")
    assert "does not exist" in err.value.what and "+smoke=cpu" in err.value.fix
    assert str(tmp_path / "nope.safetensors") in err.value.where


@pytest.mark.parametrize("content", [b"", b"not a safetensors file at all", b"\xff" * 64])
def test_corrupt_file_is_a_zoolab_error(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(ZoolabError, match="not a readable zoolab embedding cache"):
        load_cache(path)


def test_truncated_and_foreign_files_are_zoolab_errors(tmp_path):
    from safetensors.torch import save_file

    good = save_cache(tmp_path / "good.safetensors", _cache())
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-40])
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, str(foreign))
    pickled = tmp_path / "pickled.safetensors"
    torch.save({"embeddings": torch.zeros(2, 2)}, pickled)
    for path in (truncated, foreign, pickled):
        with pytest.raises(ZoolabError):
            load_cache(path)


def test_no_pickle_is_used(tmp_path, monkeypatch):
    path = save_cache(tmp_path / "c.safetensors", _cache())
    # The file is plain safetensors: an 8-byte header length, a JSON header, raw tensor bytes.
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + header_len])
    assert set(header) == {"__metadata__", "embeddings", "labels", "groups"}
    assert header["embeddings"]["dtype"] == "F32" and header["labels"]["dtype"] == "I64"

    def refuse(*args, **kwargs):
        raise AssertionError("pickle must not be used")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert len(load_cache(path)) == 7

    from safetensors.torch import load_file

    assert load_file(str(path))["embeddings"].shape == (7, 5)
