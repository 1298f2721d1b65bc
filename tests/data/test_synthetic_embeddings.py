"""Synthetic embedding caches: format, long tail, background, groups, determinism, reuse, separability."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from zoolab.data.embedding_cache import load_cache
from zoolab.data.synthetic import embeddings as synth
from zoolab.data.synthetic.embeddings import ENCODER_FAMILIES, synthetic_embedding_cache

DIMS = {"dinov3_vits16": 384, "dinov3_vitb16": 768, "dinov3_vitl16": 1024, "dinov3_vitl16_sat": 1024,
        "dinov3_vit7b16_sat": 4096, "clip_vitl14": 1024}


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic-embeddings")
    return {enc: load_cache(synthetic_embedding_cache(enc, cache_dir=str(root))) for enc in DIMS}


def _half_groups_split(cache) -> tuple[np.ndarray, np.ndarray]:
    """Alternate each class's groups between fit and test (every class lands on both sides)."""
    labels, groups = cache.labels.numpy(), cache.groups.numpy()
    fit = np.zeros(len(labels), dtype=bool)
    for k in np.unique(labels):
        for i, g in enumerate(np.unique(groups[labels == k])):
            fit[groups == g] = i % 2 == 0
    return fit, ~fit


def _macro_f1_fg(y: np.ndarray, pred: np.ndarray, num_fg: int) -> float:
    scores = []
    for k in range(num_fg):
        tp = ((pred == k) & (y == k)).sum()
        fp, fn = ((pred == k) & (y != k)).sum(), ((pred != k) & (y == k)).sum()
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores))


def _ncm_macro_f1(cache) -> float:
    fit, test = _half_groups_split(cache)
    x, y = cache.embeddings, cache.labels.numpy()
    means = torch.stack([x[torch.from_numpy(fit & (y == k))].mean(0) for k in range(cache.num_classes)])
    pred = torch.cdist(x[torch.from_numpy(test)], means).argmin(1).numpy()
    return _macro_f1_fg(y[test], pred, cache.num_classes - 1)


def test_families_and_dims(caches):
    assert set(DIMS) <= set(ENCODER_FAMILIES)
    for enc, dim in DIMS.items():
        assert ENCODER_FAMILIES[enc]["dim"] == dim
        cache = caches[enc]
        assert cache.dim == dim and cache.embeddings.dtype == torch.float32
        assert torch.isfinite(cache.embeddings).all()
        assert cache.meta["encoder"] == enc and cache.meta["dim"] == dim and cache.meta["synthetic"] is True
        assert cache.meta["seed"] == 0 and sum(cache.meta["counts"].values()) + 400 == len(cache)


def test_meta_names_the_timm_encoder_of_the_backbone_config(caches):
    """The classifier runs check a cache's ``backbone`` against backbone.name; smoke runs must pass it."""
    from omegaconf import OmegaConf

    from zoolab.config import CONF_DIR

    for enc, cache in caches.items():
        assert cache.meta["backbone"] == OmegaConf.load(CONF_DIR / "backbone" / f"{enc}.yaml").name


def test_separation_ordering_is_declared():
    sep = {k: v["separation"] for k, v in ENCODER_FAMILIES.items()}
    lvd = [sep["dinov3_vits16"], sep["dinov3_vitb16"], sep["dinov3_vitl16"]]
    sat = [sep["dinov3_vitl16_sat"], sep["dinov3_vit7b16_sat"]]
    assert lvd == sorted(lvd) and sat == sorted(sat)
    assert min(lvd) > max(sat) > min(sat) > sep["clip_vitl14"]


def test_long_tail_and_background(caches):
    cache = caches["dinov3_vitl16"]
    counts = torch.bincount(cache.labels, minlength=cache.num_classes).tolist()
    fg = counts[:-1]
    assert cache.class_names[:-1] == [f"class_{k:02d}" for k in range(12)]
    assert cache.class_names[-1] == "background" and counts[-1] == 400
    assert fg == sorted(fg, reverse=True) and fg[0] == 300 and fg[-1] == 4
    assert sum(c < 10 for c in fg) >= 2
    assert fg == list(cache.meta["counts"].values())
    # background is diffuse: centred near the global mean, wider than any class
    x, y = cache.embeddings, cache.labels
    bg, fgx = x[y == 12], x[y < 12]
    spread = lambda t: (t - t.mean(0)).norm(dim=1).mean()  # noqa: E731
    assert spread(bg) > max(spread(x[y == k]) for k in range(6))
    assert (bg.mean(0) - fgx.mean(0)).norm() < (x[y == 0].mean(0) - fgx.mean(0)).norm()
    assert cache.image_ids[0] == "class_00/class_00_00000.jpg"
    assert cache.image_ids[-1].startswith("background/")


