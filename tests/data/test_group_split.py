"""Tests for zoolab.data.group_split: group-disjoint splits with a group-level test fraction."""

from __future__ import annotations

import numpy as np
import pytest

from zoolab.data.group_split import group_split, train_val_test_split


def _groups(n_groups: int = 50, seed: int = 0) -> np.ndarray:
    sizes = np.random.default_rng(seed).integers(1, 6, n_groups)
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(n_groups), sizes))


def test_group_split_is_group_disjoint_and_complete() -> None:
    groups = _groups()
    train, test = group_split(groups, test_size=0.2, seed=42)
    assert not set(groups[train]) & set(groups[test])
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(groups.size))
    assert len(set(groups[test])) == 10  # ceil(0.2 * 50) groups, however many samples they hold


def test_group_split_is_deterministic_per_seed() -> None:
    groups = _groups()
    first, second = group_split(groups, seed=42), group_split(groups, seed=42)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not np.array_equal(group_split(groups, seed=7)[1], first[1])


def test_group_count_uses_ceil_without_float_noise() -> None:
    groups = np.repeat([f"img{i:03d}" for i in range(100)], 2)  # string groups work too
    _, test = group_split(groups, test_size=0.07)  # 0.07 * 100 = 7.000000000000001 -> 7, not 8
    assert len(set(groups[test])) == 7
    _, test = group_split(groups, test_size=0.155)  # ceil(15.5) = 16
    assert len(set(groups[test])) == 16


def test_bad_test_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="test_size"):
        group_split(_groups(), test_size=1.0)
    with pytest.raises(ValueError, match="no training group"):
        group_split(np.array([0, 0, 1]), test_size=0.9)


def test_train_val_test_split_three_disjoint_group_sets() -> None:
    groups = _groups()
    train, val, test = train_val_test_split(groups, test_size=0.2, val_size=0.1, seed=42)
    sets = [set(groups[idx]) for idx in (train, val, test)]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert [len(s) for s in sets] == [36, 4, 10]  # val: ceil(0.1 * 40) of the 40 remaining groups
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(groups.size))
    _, test_only = group_split(groups, test_size=0.2, seed=42)
    assert np.array_equal(test, test_only)
    _, no_val, _ = train_val_test_split(groups, val_size=0.0)
    assert no_val.size == 0
