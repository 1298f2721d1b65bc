"""Re-identification ranking metrics: CMC rank-k and mAP, Market-1501 and single-gallery protocols.

Given a query x gallery distance matrix (smaller = more similar):

- ``rank_metrics`` ranks every gallery item per query and, when camera ids are given, applies the
  Market-1501 rule: gallery items with the query's pid AND camid are removed, so are items with
  pid -1 (junk); pid 0 (Market "distractor"/background) stays as a negative. Queries left with no
  positive are skipped. CMC@k = fraction of valid queries whose first positive is within the top k
  of the kept list; AP = mean over the positives of precision at each positive's kept rank
  (``sum_j j / r_j / m`` for positives at kept ranks r_1 < ... < r_m), so with one positive
  AP = 1 / rank and "mAP" is the mean reciprocal rank.
- ``rank_metrics_loop`` is a per-query loop version of the same computation, kept to cross-check the
  vectorised one.
- ``single_gallery_splits`` / ``averaged_over_splits`` implement the hand-dataset protocol: one random
  gallery image per identity, the rest queries, metrics averaged over seeded splits, no cameras.

Ties in distance are broken by gallery index (the order of ``np.argsort(kind="stable")``), so results
are deterministic. The vectorised path gets that order faster (see ``_stable_argsort``): float32 rows
are sorted as unique 64-bit keys (order-preserving distance bits << 32 | gallery index); float64 rows
use the default sort and fall back to a stable sort only for rows that contain ties. docs/reid.md
describes both protocols as the experiments use them.
"""

from __future__ import annotations

import io

import numpy as np

__all__ = [
    "averaged_over_splits",
    "cmc_png",
    "distance_matrix",
    "rank_metrics",
    "rank_metrics_loop",
    "single_gallery_splits",
]

JUNK_PID = -1
CMC_RANKS = (1, 5, 10)
_CHUNK = 256


def _check_inputs(distmat: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray,
                  q_camids: np.ndarray | None, g_camids: np.ndarray | None,
                  max_rank: int) -> tuple[np.ndarray, ...]:
    distmat = np.asarray(distmat)
    if distmat.ndim != 2:
        raise ValueError(f"distmat must be 2-D [Q, G], got shape {distmat.shape}")
    num_q, num_g = distmat.shape
    q_pids, g_pids = np.asarray(q_pids).ravel(), np.asarray(g_pids).ravel()
    if q_pids.size != num_q or g_pids.size != num_g:
        raise ValueError(f"pids do not match distmat {distmat.shape}: {q_pids.size} query, {g_pids.size} gallery")
    if (q_camids is None) != (g_camids is None):
        raise ValueError("give both q_camids and g_camids, or neither")
    if q_camids is not None:
        q_camids, g_camids = np.asarray(q_camids).ravel(), np.asarray(g_camids).ravel()
        if q_camids.size != num_q or g_camids.size != num_g:
            raise ValueError(f"camids do not match distmat {distmat.shape}: "
                             f"{q_camids.size} query, {g_camids.size} gallery")
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    if not np.isfinite(distmat).all():
        raise ValueError("distmat contains NaN or infinite values")
    return distmat, q_pids, g_pids, q_camids, g_camids


def _stable_argsort(block: np.ndarray) -> np.ndarray:
    """Row-wise ``np.argsort(block, axis=1, kind="stable")``, computed faster for float rows.

    float32: the IEEE bits are mapped to an unsigned key with the same order (flip all bits of
    negatives, set the sign bit of non-negatives; ``+ 0`` turns -0.0 into 0.0), the gallery index
    goes in the low 32 bits, and the unique keys are sorted with the default (fast) algorithm.
    float64: default argsort, then rows with equal neighbours (ties) are redone with a stable sort.
    """
    num_cols = block.shape[1]
    if block.dtype in (np.float16, np.float32) and num_cols < 2 ** 32:
        bits = (block.astype(np.float32) + np.float32(0.0)).view(np.uint32)
        ordered = np.where(bits >> np.uint32(31) == 1, ~bits, bits | np.uint32(0x80000000))
        keys = (ordered.astype(np.uint64) << np.uint64(32)) | np.arange(num_cols, dtype=np.uint64)
        return (np.sort(keys, axis=1) & np.uint64(0xFFFFFFFF)).astype(np.intp)
    if block.dtype != np.float64:
        return np.argsort(block, axis=1, kind="stable")
    order = np.argsort(block, axis=1)
    ranked = np.take_along_axis(block, order, axis=1)
    tied = (ranked[:, 1:] == ranked[:, :-1]).any(axis=1)
    if tied.any():
        order[tied] = np.argsort(block[tied], axis=1, kind="stable")
    return order


