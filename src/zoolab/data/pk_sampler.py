"""Identity-balanced P x K sampling for metric-learning losses (batch-hard triplet needs positives).

Every batch holds P = batch_size / K identities with K images each. Per epoch, each identity's images
are shuffled and cut into groups of K (the last ``n mod K`` images are left out, as in torchreid's
``RandomIdentitySampler``); an identity with fewer than K images contributes one group made of all its
images plus draws with replacement from them. The groups are then dealt into batches so that no batch
repeats an identity: with T batches, the identities' groups are laid end to end in a random identity
order and group s goes to batch ``s mod T`` ("wrap-around" scheduling; an identity has at most T groups,
so its groups land in distinct batches). T is the largest count for which this is possible,
``max{T : sum_i min(g_i, T) >= P * T}`` with g_i the identity's group count, which is
``floor(sum_i g_i / P)`` (the torchreid epoch ``sum_i (n_i - n_i mod K)`` rounded down to whole
batches) unless one identity holds more than a 1/P share of the groups. Surplus groups are dropped at
random. The plan depends only on ``(seed, epoch)``, so ``len()`` is exact and runs are repeatable.
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import Sampler

from zoolab.errors import ZoolabError

__all__ = ["RandomIdentitySampler"]


def _max_batches(group_counts: np.ndarray, ids_per_batch: int) -> int:
    """Largest T with sum_i min(g_i, T) >= P * T (the condition is monotone in T)."""
    best = int(group_counts.sum()) // ids_per_batch
    while best > 0 and np.minimum(group_counts, best).sum() < ids_per_batch * best:
        best -= 1
    return best


class RandomIdentitySampler(Sampler[int]):
    """Yields dataset indices in P x K batches; use with ``DataLoader(batch_size=batch_size)``.

    Args:
        labels: identity label of every dataset item.
        batch_size: P * K images per batch.
        num_instances: K, images per identity in a batch (>= 1; the datamodule uses plain shuffling for 0).
        seed: base seed; the plan for an epoch is drawn from ``(seed, epoch)`` (see ``set_epoch``).
    """

    def __init__(self, labels, batch_size: int, num_instances: int, seed: int = 0) -> None:
        labels = np.asarray(labels).ravel()
        if num_instances < 1 or batch_size < num_instances or batch_size % num_instances:
            raise ZoolabError(
                f"a P x K batch needs batch_size ({batch_size}) to be a positive multiple of num_instances "
                f"({num_instances})",
                where="dataset.batch_size / dataset.num_instances",
                fix="e.g. batch_size=64 num_instances=4 (16 identities x 4 images), or num_instances=0 "
                "for plain shuffling",
            )
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.ids_per_batch = batch_size // num_instances
        self.seed = int(seed)
        self.epoch = 0
        identities = np.unique(labels)
        self._members = [np.flatnonzero(labels == identity) for identity in identities]
        if len(self._members) < self.ids_per_batch:
            raise ZoolabError(
                f"a batch needs {self.ids_per_batch} identities x {num_instances} images, but the training "
                f"set has only {len(self._members)} identities",
                where="dataset.batch_size / dataset.num_instances",
                fix="lower batch_size, raise num_instances, or hold out fewer identities (val_identities)",
            )
        self._plan_cache: tuple[int, np.ndarray] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose plan ``__iter__`` yields (Lightning calls this every epoch)."""
        self.epoch = int(epoch)

    def _groups(self, rng: np.random.Generator, members: np.ndarray) -> np.ndarray:
        k = self.num_instances
        order = rng.permutation(members)
        if order.size < k:
            order = np.concatenate([order, rng.choice(members, k - order.size, replace=True)])
        return order[: order.size - order.size % k].reshape(-1, k)

    def _plan(self) -> np.ndarray:
        if self._plan_cache is not None and self._plan_cache[0] == self.epoch:
            return self._plan_cache[1]
        rng = np.random.default_rng([self.seed, self.epoch])
        groups = [self._groups(rng, members) for members in self._members]
        counts = np.array([g.shape[0] for g in groups])
        num_batches = _max_batches(counts, self.ids_per_batch)
        used = np.minimum(counts, num_batches)
        surplus = int(used.sum()) - self.ids_per_batch * num_batches
        if surplus:
            slots = np.repeat(np.arange(len(groups)), used)
            np.subtract.at(used, slots[rng.choice(slots.size, surplus, replace=False)], 1)
        sequence = np.concatenate([groups[i][: used[i]] for i in rng.permutation(len(groups))])
        batches = sequence.reshape(self.ids_per_batch, num_batches, self.num_instances).transpose(1, 0, 2)
        plan = batches[rng.permutation(num_batches)].reshape(-1)
        self._plan_cache = (self.epoch, plan)
        return plan

    def __iter__(self):
        return iter(self._plan().tolist())

    def __len__(self) -> int:
        return int(self._plan().size)
