"""Group-aware train/val/test splits: no group (image, tree, orchard, ...) lands in two splits.

Same rule as ``sklearn.model_selection.GroupShuffleSplit(n_splits=1)``: the unique groups are permuted
and the first ceil(test_size * n_groups) go to test. ``test_size`` is a fraction of *groups*, so the
sample-level test fraction is only approximately ``test_size``. The ceil allows 1e-9 of float noise
(0.07 * 100 groups gives 7 test groups; sklearn takes 8). The permutation comes from
``np.random.default_rng(seed)``, so indices are deterministic per seed but differ from sklearn's.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["group_split", "train_val_test_split"]

# 0.07 * 100 evaluates to 7.000000000000001; without slack ceil() would take 8 groups, not 7.
_CEIL_EPS = 1e-9


def group_split(groups: np.ndarray, test_size: float = 0.2, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, test_idx), sorted sample indices, with ceil(test_size * n_groups) groups in test."""
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise ValueError(f"groups must be 1-D, got shape {groups.shape}")
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a fraction of groups in (0, 1), got {test_size}")
    unique, group_of_sample = np.unique(groups, return_inverse=True)
    n_groups = unique.size
    n_test = math.ceil(test_size * n_groups - _CEIL_EPS)
    if n_groups - n_test < 1:
        raise ValueError(f"test_size={test_size} leaves no training group out of {n_groups} groups")
    test_groups = np.random.default_rng(seed).permutation(n_groups)[:n_test]
    in_test = np.isin(group_of_sample.ravel(), test_groups)
    return np.flatnonzero(~in_test), np.flatnonzero(in_test)


def train_val_test_split(groups: np.ndarray, test_size: float = 0.2, val_size: float = 0.1,
                         seed: int = 42) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) indices: a group split for test, then one of the rest for val (seed + 1).

    ``val_size`` is a fraction of the groups left for training; 0 gives an empty validation split.
    """
    groups = np.asarray(groups)
    train_val, test = group_split(groups, test_size, seed)
    if val_size == 0:
        return train_val, np.empty(0, dtype=np.int64), test
    train_sub, val_sub = group_split(groups[train_val], val_size, seed + 1)
    return train_val[train_sub], train_val[val_sub], test
