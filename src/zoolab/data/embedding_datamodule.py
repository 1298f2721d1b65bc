"""Cached-embedding datasets: group split, background-class augmentation and embedding normalisation.

Definitions (the report's run labels use these knobs):

- Split: a fixed group split (``test_size`` of the groups, ``split_seed``; no group in two splits), then a
  validation part taken from the training groups (``val_size``) for early stopping and calibration.
- ``bg`` (background-class augmentation): the cache's background class is added to *training* at most
  ``bg`` times the median foreground class count of the training split (``bg5``: five times the median);
  ``null`` adds all of it, ``0`` none. Validation and test keep all their background samples, and the
  ``_fg`` metrics leave the background class out of the averages.
- ``balnorm``: every embedding is L2-normalised before anything else (unit norm, so encoders with large
  activations do not dominate the MLP's first layer).
- ``standardize``: ``none``, ``center`` (subtract the training mean) or ``standardize`` (also divide by the
  training std). Statistics come from the training split only and are stored with the head.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from zoolab.errors import ZoolabError

__all__ = ["SAMPLERS", "EmbeddingDataModule", "check_sampler"]

SAMPLERS = ("natural", "balanced", "sqrt")


def check_sampler(sampler: str, where: str) -> None:
    if sampler not in SAMPLERS:
        raise ZoolabError(f"unknown sampler '{sampler}'", where=where, fix=f"use one of {', '.join(SAMPLERS)}")

log = logging.getLogger(__name__)
STANDARDIZE = ("none", "center", "standardize")


class EmbeddingDataModule(L.LightningDataModule):
    """Train/val/test loaders over one embedding cache (``zoolab.data.embedding_cache`` format).

    Args:
        cache: path of the cache file.
        name: dataset name used in run labels (``qwen_dataset``).
        encoder: encoder family of the cache, used in run labels (``dinov3_vitl16``).
        backbone: timm name of the encoder the cache must come from (the experiment's ``backbone.name``),
            checked against the ``backbone`` the cache's metadata records; None skips the check.
        background: name of the background class in the cache, or None.
        bg: background-class augmentation factor (see module docstring).
        balnorm: L2-normalise embeddings.
        standardize: ``none`` | ``center`` | ``standardize`` (training statistics).
        sampler: ``natural``, ``balanced`` (class-balanced sampling with replacement) or ``sqrt``
            (square-root sampling: class c drawn with probability proportional to sqrt(n_c)).
    """

    def __init__(
        self,
        cache: str,
        name: str = "dataset",
        encoder: str = "encoder",
        backbone: str | None = None,
        background: str | None = "background",
        bg: float | None = 5,
        balnorm: bool = True,
        standardize: str = "none",
        test_size: float = 0.2,
        val_size: float = 0.1,
        split_seed: int = 42,
        batch_size: int = 256,
        sampler: str = "natural",
    ) -> None:
        super().__init__()
        if standardize not in STANDARDIZE:
            raise ZoolabError(f"unknown dataset.standardize '{standardize}'", where="dataset.standardize",
                              fix=f"use one of {', '.join(STANDARDIZE)}")
        check_sampler(sampler, "dataset.sampler")
        self.cache_path = cache
        self.name, self.encoder, self.backbone = name, encoder, backbone
        self.background = background
        self.bg = bg
        self.balnorm = balnorm
        self.standardize = standardize
        self.test_size, self.val_size, self.split_seed = test_size, val_size, split_seed
        self.batch_size = batch_size
        self.sampler = sampler
        self.tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.class_names: list[str] = []
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def dim(self) -> int:
        return int(self.tensors["train"][0].shape[1])

    @property
    def background_index(self) -> int | None:
        return self.class_names.index(self.background) if self.background in self.class_names else None

    @property
    def eval_splits(self) -> list[str]:
        return [s for s in ("val", "test") if s in self.tensors]

    def train_counts(self) -> torch.Tensor:
        labels = self.tensors["train"][1]
        return torch.bincount(labels, minlength=self.num_classes).float()

    def _subsample_background(self, idx: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        bg_index = self.background_index
        if bg_index is None or self.bg is None:
            return idx
        is_bg = labels[idx] == bg_index
        fg_counts = np.bincount(labels[idx][~is_bg], minlength=self.num_classes)
        fg_counts = fg_counts[np.arange(self.num_classes) != bg_index]
        keep = int(self.bg * np.median(fg_counts[fg_counts > 0])) if (fg_counts > 0).any() else 0
        bg_idx = idx[is_bg]
        if len(bg_idx) > keep:
            bg_idx = rng.choice(bg_idx, size=keep, replace=False)
        return np.sort(np.concatenate([idx[~is_bg], bg_idx]))

    def setup(self, stage: str | None = None) -> None:
        if self.tensors:
            return
        from zoolab.data.embedding_cache import load_cache
        from zoolab.data.group_split import train_val_test_split

        if not Path(self.cache_path).is_file():
            raise ZoolabError(
                f"embedding cache '{self.cache_path}' does not exist",
                where="dataset.cache",
                fix=f"set EMB_ROOT to the folder holding {self.encoder}.safetensors (written by "
                f"+exp=embed_{self.encoder}), or use dataset=synthetic_embeddings or +smoke=cpu for the "
                "embedded synthetic caches",
            )
        self._check_encoder()
        cache = load_cache(self.cache_path)
        self.class_names = list(cache.class_names)
        if self.background is not None and self.background not in self.class_names:
            log.warning("background class '%s' not in the cache; no background augmentation", self.background)
        x = cache.embeddings.float()
        if self.balnorm:
            x = torch.nn.functional.normalize(x, dim=1)
        labels = cache.labels.numpy()
        train, val, test = train_val_test_split(cache.groups.numpy(), self.test_size, self.val_size, self.split_seed)
        train = self._subsample_background(train, labels, np.random.default_rng(self.split_seed))
        self.mean = x[train].mean(0) if self.standardize != "none" else torch.zeros(x.shape[1])
        self.std = x[train].std(0).clamp_min(1e-6) if self.standardize == "standardize" else torch.ones(x.shape[1])
        x = (x - self.mean) / self.std
        y = cache.labels.long()
        for split, idx in (("train", train), ("val", val), ("test", test)):
            if len(idx):
                index = torch.as_tensor(idx, dtype=torch.long)
                self.tensors[split] = (x[index].contiguous(), y[index].contiguous())

    def _check_encoder(self) -> None:
        """Refuse a cache made by another encoder: the run would train on it and report under this one."""
        from zoolab.data.embedding_cache import cache_info

        if self.backbone is None:
            return
        info = cache_info(self.cache_path)
        made_by = info["meta"].get("backbone")
        if made_by is None:
            log.warning("embedding cache %s does not record its encoder; cannot check it is %s",
                        self.cache_path, self.backbone)
            return
        if made_by != self.backbone:
            raise ZoolabError(
                f"embedding cache '{self.cache_path}' holds {info['num_images']} {info['dim']}-d embeddings of "
                f"'{made_by}', but this experiment is about '{self.backbone}' (backbone.name, "
                f"dataset.encoder={self.encoder}) and would report that cache's results under it",
                where=f"dataset.cache = {self.cache_path}",
                fix=f"point dataset.cache (or $EMB_ROOT/{self.encoder}.safetensors) at the cache written by "
                f"+exp=embed_{self.encoder}, or run the clf_* experiment of the cache's encoder",
            )

    def loader(self, split: str, shuffle: bool = False, sampler: str = "natural") -> DataLoader:
        x, y = self.tensors[split]
        dataset = TensorDataset(x, y)
        if sampler == "natural":
            return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle)
        counts = torch.bincount(y, minlength=self.num_classes).float().clamp_min(1)
        if sampler == "balanced":  # an epoch shows every present class as often as the largest one
            weights, num = (1.0 / counts)[y], int(counts.max().item()) * int(torch.unique(y).numel())
        else:  # sqrt: per-sample weight n_c^-1/2, so class c is drawn with probability ~ sqrt(n_c)
            weights, num = counts.rsqrt()[y], len(y)
        return DataLoader(dataset, batch_size=self.batch_size,
                          sampler=WeightedRandomSampler(weights, num_samples=num, replacement=True))

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True, sampler=self.sampler)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test" if "test" in self.tensors else "val")
