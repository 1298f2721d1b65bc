"""Re-identification: features collected by dataset index, ranked by cosine distance, rank-1/5/10 and mAP.

Two protocols, chosen by the split's description (``dataset.describe()``, plain data: see
``zoolab.data.reid_datasets``):

- ``single_gallery`` (hand datasets): ``num_splits`` seeded splits with one gallery image per identity
  and the rest as queries, no cameras; the mean over splits, ``<key>_std`` (population std over splits)
  and ``num_splits`` (``zoolab.metrics.reid.averaged_over_splits``).
- ``query_gallery`` (Market-1501): the first ``num_queries`` images are queries, the rest the gallery;
  same-pid same-camera gallery entries are removed per query, pid 0 distractors stay as negatives
  (``zoolab.metrics.reid.rank_metrics``).

Both add ``num_queries`` / ``num_gallery``. Every image of the split must have been processed.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from zoolab.errors import ZoolabError
from zoolab.evaluators.base import Evaluation, Evaluator, gather_objects

__all__ = ["PROTOCOLS", "QueryGalleryEvaluator", "ReidEvaluator", "SingleGalleryEvaluator", "reid_evaluator"]

PROTOCOLS = ("single_gallery", "query_gallery")


def _rows(features) -> np.ndarray:
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu()
        features = (features if features.dtype in (torch.float32, torch.float64) else features.float()).numpy()
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be [B, D], got shape {features.shape}")
    return features


class ReidEvaluator(Evaluator):
    """Collects ``process(features [B, D], indices [B])`` (positions in the split's dataset; without
    ``indices`` the rows continue where the last batch ended) and scores them in dataset order."""

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self.reset()

    def reset(self) -> None:
        self._features: dict[int, np.ndarray] = {}
        self.scored: np.ndarray | None = None

    def process(self, features, indices: Iterable[int] | torch.Tensor | None = None) -> None:
        rows = _rows(features)
        if indices is None:
            start = len(self._features)
            indices = range(start, start + len(rows))
        elif isinstance(indices, (torch.Tensor, np.ndarray)):
            indices = indices.tolist()
        indices = [int(i) for i in indices]
        if len(indices) != len(rows):
            raise ValueError(f"{len(rows)} features for {len(indices)} indices")
        for index, row in zip(indices, rows):
            self._features[index] = row

    def features(self) -> np.ndarray:
        """``[N, D]`` float64 features in dataset order (of every DDP rank); every image of the split must
        be there."""
        for part in gather_objects(self._features):
            self._features.update(part)
        if sorted(self._features) != list(range(self.size)):
            raise ZoolabError(f"evaluation collected {len(self._features)} features for a split of {self.size} "
                              "images; re-ID metrics need every query and gallery image",
                              where="trainer.limit_val_batches / trainer.limit_test_batches",
                              fix="leave both at null (all batches)")
        return np.asarray(np.stack([self._features[i] for i in range(self.size)]), dtype=np.float64)

    def evaluate(self) -> Evaluation:
        from zoolab.metrics.reid import cmc_png

        self.scored = self.features()  # kept for ranked(): no second gather across processes
        metrics = self.score(self.scored)
        title = " · ".join(p for p in (self.split, f"rank-1 {metrics['rank1']:.3f}", f"mAP {metrics['mAP']:.3f}") if p)
        name = f"cmc_{self.split}.png" if self.split else "cmc.png"
        return Evaluation(metrics, {name: cmc_png(metrics["cmc"], title=f"CMC · {title}")})

    def score(self, features: np.ndarray) -> dict:
        """The metrics of ``[N, D]`` features in dataset order."""
        raise NotImplementedError

    def query_gallery(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Dataset indices of the queries and of the gallery of the (first) evaluation split, and the
        camera ids when same-camera matches are removed."""
        raise NotImplementedError

    def ranked(self, queries: int = 6, k: int = 5) -> list[dict]:
        """The first ``queries`` queries with their top-``k`` gallery matches by cosine distance, as
        ``{query, gallery: [index...], correct: [bool...]}`` (dataset indices), for ranked-gallery strips;
        gallery images of the query's own identity and camera are left out as the metrics leave them out."""
        from zoolab.metrics.reid import distance_matrix

        features = self.scored if self.scored is not None else self.features()
        query, gallery, camids = self.query_gallery()
        query = query[:queries]
        distances = distance_matrix(features[query], features[gallery], "cosine")
        strips = []
        for row, q in zip(distances, query):
            order = gallery[np.argsort(row, kind="stable")]
            if camids is not None:
                order = order[~((self.pids[order] == self.pids[q]) & (camids[order] == camids[q]))]
            top = order[:k]
            strips.append({"query": int(q), "gallery": [int(g) for g in top],
                           "correct": [bool(self.pids[g] == self.pids[q]) for g in top]})
        return strips


