"""MMDetection's "1x" learning-rate schedule as one per-iteration LambdaLR.

The original recipe (SAR-LoRA-DINO, inherited from MMDetection's ``schedule_1x``) chains ``LinearLR``
(start factor 0.001 over the first 500 iterations) with an epoch-based ``MultiStepLR`` (x0.1 once 8 and
once 11 epochs are complete). Here both are one multiplicative factor of the iteration number, stepped
every optimiser step, so resuming from a checkpoint restores it exactly (LambdaLR keeps ``last_epoch``).
"""

from __future__ import annotations

from typing import Sequence

import torch

from zoolab.errors import ZoolabError

__all__ = ["warmup_multistep_factor", "warmup_multistep"]


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
