"""Tests for zoolab.metrics.reid: hand-computed CMC / AP, Market filtering, vectorised == loop, splits."""

from __future__ import annotations

import numpy as np
import pytest

from zoolab.metrics import reid
from zoolab.metrics.reid import averaged_over_splits, rank_metrics, rank_metrics_loop, single_gallery_splits

BOTH = pytest.mark.parametrize("fn", [rank_metrics, rank_metrics_loop], ids=["vectorised", "loop"])


def _distmat_from_orders(orders: list[list[int]]) -> np.ndarray:
    """distmat[q, g] = position of g in the q-th ranking (0 = nearest)."""
    dist = np.zeros((len(orders), len(orders[0])))
    for q, order in enumerate(orders):
        dist[q, order] = np.arange(len(order))
    return dist


@BOTH
def test_hand_computed_three_by_five(fn):
    g_pids = np.array([1, 2, 1, 3, 2])
    q_pids = np.array([1, 2, 3])
    dist = _distmat_from_orders([
        [1, 0, 3, 2, 4],  # pids 2,1,3,1,2 -> positives at ranks 2 and 4: AP = (1/2 + 2/4) / 2 = 0.5
        [1, 4, 0, 2, 3],  # pids 2,2,1,1,3 -> positives at ranks 1 and 2: AP = (1/1 + 2/2) / 2 = 1.0
        [0, 1, 2, 4, 3],  # pids 1,2,1,2,3 -> positive at rank 5: AP = 1/5
    ])
    out = fn(dist, q_pids, g_pids)
    assert out["rank1"] == pytest.approx(1 / 3)    # only query 2 hits at rank 1
    assert out["rank5"] == pytest.approx(1.0)      # first hits at 2, 1, 5
    assert out["rank10"] == pytest.approx(1.0)
    assert out["mAP"] == pytest.approx((0.5 + 1.0 + 0.2) / 3)
    assert out["num_valid_queries"] == 3


@BOTH
def test_single_gallery_ap_is_reciprocal_rank(fn):
    g_pids = np.array([10, 20, 30, 40])
    q_pids = np.array([10, 20, 30, 40])
    dist = _distmat_from_orders([
        [0, 1, 2, 3],  # rank 1
        [0, 1, 2, 3],  # pid 20 at rank 2
        [0, 1, 3, 2],  # pid 30 at rank 4
        [0, 1, 3, 2],  # pid 40 at rank 3
    ])
    out = fn(dist, q_pids, g_pids)
    assert out["mAP"] == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 3) / 4)
    assert out["rank1"] == pytest.approx(0.25)
    assert out["rank5"] == pytest.approx(1.0)
    assert out["mAP"] >= out["rank1"]


@BOTH
def test_market_same_camera_and_junk_removed(fn):
    # Ranked gallery: same pid + same cam (removed), junk -1 (removed), pid 0 background (kept
    # negative), true match on another camera, other identity.
    g_pids = np.array([1, -1, 0, 1, 2])
    g_cams = np.array([0, 1, 1, 1, 0])
    dist = np.arange(5, dtype=float)[None, :]
    out = fn(dist, [1], g_pids, [0], g_cams)
    # kept list: [pid 0, pid 1, pid 2] -> positive at rank 2
    assert out["rank1"] == 0.0
    assert out["rank5"] == 1.0
    assert out["mAP"] == pytest.approx(0.5)

    # Without camera filtering the rank-1 same-camera item counts; junk is still dropped:
    # kept [pid 1, pid 0, pid 1, pid 2] -> positives at 1 and 3.
    expected = {"rank1": 1.0, "mAP": pytest.approx((1 + 2 / 3) / 2)}
    for kwargs in ({"q_camids": [0], "g_camids": g_cams, "remove_same_camera": False}, {}):
        out = fn(dist, [1], g_pids, **kwargs)
        assert out["rank1"] == expected["rank1"]
        assert out["mAP"] == expected["mAP"]


@BOTH
def test_query_without_valid_positive_is_skipped(fn):
    g_pids = np.array([1, 2, 3])
    g_cams = np.array([0, 0, 1])
    # query 0 (pid 1, cam 1): hit at rank 1; query 1 (pid 9): no match in gallery;
    # query 2 (pid 2, cam 0): only positive is on its own camera -> removed -> skipped.
    dist = np.tile(np.arange(3, dtype=float), (3, 1))
    out = fn(dist, [1, 9, 2], g_pids, [1, 0, 0], g_cams)
    assert out["num_valid_queries"] == 1
    assert out["rank1"] == 1.0
    assert out["mAP"] == 1.0
    with pytest.raises(ValueError, match="no query"):
        fn(dist[1:], [9, 2], g_pids, [0, 0], g_cams)


