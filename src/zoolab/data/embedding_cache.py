"""The embedding cache: frozen-encoder vectors with labels, group ids and image ids in one safetensors file.

One file per (image tree, encoder setting). Tensors ``embeddings`` [N, D] float32, ``labels`` [N] int64
and ``groups`` [N] int64; the safetensors string metadata holds JSON for ``image_ids``, ``class_names``
and ``meta`` (encoder, pooling, input size, normalisation, weights hash, ...). Never pickle: a cache is
read with ``safetensors`` alone, so opening one cannot run code.

The file name carries ``cache_key(**settings)``, a hash of every setting that changes the vectors, so a
changed setting never reuses stale vectors.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoolab.errors import ZoolabError

__all__ = ["EmbeddingCache", "cache_key", "save_cache", "load_cache", "cache_info", "CACHE_FORMAT"]

CACHE_FORMAT = "zoolab-embedding-cache/1"
_TENSORS = ("embeddings", "labels", "groups")
_MISSING_FIX = "run the embed experiment first, or add +smoke=cpu to use the synthetic caches"


@dataclass
class EmbeddingCache:
    """Embeddings of N images with their labels, group ids (for leak-free splits) and image ids."""

    embeddings: torch.Tensor  # [N, D] float32
    labels: torch.Tensor  # [N] int64
    groups: torch.Tensor  # [N] int64
    image_ids: list[str]
    class_names: list[str]
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.embeddings = torch.as_tensor(self.embeddings, dtype=torch.float32)
        self.labels = torch.as_tensor(self.labels, dtype=torch.int64)
        self.groups = torch.as_tensor(self.groups, dtype=torch.int64)
        self.image_ids = [str(i) for i in self.image_ids]
        self.class_names = [str(c) for c in self.class_names]
        n = self.embeddings.shape[0]
        if self.embeddings.ndim != 2:
            raise ValueError(f"embeddings must be [N, D], got shape {tuple(self.embeddings.shape)}")
        sizes = {"labels": self.labels.shape, "groups": self.groups.shape,
                 "image_ids": (len(self.image_ids),)}
        bad = {k: tuple(v) for k, v in sizes.items() if tuple(v) != (n,)}
        if bad:
            raise ValueError(f"embedding cache fields must all have N={n} rows, got {bad}")
        if n and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.class_names)):
            raise ValueError(f"labels must lie in [0, {len(self.class_names)}) (one per class name)")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])


def cache_key(**settings: Any) -> str:
    """12 hex characters of the sha256 of the settings as sorted-key JSON."""
    text = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def save_cache(path: Path, cache: EmbeddingCache) -> Path:
    """Write ``cache`` to ``path`` atomically (temp file in the same folder, then ``os.replace``)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: getattr(cache, name).detach().cpu().contiguous() for name in _TENSORS}
    metadata = {
        "format": CACHE_FORMAT,
        "image_ids": json.dumps(cache.image_ids),
        "class_names": json.dumps(cache.class_names),
        "meta": json.dumps(cache.meta, default=str),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read(path: Path, with_tensors: bool) -> tuple[dict, dict, tuple[int, int]]:
    """Return (tensors, metadata, embeddings shape) of a zoolab cache, or raise a ZoolabError."""
    from safetensors import safe_open

    path = Path(path).expanduser()
    if not path.is_file():
        raise ZoolabError(f"embedding cache '{path}' does not exist", where=str(path), fix=_MISSING_FIX)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != CACHE_FORMAT or not set(_TENSORS) <= set(handle.keys()):
                raise ValueError("not a zoolab embedding cache")
            shape = tuple(handle.get_slice("embeddings").get_shape())
            tensors = {name: handle.get_tensor(name) for name in _TENSORS} if with_tensors else {}
        metadata = {k: json.loads(metadata[k]) for k in ("image_ids", "class_names", "meta")}
    except Exception as exc:  # safetensors raises its own error types for a bad header or body
        raise ZoolabError(
            f"'{path}' is not a readable zoolab embedding cache ({type(exc).__name__}: {exc})",
            where=str(path),
            fix=f"delete it and {_MISSING_FIX}",
        ) from exc
    return tensors, metadata, shape


def cache_info(path: Path) -> dict:
    """Number of images, dimension and meta of a cache, without reading its tensors."""
    _, metadata, (num_images, dim) = _read(path, with_tensors=False)
    return {"num_images": int(num_images), "dim": int(dim), "meta": metadata["meta"]}


def load_cache(path: Path) -> EmbeddingCache:
    """Read a cache written by ``save_cache`` (safetensors only; no pickle)."""
    tensors, metadata, _ = _read(path, with_tensors=True)
    try:
        return EmbeddingCache(**tensors, **metadata)
    except ValueError as exc:
        raise ZoolabError(f"'{path}' is an inconsistent embedding cache: {exc}", where=str(path),
                          fix=f"delete it and {_MISSING_FIX}") from exc
