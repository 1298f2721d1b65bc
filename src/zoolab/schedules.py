"""Learning-rate schedules that torch has no single scheduler for, as ``LambdaLR`` factors.

Each is a factor of the step count (epoch or iteration) rather than a chain of torch schedulers
(``SequentialLR`` of ``LinearLR`` and ``MultiStepLR``/``CosineAnnealingLR``): one closed-form factor
reproduces the original recipes' numbers exactly and resumes exactly from ``LambdaLR``'s state.
Plain schedules (cosine, multi-step) are torch's own, configured in ``conf/sched``.

- :func:`warmup_multistep`: MMDetection's "1x" schedule (linear warm-up over the first iterations, x0.1
  once 8 and once 11 epochs are complete), stepped every iteration; the task passes ``iters_per_epoch``.
- :class:`WarmupCosine`: linear warm-up over epochs, then cosine decay, stepped every epoch (re-ID).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from zoolab.errors import ZoolabError

__all__ = ["warmup_multistep_factor", "warmup_multistep", "WarmupCosine"]


def warmup_multistep_factor(iteration: int, iters_per_epoch: int, warmup_iters: int = 500,
                            warmup_ratio: float = 0.001, milestones: Sequence[int] = (8, 11),
                            gamma: float = 0.1) -> float:
    """LR multiplier at ``iteration`` (0-based): linear warm-up from ``warmup_ratio`` to 1 over
    ``warmup_iters`` iterations, times ``gamma`` for every milestone epoch already reached
    (milestone ``m`` applies from iteration ``m * iters_per_epoch`` on)."""
    warmup = 1.0
    if iteration < warmup_iters:
        warmup = warmup_ratio + (1.0 - warmup_ratio) * iteration / warmup_iters
    decays = sum(iteration >= m * iters_per_epoch for m in milestones)
    return warmup * gamma ** decays


def warmup_multistep(optimizer: torch.optim.Optimizer, iters_per_epoch: int, warmup_iters: int = 500,
                     warmup_ratio: float = 0.001, milestones: list[int] = (8, 11),
                     gamma: float = 0.1) -> torch.optim.lr_scheduler.LambdaLR:
    """The scheduler for ``optimizer``; the task passes ``iters_per_epoch`` (optimiser steps per epoch,
    known only once the Trainer has the training data) and steps it every iteration."""
    if iters_per_epoch < 1:
        raise ValueError(f"iters_per_epoch must be >= 1, got {iters_per_epoch}")
    if warmup_iters < 0 or not 0.0 < warmup_ratio <= 1.0:
        raise ZoolabError(f"the warm-up schedule needs warmup_iters >= 0 and 0 < warmup_ratio <= 1, got "
                          f"{warmup_iters} and {warmup_ratio}", where="sched.warmup_iters / sched.warmup_ratio",
                          fix="e.g. sched.warmup_iters=500 sched.warmup_ratio=0.001 (the original recipe)")
    milestones = sorted(int(m) for m in milestones)

    def factor(iteration: int) -> float:
        return warmup_multistep_factor(iteration, iters_per_epoch, warmup_iters, warmup_ratio, milestones, gamma)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class WarmupCosine:
    """LR multiplier per epoch for ``torch.optim.lr_scheduler.LambdaLR``: linear warm-up from
    ``warmup_factor`` to 1 over ``warmup_epochs``, then cosine from 1 to ``min_factor`` at ``max_epochs``.

    A callable object rather than a function so LambdaLR's state dict (resume) keeps it.
    """

    def __init__(self, warmup_epochs: int = 5, max_epochs: int = 20, warmup_factor: float = 0.1,
                 min_factor: float = 0.0) -> None:
        if warmup_epochs < 0 or max_epochs < 1:
            raise ValueError(f"need warmup_epochs >= 0 and max_epochs >= 1, got {warmup_epochs}, "
                             f"{max_epochs}")
        self.warmup_epochs, self.max_epochs = warmup_epochs, max_epochs
        self.warmup_factor, self.min_factor = warmup_factor, min_factor

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return self.warmup_factor + (1.0 - self.warmup_factor) * epoch / self.warmup_epochs
        span = max(1, self.max_epochs - self.warmup_epochs)
        progress = min(1.0, (epoch - self.warmup_epochs) / span)
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