def _summary(first_ranks: np.ndarray, aps: np.ndarray, max_rank: int) -> dict:
    """Turn per-valid-query first-positive ranks (1-based) and APs into the metric dict."""
    num_valid = int(first_ranks.size)
    if num_valid == 0:
        raise ValueError("no query has a positive left in the gallery after filtering")
    out = {f"rank{k}": float(np.count_nonzero(first_ranks <= k) / num_valid)
           for k in CMC_RANKS if k <= max_rank}
    out["mAP"] = float(np.mean(aps))
    out["cmc"] = [float(np.count_nonzero(first_ranks <= k) / num_valid) for k in range(1, max_rank + 1)]
    out["num_valid_queries"] = num_valid
    return out


def _keep_mask(sorted_pids: np.ndarray, sorted_cams: np.ndarray | None, q_pid: np.ndarray,
               q_cam: np.ndarray | None) -> np.ndarray:
    """True for ranked gallery items that count: not junk, and not same pid + same camera."""
    keep = sorted_pids != JUNK_PID
    if sorted_cams is not None:
        keep &= ~((sorted_pids == q_pid) & (sorted_cams == q_cam))
    return keep


def rank_metrics(distmat: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray,
                 q_camids: np.ndarray | None = None, g_camids: np.ndarray | None = None,
                 max_rank: int = 10, remove_same_camera: bool = True) -> dict:
    """CMC rank-1/5/10 (fractions, only the k <= ``max_rank``) and mAP, vectorised over queries.

    Rows are processed in chunks of 256 queries: one stable row-wise sort per chunk, then boolean masks
    for junk / same-camera removal and positives, and cumulative sums for kept ranks and hits.
    Camera filtering applies only when both camid arrays are given and ``remove_same_camera`` is True;
    gallery items with pid -1 are always removed. Queries with no positive left are skipped.

    Returns:
        ``{"rank1", "rank5", "rank10", "mAP", "cmc", "num_valid_queries"}``: python floats, ``cmc`` the
        CMC curve at ranks 1..``max_rank``, and an int.
    """
    distmat, q_pids, g_pids, q_camids, g_camids = _check_inputs(distmat, q_pids, g_pids, q_camids,
                                                                g_camids, max_rank)
    use_cams = q_camids is not None and remove_same_camera
    first_ranks, aps = [], []
    for start in range(0, distmat.shape[0], _CHUNK):
        rows = slice(start, start + _CHUNK)
        order = _stable_argsort(distmat[rows])
        sorted_pids = g_pids[order]
        q_pid = q_pids[rows, None]
        keep = _keep_mask(sorted_pids, g_camids[order] if use_cams else None, q_pid,
                          q_camids[rows, None] if use_cams else None)
        hits = (sorted_pids == q_pid) & keep
        num_pos = hits.sum(axis=1)
        valid = num_pos > 0
        hits, keep, num_pos = hits[valid], keep[valid], num_pos[valid]
        kept_rank = np.cumsum(keep, axis=1)  # >= 1 wherever hits is True (a hit is kept)
        first_ranks.append(kept_rank[np.arange(hits.shape[0]), hits.argmax(axis=1)])
        precision = np.where(hits, np.cumsum(hits, axis=1) / np.maximum(kept_rank, 1), 0.0)
        # Sequential (cumsum) rather than pairwise summation: adding the zeros is exact, so this
        # equals a left-to-right sum over the positives only, as in ``rank_metrics_loop``.
        aps.append(np.cumsum(precision, axis=1)[:, -1] / num_pos)
    return _summary(np.concatenate(first_ranks), np.concatenate(aps), max_rank)


