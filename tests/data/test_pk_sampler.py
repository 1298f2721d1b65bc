"""Tests for zoolab.data.pk_sampler: P x K batches, replacement for small identities, determinism, length."""

from __future__ import annotations

import numpy as np
import pytest

from zoolab.data.pk_sampler import RandomIdentitySampler
from zoolab.data.reid import RandomIdentitySampler as ReexportedSampler
from zoolab.errors import ZoolabError


def _batches(sampler: RandomIdentitySampler) -> np.ndarray:
    flat = np.array(list(sampler))
    assert flat.size == len(sampler) and flat.size % sampler.batch_size == 0
    return flat.reshape(-1, sampler.batch_size)


def test_every_batch_is_p_identities_times_k_images():
    labels = np.repeat(np.arange(10), [4, 5, 6, 7, 8, 9, 10, 11, 12, 13])
    sampler = RandomIdentitySampler(labels, batch_size=12, num_instances=4, seed=0)
    assert ReexportedSampler is RandomIdentitySampler
    for batch in _batches(sampler):
        ids, counts = np.unique(labels[batch], return_counts=True)
        assert ids.size == 3 and (counts == 4).all()
        for identity in ids:  # an identity's K images are distinct when it has >= K images
            assert np.unique(batch[labels[batch] == identity]).size == 4


def test_small_identities_are_completed_with_replacement():
    labels = np.array([0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3])  # id 0 has 2 images, id 3 one, K = 4
    sampler = RandomIdentitySampler(labels, batch_size=8, num_instances=4, seed=1)
    assert len(sampler) == 16  # 4 identities, one group each, P = 2: every group is used
    seen = np.concatenate([b for b in _batches(sampler)])
    for identity, members in ((0, {0, 1}), (3, {10})):
        picked = seen[labels[seen] == identity]  # all the identity's images plus repeats, K in total
        assert picked.size == 4 and set(picked.tolist()) == members


def test_epoch_length_is_torchreid_groups_rounded_to_whole_batches():
    counts = [5, 6, 7, 8, 9, 3, 4, 10]  # groups of K=4: 1,1,1,2,2,1,1,2 = 11 (n<K counts as one group)
    labels = np.repeat(np.arange(len(counts)), counts)
    sampler = RandomIdentitySampler(labels, batch_size=8, num_instances=4, seed=0)  # P = 2
    assert len(sampler) == (11 // 2) * 8
    # One identity holding most groups caps the batch count: g = [10, 1, 1] with P = 2 -> T = 2
    # (sum min(g, 2) = 4 >= 2 * 2, but sum min(g, 3) = 5 < 6).
    labels = np.repeat(np.arange(3), [40, 4, 4])
    dominated = RandomIdentitySampler(labels, batch_size=8, num_instances=4, seed=0)
    assert len(dominated) == 2 * 8
    for batch in _batches(dominated):
        assert np.unique(labels[batch]).size == 2


def test_plan_is_deterministic_per_seed_and_epoch():
    labels = np.repeat(np.arange(12), 8)
    a = RandomIdentitySampler(labels, 16, 4, seed=3)
    b = RandomIdentitySampler(labels, 16, 4, seed=3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and len(a) == len(first)
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(RandomIdentitySampler(labels, 16, 4, seed=4)) != first
    a.set_epoch(0)
    assert list(a) == first
    assert sorted(first) == list(range(96))  # balanced ids, n divisible by K: every image once


@pytest.mark.parametrize("batch_size, num_instances, match", [(10, 4, "multiple"), (8, 0, "multiple"),
                                                               (24, 4, "only 4 identities")])
def test_bad_batch_shapes_are_errors(batch_size, num_instances, match):
    with pytest.raises(ZoolabError, match=match):
        RandomIdentitySampler(np.repeat(np.arange(4), 4), batch_size, num_instances)