def test_without_background(tmp_path):
    cache = load_cache(synthetic_embedding_cache("clip_vitl14", num_classes=5, background=None,
                                                 cache_dir=str(tmp_path)))
    assert cache.class_names == [f"class_{k:02d}" for k in range(5)] and cache.num_classes == 5


def test_groups_are_runs_within_one_class(caches):
    cache = caches["dinov3_vitb16"]
    labels, groups = cache.labels.numpy(), cache.groups.numpy()
    assert (np.diff(groups) >= 0).all()  # consecutive samples share a group
    sizes = np.bincount(groups)
    assert (sizes >= 1).all() and sizes.max() <= 6 and sizes.mean() > 2  # several samples per group
    for g in np.unique(groups):
        assert len(np.unique(labels[groups == g])) == 1
    for k in range(cache.num_classes):
        assert len(np.unique(groups[labels == k])) >= 2  # every class can be split by group


def test_random_split_leaks_but_group_split_does_not(caches):
    """1-NN finds same-group near duplicates across a random split, not across a group split."""
    cache = caches["dinov3_vitl16"]
    x, y, groups = cache.embeddings, cache.labels.numpy(), cache.groups.numpy()
    rng = np.random.default_rng(0)
    scores = {"random": [], "group": []}
    for _ in range(3):
        unique = rng.permutation(np.unique(groups))
        splits = {"random": rng.random(len(y)) < 0.5, "group": np.isin(groups, unique[: len(unique) // 2])}
        for name, fit in splits.items():
            nearest = torch.cdist(x[torch.from_numpy(~fit)], x[torch.from_numpy(fit)]).argmin(1).numpy()
            scores[name].append(_macro_f1_fg(y[~fit], y[fit][nearest], cache.num_classes - 1))
    assert np.mean(scores["random"]) > np.mean(scores["group"]) + 0.03


def test_deterministic_and_shared_images(tmp_path):
    a = synth.generate_embedding_cache("dinov3_vits16", seed=3)
    b = synth.generate_embedding_cache("dinov3_vits16", seed=3)
    c = synth.generate_embedding_cache("dinov3_vits16", seed=4)
    assert torch.equal(a.embeddings, b.embeddings) and torch.equal(a.groups, b.groups)
    assert not torch.equal(a.embeddings[:100], c.embeddings[:100])
    other = synth.generate_embedding_cache("clip_vitl14", seed=3)  # same images, another encoder
    assert torch.equal(a.labels, other.labels) and torch.equal(a.groups, other.groups)
    assert a.image_ids == other.image_ids


def test_written_once_and_reused(tmp_path, monkeypatch):
    path = synthetic_embedding_cache("dinov3_vitl16_sat", seed=1, cache_dir=str(tmp_path))
    assert Path(path).parent == tmp_path / "synthetic" / "embeddings"
    assert Path(path).name.startswith("dinov3_vitl16_sat-") and path.endswith(".safetensors")

    def fail(**kwargs):
        raise AssertionError("a cached file must be reused, not regenerated")

    monkeypatch.setattr(synth, "generate_embedding_cache", fail)
    assert synthetic_embedding_cache("dinov3_vitl16_sat", seed=1, cache_dir=str(tmp_path)) == path
    monkeypatch.undo()
    assert synthetic_embedding_cache("dinov3_vitl16_sat", seed=2, cache_dir=str(tmp_path)) != path
    other = synthetic_embedding_cache("dinov3_vitl16_sat", seed=1, min_per_class=5, cache_dir=str(tmp_path))
    assert other != path
    monkeypatch.setenv("ZOOLAB_CACHE", str(tmp_path / "env"))
    assert synthetic_embedding_cache("dinov3_vitl16_sat", seed=1).startswith(str(tmp_path / "env"))


def test_generation_is_fast(tmp_path):
    start = time.perf_counter()
    synthetic_embedding_cache("dinov3_vit7b16_sat", seed=5, cache_dir=str(tmp_path))
    assert time.perf_counter() - start < 2.0


def test_unknown_encoder():
    with pytest.raises(ValueError, match="dinov3_vitl16"):
        synth.generate_embedding_cache("dinov4_huge")


def test_separability_follows_the_encoders(caches):
    scores = {enc: _ncm_macro_f1(cache) for enc, cache in caches.items()}
    assert scores["dinov3_vitl16"] > scores["clip_vitl14"] + 0.05
    lvd = np.mean([scores[k] for k in ("dinov3_vits16", "dinov3_vitb16", "dinov3_vitl16")])
    sat = np.mean([scores[k] for k in ("dinov3_vitl16_sat", "dinov3_vit7b16_sat")])
    assert lvd > sat > scores["clip_vitl14"]
    assert 0.5 < scores["dinov3_vitl16"] < 0.95  # learnable, not trivial
