"""Synthetic embedding caches in the real cache format, one per encoder family.

Stands in for the classifier report's cached frozen-encoder embeddings (report 001): the same "images"
(labels, groups, image ids) seen through encoders that differ only in dimension and in how separable
they make the classes (DINOv3 LVD > DINOv3 SAT > CLIP, larger models slightly better within a family).

Generative model, per sample ``i`` of class ``y`` in group ``g``:

    z_i = separation * m_y + o_g + e_i     latent, LATENT_DIM dims: class code m_y ~ N(0, I), group offset
                                           o_g ~ N(0, GROUP_STD²), sample noise e_i ~ N(0, SAMPLE_STD²)
    x_i = c + Q z_i + n_i                  Q: D x LATENT_DIM orthonormal, c: global offset, off-subspace noise
                                           n_i ~ N(0, AMBIENT * LATENT_DIM / D) (same share whatever D)

- Long tail: class counts fall geometrically from ``max_per_class`` to ``min_per_class``.
- Rare classes (the rarest third) sit between their own direction and a frequent "parent" class, so a
  plain cross-entropy head under-predicts them and class weighting measurably lifts their recall.
- Groups: consecutive samples of one class share a group offset ``o_g``, so a random split leaks near
  duplicates into the test set while a group split does not.
- Background (last label): diffuse samples around the global mean with a larger spread.

The latent draws depend on ``seed`` only (the same images for every encoder); the projection and the
off-subspace noise also depend on the encoder.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import torch

from zoolab.data.embedding_cache import EmbeddingCache, cache_key, save_cache

__all__ = ["ENCODER_FAMILIES", "LATENT_DIM", "synthetic_embedding_cache", "generate_embedding_cache"]

_VERSION = 2  # 2: meta names the timm encoder ``backbone``, as the embed task's caches do
LATENT_DIM = 16
GROUP_STD = 0.8  # shared offset of the samples of one group (latent units)
SAMPLE_STD = 0.6  # per-sample noise; GROUP_STD² + SAMPLE_STD² = 1 = within-class variance per latent dim
BACKGROUND_STD = 1.5  # background spread around the global mean (per latent dim)
AMBIENT = 0.25  # off-subspace noise energy relative to the latent noise energy
RARE_PULL = 0.4  # a rare class mean sits this fraction of the way from its parent to its own direction

# separation: class-mean spread relative to the within-class noise (higher = more separable).
ENCODER_FAMILIES: dict[str, dict] = {
    "dinov3_vits16": dict(dim=384, separation=1.70, family="dinov3_lvd",
                          timm_name="vit_small_patch16_dinov3.lvd1689m"),
    "dinov3_vitb16": dict(dim=768, separation=1.80, family="dinov3_lvd",
                          timm_name="vit_base_patch16_dinov3.lvd1689m"),
    "dinov3_vitl16": dict(dim=1024, separation=1.90, family="dinov3_lvd",
                          timm_name="vit_large_patch16_dinov3.lvd1689m"),
    "dinov3_vitl16_sat": dict(dim=1024, separation=1.45, family="dinov3_sat",
                              timm_name="vit_large_patch16_dinov3.sat493m"),
    "dinov3_vit7b16_sat": dict(dim=4096, separation=1.55, family="dinov3_sat",
                               timm_name="vit_7b_patch16_dinov3.sat493m"),
    "clip_vitl14": dict(dim=1024, separation=1.20, family="clip",  # pre-projection width, as extracted
                        timm_name="vit_large_patch14_clip_224.openai"),
}


def _class_counts(num_classes: int, max_per_class: int, min_per_class: int) -> np.ndarray:
    if num_classes == 1:
        return np.array([max_per_class])
    ratio = (min_per_class / max_per_class) ** (1.0 / (num_classes - 1))
    counts = np.round(max_per_class * ratio ** np.arange(num_classes)).astype(int)
    return np.clip(counts, min_per_class, max_per_class)


def _group_ids(rng: np.random.Generator, count: int, group_size: tuple[int, int], first: int) -> np.ndarray:
    """Group ids for ``count`` consecutive samples, starting at ``first``; sizes drawn in ``group_size``,
    capped at half the class so that every class with two or more samples has at least two groups."""
    high = max(1, min(group_size[1], count // 2))
    low = min(group_size[0], high)
    sizes = []
    while sum(sizes) < count:
        sizes.append(int(rng.integers(low, high + 1)))
    sizes[-1] -= sum(sizes) - count
    return np.repeat(np.arange(first, first + len(sizes)), sizes)


def _latent_means(rng: np.random.Generator, counts: np.ndarray) -> np.ndarray:
    """Unit-scale class means; the rarest third is pulled towards a frequent parent class."""
    num_classes = len(counts)
    means = rng.standard_normal((num_classes, LATENT_DIM))
    num_rare = num_classes // 3
    frequent = np.argsort(-counts, kind="stable")[: max(1, num_classes // 2)]
    for k in np.argsort(counts, kind="stable")[:num_rare]:
        parent = frequent[rng.integers(len(frequent))]
        means[k] = means[parent] + RARE_PULL * (means[k] - means[parent])
    return means


def _latent_samples(rng, counts, background_count, group_size) -> tuple[np.ndarray, ...]:
    """Encoder-independent draws: labels, groups, class-mean codes, group offsets and sample noise."""
    means = _latent_means(rng, counts)
    labels, groups, centre, offset = [], [], [], []
    next_group = 0
    all_counts = [*counts, background_count] if background_count else list(counts)
    for label, count in enumerate(all_counts):
        g = _group_ids(rng, int(count), group_size, next_group)
        next_group = int(g[-1]) + 1
        group_offsets = rng.standard_normal((len(np.unique(g)), LATENT_DIM)) * GROUP_STD
        labels.append(np.full(count, label))
        groups.append(g)
        offset.append(group_offsets[g - g[0]])
        is_background = label == len(counts)
        mean = np.zeros(LATENT_DIM) if is_background else means[label]
        centre.append(np.repeat(mean[None], count, axis=0))
    labels, groups = np.concatenate(labels), np.concatenate(groups)
    noise = rng.standard_normal((len(labels), LATENT_DIM)) * SAMPLE_STD
    is_bg = labels == len(counts)
    noise[is_bg] *= BACKGROUND_STD / SAMPLE_STD
    return labels, groups, np.concatenate(centre), np.concatenate(offset), noise


def generate_embedding_cache(
    encoder: str,
    num_classes: int = 12,
    max_per_class: int = 300,
    min_per_class: int = 4,
    background: str | None = "background",
    background_count: int = 400,
    group_size: tuple[int, int] = (1, 6),
    seed: int = 0,
) -> EmbeddingCache:
    """Build (in memory) the synthetic cache of one encoder family; see the module docstring."""
    if encoder not in ENCODER_FAMILIES:
        raise ValueError(f"unknown synthetic encoder '{encoder}'; expected one of {sorted(ENCODER_FAMILIES)}")
    if num_classes < 2 or not 1 <= min_per_class <= max_per_class:
        raise ValueError(f"need num_classes >= 2 and 1 <= min_per_class <= max_per_class, got {num_classes}, "
                         f"{min_per_class}, {max_per_class}")
    if not 1 <= group_size[0] <= group_size[1]:
        raise ValueError(f"group_size must be (low, high) with 1 <= low <= high, got {group_size}")
    spec = ENCODER_FAMILIES[encoder]
    dim, separation = int(spec["dim"]), float(spec["separation"])
    counts = _class_counts(num_classes, max_per_class, min_per_class)
    bg_count = int(background_count) if background else 0

    rng = np.random.default_rng(seed)
    labels, groups, centre, offset, noise = _latent_samples(rng, counts, bg_count, tuple(group_size))
    latent = separation * centre + offset + noise

    enc_rng = np.random.default_rng([seed, zlib.crc32(encoder.encode())])
    basis, _ = np.linalg.qr(enc_rng.standard_normal((dim, LATENT_DIM)).astype(np.float32))
    global_offset = enc_rng.standard_normal(dim).astype(np.float32)
    global_offset *= np.float32(2.0 * np.sqrt(LATENT_DIM / dim))
    ambient = enc_rng.standard_normal((len(labels), dim), dtype=np.float32)
    ambient *= np.float32(np.sqrt(AMBIENT * LATENT_DIM / dim))
    embeddings = global_offset + latent.astype(np.float32) @ basis.T + ambient

    class_names = [f"class_{k:02d}" for k in range(num_classes)] + ([background] if background else [])
    image_ids = []
    for label, count in enumerate([*counts, bg_count] if background else counts):
        image_ids += [f"{class_names[label]}/{class_names[label]}_{i:05d}.jpg" for i in range(int(count))]
    meta = dict(
        encoder=encoder, backbone=spec["timm_name"], dim=dim, synthetic=True, seed=seed, separation=separation,
        family=spec["family"], counts={class_names[k]: int(c) for k, c in enumerate(counts)},
        background=background, background_count=bg_count, group_size=list(group_size),
        num_groups=int(groups.max()) + 1, version=_VERSION,
    )
    return EmbeddingCache(torch.from_numpy(embeddings), torch.from_numpy(labels), torch.from_numpy(groups),
                          image_ids, class_names, meta)


def synthetic_embedding_cache(
    encoder: str,
    num_classes: int = 12,
    max_per_class: int = 300,
    min_per_class: int = 4,
    background: str | None = "background",
    background_count: int = 400,
    group_size: tuple[int, int] = (1, 6),
    seed: int = 0,
    cache_dir: str | None = None,
) -> str:
    """Write (once) the synthetic cache of ``encoder`` and return its path.

    The file is ``<base>/synthetic/embeddings/<encoder>-<key>.safetensors`` (base: ``cache_dir``, else
    ``$ZOOLAB_CACHE``, else ``~/.cache/zoolab``); ``key`` hashes every argument but ``cache_dir`` plus a
    format version, so a change never reuses an old file.
    """
    settings = dict(encoder=encoder, num_classes=num_classes, max_per_class=max_per_class,
                    min_per_class=min_per_class, background=background, background_count=background_count,
                    group_size=list(group_size), seed=seed)
    key = cache_key(**settings, version=_VERSION)
    base = Path(cache_dir or os.environ.get("ZOOLAB_CACHE", Path.home() / ".cache" / "zoolab")).expanduser()
    path = base / "synthetic" / "embeddings" / f"{encoder}-{key}.safetensors"
    if not path.is_file():
        save_cache(path, generate_embedding_cache(**settings))
    return str(path)
