"""DataLoaders whose worker-side randomness survives a resume: every training sample is drawn with its own
seed, handed to the worker with the sample's index.

Why: with ``num_workers > 0`` and ``persistent_workers=True`` each worker seeds torch, numpy and ``random``
once, when it starts, and keeps drawing from them epoch after epoch. A run resumed from ``last.ckpt`` starts
fresh workers whose generators are not where the uninterrupted run's were, so its augmentations differ;
the checkpoint (``RngStateCheckpoint``) holds only the main process's generators. A persistent iterator is
also created once, and creating one draws its workers' base seed from torch's global generator, so a
resumed run would draw once more than the uninterrupted one and shift everything after.

How: ``train_loader`` wraps the sampler in :class:`SampleSeeds`, which pairs each index with a seed drawn in
the main process from one draw of torch's global generator per epoch (restored on resume, so the same
seeds come again), and the dataset in :class:`SeededSamples`, which reseeds the worker's torch, numpy and
``random`` generators from that seed before it reads the sample. What a sample looks like then depends
only on the run's seed, the epoch and the sample's position, not on which worker read it, when that
worker started, or how many workers there are. The loader's own ``generator`` (the workers' base seed)
is private, so creating an iterator draws nothing from the global generator. Workers stay persistent:
nothing is restarted per epoch. ``eval_loader_kwargs`` gives evaluation loaders the same private
generator (evaluation splits draw nothing random, so their workers need no per-sample seeds). With
``num_workers=0`` both are plain loaders (the main process's generators are checkpointed).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler, get_worker_info

__all__ = ["SampleSeeds", "SeededSamples", "eval_loader_kwargs", "is_seeded", "seed_worker_generators",
           "train_loader"]

_SEED_HIGH = 2**63 - 1


def seed_worker_generators(seed: int) -> None:
    """Seed torch, numpy's legacy global generator and Python's ``random`` in this process."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


class SampleSeeds(Sampler):
    """Yields ``(index, seed)`` for every index of ``sampler``; the seeds of one pass follow from a single
    draw of torch's global generator when the pass starts (so a restored generator repeats them)."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this every epoch; passed on to samplers that plan per epoch."""
        if callable(getattr(self.sampler, "set_epoch", None)):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[Any, int]]:
        seeds = torch.Generator().manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
        for index in self.sampler:
            yield index, int(torch.randint(_SEED_HIGH, (), generator=seeds).item())


class SeededSamples(Dataset):
    """``dataset`` read with ``(index, seed)`` keys: in a worker process the random generators are seeded
    from ``seed`` first. Other attributes are those of ``dataset``."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[Any, int]):
        index, seed = key
        if get_worker_info() is not None:  # never reseed the main process (dropout, shuffling live there)
            seed_worker_generators(seed)
        return self.dataset[index]

    def __getattr__(self, name: str):
        # dunders (DataLoader probes __getitems__) and lookups before __init__ (unpickling) are not forwarded
        if name.startswith("__") or "dataset" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["dataset"], name)


def _private_generator() -> torch.Generator:
    return torch.Generator().manual_seed(torch.initial_seed() % _SEED_HIGH)


def eval_loader_kwargs(num_workers: int) -> dict:
    """``DataLoader`` kwargs for an evaluation loader: persistent workers with a private base-seed
    generator (creating the iterator then draws nothing from torch's global generator)."""
    if num_workers <= 0:
        return {"num_workers": 0}
    return {"num_workers": num_workers, "persistent_workers": True, "generator": _private_generator()}


def train_loader(dataset: Dataset, num_workers: int, shuffle: bool = False, sampler: Sampler | None = None,
                 **kwargs) -> DataLoader:
    """A training ``DataLoader`` that a resumed run replays exactly, with any number of (persistent) workers.

    ``shuffle`` / ``sampler`` and ``kwargs`` (batch_size, drop_last, collate_fn, ...) mean what they mean
    for ``DataLoader``; with workers the dataset and sampler are wrapped as described in the module doc."""
    if num_workers <= 0:
        return DataLoader(dataset, shuffle=shuffle, sampler=sampler, **kwargs)
    if sampler is None:
        sampler = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)  # global generator
    return DataLoader(SeededSamples(dataset), sampler=SampleSeeds(sampler), **eval_loader_kwargs(num_workers),
                      **kwargs)


def is_seeded(loader: Any) -> bool:
    """True for a loader made by :func:`train_loader` with workers."""
    return isinstance(getattr(loader, "dataset", None), SeededSamples)
