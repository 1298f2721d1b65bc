"""The evaluator interface: ``reset()``, ``process(**outputs)`` once per batch, ``evaluate() -> Evaluation``.

A task creates (or resets) one evaluator when an evaluation starts (``on_validation_epoch_start`` /
``on_test_epoch_start``), feeds it from its ``validation_step`` / ``test_step`` and asks it for the
result at the end. An evaluator only computes: its :class:`Evaluation` holds the metrics and the figures
as PNG bytes, and the family hands those to the run-folder writer (``plots/<name>``). Evaluators never
write files, and datasets never hold one: a dataset describes its split as plain data and the task
builds the evaluator from that description.

Under DDP every process evaluates its share of the split; an evaluator gathers every process's outputs
(:func:`gather_rows`, :func:`gather_objects`) before it computes, so every rank computes the metrics
of the whole split, equal to those of one process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["Evaluation", "Evaluator", "evaluation_dataset", "gather_objects", "gather_rows", "world_size"]


@dataclass
class Evaluation:
    """What an evaluation gives: JSON-ready ``metrics`` and ``figures`` (file name under the run's
    ``plots/`` -> PNG bytes)."""

    metrics: dict
    figures: dict[str, bytes] = field(default_factory=dict)


class Evaluator:
    """Accumulates a split's outputs batch by batch and turns them into an :class:`Evaluation`.

    ``split`` names the evaluated split where the result depends on it (figure names and titles, the pit
    threshold fitted on ``val``); the task sets it before :meth:`evaluate` when it is not known earlier.
    """

    split: str | None = None
    #: samples in the evaluated split (``len(dataset)``); under DDP it tells the repeated samples apart
    num_samples: int | None = None

    def reset(self) -> None:
        """Forget every processed batch."""
        raise NotImplementedError

    def process(self, **outputs: Any) -> None:
        """Add one batch of model outputs (and its targets)."""
        raise NotImplementedError

    def evaluate(self) -> Evaluation:
        """Metrics (and figures) of everything processed since the last :meth:`reset`."""
        raise NotImplementedError


def evaluation_dataset(dataloaders: Any):
    """The dataset behind a Trainer's ``val_dataloaders`` / ``test_dataloaders`` (one loader or a list of
    them: the first), or None."""
    loader = dataloaders[0] if isinstance(dataloaders, (list, tuple)) and dataloaders else dataloaders
    return getattr(loader, "dataset", None)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_objects(obj: Any) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` (``[obj]`` in a single process); every rank must call it."""
    if world_size() == 1:
        return [obj]
    everyone: list = [None] * world_size()
    dist.all_gather_object(everyone, obj)
    return everyone


def gather_rows(rows: torch.Tensor | np.ndarray | list, num_samples: int | None):
    """Every process's rows of one evaluation (a row per sample, in the order it evaluated them) in
    dataset order.

    Under DDP, Lightning shards an evaluation split with ``DistributedSampler(shuffle=False)``: rank r
    of W gets samples r, r+W, r+2W, ... and the first samples are repeated at the end so that every rank
    gets the same count. Interleaving the ranks' rows restores dataset order and cutting at
    ``num_samples`` drops the repeats. A split that every rank evaluated whole (no sharding sampler) is
    taken from this rank as it is.
    """
    parts = gather_objects(rows)
    if len(parts) == 1 or (num_samples is not None and all(len(p) == num_samples for p in parts)):
        return rows
    order = [(r, k) for k in range(max(len(p) for p in parts)) for r in range(len(parts)) if k < len(parts[r])]
    starts = np.cumsum([0] + [len(p) for p in parts[:-1]])
    index = [int(starts[r]) + k for r, k in order][:num_samples]
    if isinstance(rows, torch.Tensor):
        return torch.cat([p.to(rows.device) for p in parts])[torch.as_tensor(index, dtype=torch.long)]
    if isinstance(rows, list):
        every = [item for part in parts for item in part]
        return [every[i] for i in index]
    return np.concatenate(parts)[index]