class SingleGalleryEvaluator(ReidEvaluator):
    """Hand protocol: mean (and ``_std``) over ``num_splits`` seeded single-gallery splits."""

    def __init__(self, pids, num_splits: int, seed: int) -> None:
        self.pids = np.asarray(pids, dtype=np.int64).ravel()
        self.num_splits, self.seed = int(num_splits), int(seed)
        super().__init__(self.pids.size)

    def splits(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The ``(query_idx, gallery_idx)`` pairs the metrics average over."""
        from zoolab.metrics.reid import single_gallery_splits

        return single_gallery_splits(self.pids, self.num_splits, self.seed)

    def query_gallery(self) -> tuple[np.ndarray, np.ndarray, None]:
        query, gallery = self.splits()[0]
        return np.asarray(query), np.asarray(gallery), None

    def score(self, features: np.ndarray) -> dict:
        from zoolab.metrics.reid import averaged_over_splits

        out = averaged_over_splits(features, self.pids, self.num_splits, self.seed, metric="cosine")
        num_gallery = int(np.unique(self.pids).size)
        return {**out, "num_queries": self.size - num_gallery, "num_gallery": num_gallery}


class QueryGalleryEvaluator(ReidEvaluator):
    """Fixed query + gallery (queries first), Market rule: same pid + camera removed per query."""

    def __init__(self, pids, camids, num_queries: int, num_gallery: int) -> None:
        self.pids = np.asarray(pids, dtype=np.int64).ravel()
        self.camids = np.asarray(camids, dtype=np.int64).ravel()
        self.num_queries, self.num_gallery = int(num_queries), int(num_gallery)
        if not self.pids.size == self.camids.size == self.num_queries + self.num_gallery:
            raise ValueError(f"{self.pids.size} pids and {self.camids.size} camids for {self.num_queries} "
                             f"queries + {self.num_gallery} gallery images")
        super().__init__(self.pids.size)

    def query_gallery(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        nq = self.num_queries
        return np.arange(nq), np.arange(nq, nq + self.num_gallery), self.camids

    def score(self, features: np.ndarray) -> dict:
        from zoolab.metrics.reid import distance_matrix, rank_metrics

        nq, pids, camids = self.num_queries, self.pids, self.camids
        distances = distance_matrix(features[:nq], features[nq:], "cosine")
        out = rank_metrics(distances, pids[:nq], pids[nq:], camids[:nq], camids[nq:])
        return {**out, "num_queries": self.num_queries, "num_gallery": self.num_gallery}


def reid_evaluator(description: dict) -> ReidEvaluator:
    """The evaluator of a split described by its dataset's ``describe()`` (``protocol`` plus its data)."""
    protocol = description.get("protocol")
    if protocol == "single_gallery":
        return SingleGalleryEvaluator(description["pids"], description["num_splits"], description["seed"])
    if protocol == "query_gallery":
        return QueryGalleryEvaluator(description["pids"], description["camids"], description["num_queries"],
                                     description["num_gallery"])
    raise ValueError(f"unknown re-ID evaluation protocol {protocol!r}; expected one of {PROTOCOLS}")