def rank_metrics_loop(distmat: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray,
                      q_camids: np.ndarray | None = None, g_camids: np.ndarray | None = None,
                      max_rank: int = 10, remove_same_camera: bool = True) -> dict:
    """Per-query loop version of :func:`rank_metrics` (same arguments and result)."""
    distmat, q_pids, g_pids, q_camids, g_camids = _check_inputs(distmat, q_pids, g_pids, q_camids,
                                                                g_camids, max_rank)
    use_cams = q_camids is not None and remove_same_camera
    first_ranks, aps = [], []
    for i in range(distmat.shape[0]):
        order = np.argsort(distmat[i], kind="stable")
        keep = _keep_mask(g_pids[order], g_camids[order] if use_cams else None, q_pids[i],
                          q_camids[i] if use_cams else None)
        matches = g_pids[order][keep] == q_pids[i]
        positive_ranks = np.flatnonzero(matches) + 1
        if positive_ranks.size == 0:
            continue
        first_ranks.append(positive_ranks[0])
        precisions = np.arange(1, positive_ranks.size + 1) / positive_ranks
        total = 0.0
        for p in precisions:
            total += p
        aps.append(total / positive_ranks.size)
    return _summary(np.asarray(first_ranks, dtype=np.int64), np.asarray(aps, dtype=np.float64), max_rank)


def single_gallery_splits(pids: np.ndarray, num_splits: int = 10,
                          seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Hand-dataset protocol: per split, one random gallery image per identity, the rest are queries.

    Only identities with at least 2 images take part (a singleton could be neither a query with a
    positive nor a useful gallery entry); their images appear in no split. Split ``s`` draws with
    ``np.random.default_rng(seed + s)``. Returns sorted ``(query_idx, gallery_idx)`` index arrays.
    """
    pids = np.asarray(pids).ravel()
    if num_splits < 1:
        raise ValueError(f"num_splits must be >= 1, got {num_splits}")
    unique, inverse, counts = np.unique(pids, return_inverse=True, return_counts=True)
    groups = [np.flatnonzero(inverse == u) for u in np.flatnonzero(counts >= 2)]
    if not groups:
        raise ValueError("single_gallery_splits needs at least one identity with >= 2 images")
    members = np.concatenate(groups)
    splits = []
    for split in range(num_splits):
        rng = np.random.default_rng(seed + split)
        gallery = np.sort(np.array([group[rng.integers(group.size)] for group in groups]))
        query = np.setdiff1d(members, gallery)
        splits.append((query, gallery))
    return splits


def distance_matrix(query: np.ndarray, gallery: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Query x gallery distances: ``1 - cosine similarity`` or euclidean."""
    if metric == "cosine":
        qn = query / np.linalg.norm(query, axis=1, keepdims=True).clip(min=1e-12)
        gn = gallery / np.linalg.norm(gallery, axis=1, keepdims=True).clip(min=1e-12)
        return 1.0 - qn @ gn.T
    if metric == "euclidean":
        sq = (query ** 2).sum(1)[:, None] + (gallery ** 2).sum(1)[None, :] - 2.0 * query @ gallery.T
        return np.sqrt(np.maximum(sq, 0.0))
    raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")


def averaged_over_splits(features: np.ndarray, pids: np.ndarray, num_splits: int = 10, seed: int = 0,
                         metric: str = "cosine") -> dict:
    """Mean and std (``<key>_std``, population std over splits) of :func:`rank_metrics` over
    :func:`single_gallery_splits`, without camera filtering."""
    features = np.asarray(features, dtype=np.float64)
    pids = np.asarray(pids).ravel()
    if features.ndim != 2 or features.shape[0] != pids.size:
        raise ValueError(f"features must be [N, D] with N = len(pids) = {pids.size}, got {features.shape}")
    per_split = []
    for query, gallery in single_gallery_splits(pids, num_splits, seed):
        dist = distance_matrix(features[query], features[gallery], metric)
        per_split.append(rank_metrics(dist, pids[query], pids[gallery]))
    out = {}
    for key in per_split[0]:
        values = np.array([m[key] for m in per_split], dtype=np.float64)
        if values.ndim == 2:  # the CMC curve: averaged rank by rank
            out[key] = [float(v) for v in values.mean(axis=0)]
            continue
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std())
    out["num_splits"] = num_splits
    return out


def cmc_png(cmc: list[float], title: str = "") -> bytes:
    """The CMC curve (share of queries whose first correct match is within rank k), as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ranks = np.arange(1, len(cmc) + 1)
    fig = Figure(figsize=(5.5, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(ranks, cmc, marker="o")
    for k in CMC_RANKS:
        if k <= len(cmc):
            ax.annotate(f"{cmc[k - 1]:.3f}", (k, cmc[k - 1]), textcoords="offset points", xytext=(0, -14),
                        ha="center", fontsize=8)
    ax.set_xlabel("rank k")
    ax.set_ylabel("matching rate (CMC)")
    ax.set_xticks(ranks)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title or "CMC", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