def _random_problem(num_q: int, num_g: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(1, 12, num_q)
    g_pids = rng.integers(-1, 12, num_g)  # includes junk -1 and background 0
    q_cams, g_cams = rng.integers(0, 3, num_q), rng.integers(0, 3, num_g)
    dist = np.round(rng.random((num_q, num_g)), 2)  # coarse values -> many ties
    return dist, q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("remove_same_camera", [True, False])
def test_vectorised_equals_loop_random(remove_same_camera):
    dist, q_pids, g_pids, q_cams, g_cams = _random_problem(50, 200, seed=0)
    fast = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, remove_same_camera=remove_same_camera)
    slow = rank_metrics_loop(dist, q_pids, g_pids, q_cams, g_cams, remove_same_camera=remove_same_camera)
    assert fast.keys() == slow.keys() == {"rank1", "rank5", "rank10", "mAP", "cmc", "num_valid_queries"}
    assert fast == slow  # exact, key by key
    curve = fast["cmc"]
    assert len(curve) == 10 and curve == sorted(curve)  # CMC never decreases
    assert (curve[0], curve[4], curve[9]) == (fast["rank1"], fast["rank5"], fast["rank10"])
    assert rank_metrics(dist, q_pids, g_pids) == rank_metrics_loop(dist, q_pids, g_pids)


def test_vectorised_equals_loop_across_chunks(monkeypatch):
    monkeypatch.setattr(reid, "_CHUNK", 7)
    dist, q_pids, g_pids, q_cams, g_cams = _random_problem(40, 60, seed=1)
    assert rank_metrics(dist, q_pids, g_pids, q_cams, g_cams) == rank_metrics_loop(dist, q_pids, g_pids,
                                                                                    q_cams, g_cams)


def test_max_rank_limits_keys_and_bad_inputs():
    dist, q_pids, g_pids, q_cams, g_cams = _random_problem(5, 20, seed=2)
    limited = rank_metrics(dist, q_pids, g_pids, max_rank=5)
    assert set(limited) == {"rank1", "rank5", "mAP", "cmc", "num_valid_queries"} and len(limited["cmc"]) == 5
    with pytest.raises(ValueError, match="both"):
        rank_metrics(dist, q_pids, g_pids, q_camids=q_cams)
    with pytest.raises(ValueError, match="pids"):
        rank_metrics(dist, q_pids[:-1], g_pids)
    dist[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rank_metrics(dist, q_pids, g_pids)


def test_single_gallery_splits_structure_and_determinism():
    pids = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 4])  # ids 2 and 4 are singletons
    splits = single_gallery_splits(pids, num_splits=5, seed=3)
    assert len(splits) == 5
    for query, gallery in splits:
        assert sorted(pids[gallery].tolist()) == [0, 1, 3]  # exactly one gallery image per id with >= 2
        assert np.intersect1d(query, gallery).size == 0
        assert sorted(np.concatenate([query, gallery]).tolist()) == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    again = single_gallery_splits(pids, num_splits=5, seed=3)
    for (q1, g1), (q2, g2) in zip(splits, again):
        np.testing.assert_array_equal(q1, q2)
        np.testing.assert_array_equal(g1, g2)
    galleries = {tuple(g) for _, g in splits}
    assert len(galleries) > 1  # splits differ from each other


def test_averaged_over_splits_perfect_features():
    rng = np.random.default_rng(0)
    pids = np.repeat(np.arange(6), 4)
    centres = rng.normal(size=(6, 16)) * 10
    features = centres[pids] + rng.normal(scale=0.01, size=(pids.size, 16))
    for metric in ("cosine", "euclidean"):
        out = averaged_over_splits(features, pids, num_splits=3, seed=0, metric=metric)
        assert out["rank1"] == 1.0 and out["mAP"] == 1.0 and out["rank1_std"] == 0.0
        assert out["num_valid_queries"] == 18 and out["num_splits"] == 3
    with pytest.raises(ValueError, match="metric"):
        averaged_over_splits(features, pids, metric="manhattan")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int64])
def test_stable_argsort_matches_numpy_stable(dtype):
    rng = np.random.default_rng(4)
    block = np.round(rng.normal(size=(20, 300)), 1)
    block[:, ::5] = 0.0
    block[:, 1::5] = -0.0
    block[3] = rng.normal(size=300)  # a row without ties next to tied rows
    block = block.astype(dtype) if dtype != np.int64 else (block * 10).astype(dtype)
    np.testing.assert_array_equal(reid._stable_argsort(block), np.argsort(block, axis=1, kind="stable"))


def test_vectorised_equals_loop_float32_ties():
    dist, q_pids, g_pids, q_cams, g_cams = _random_problem(30, 300, seed=5)
    dist = dist.astype(np.float32)
    assert rank_metrics(dist, q_pids, g_pids, q_cams, g_cams) == rank_metrics_loop(dist, q_pids, g_pids,
                                                                                    q_cams, g_cams)


def test_cmc_picture_opens_and_shows_the_curve():
    import io

    from PIL import Image

    from zoolab.metrics.reid import cmc_png

    image = Image.open(io.BytesIO(cmc_png([0.5, 0.6, 0.7, 0.75, 0.8, 0.82, 0.85, 0.9, 0.92, 0.95],
                                          title="CMC · val"))).convert("L")
    assert image.size == (605, 440) and np.asarray(image, dtype=float).std() > 10
