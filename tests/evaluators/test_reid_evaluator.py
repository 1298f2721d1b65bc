"""Re-ID evaluators: built from a split's plain-data description, features gathered by dataset index in any
batch order, the hand protocol against averaged_over_splits, the Market rule on a hand-computed case."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoolab.errors import ZoolabError
from zoolab.evaluators.reid import QueryGalleryEvaluator, SingleGalleryEvaluator, reid_evaluator
from zoolab.metrics.reid import averaged_over_splits, single_gallery_splits


def _angles(degrees) -> np.ndarray:
    radians = np.radians(np.asarray(degrees, dtype=float))
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


PIDS = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3])
HAND = {"protocol": "single_gallery", "pids": PIDS, "num_splits": 4, "seed": 3}


def test_single_gallery_equals_averaged_over_splits_in_any_batch_order():
    features = _angles(np.random.default_rng(0).uniform(0, 360, PIDS.size))
    evaluator = reid_evaluator(HAND)
    assert isinstance(evaluator, SingleGalleryEvaluator)
    order = np.random.default_rng(1).permutation(PIDS.size)
    for chunk in np.array_split(order, 3):  # batches out of dataset order
        evaluator.process(features=torch.tensor(features[chunk], dtype=torch.float32),
                          indices=torch.tensor(chunk))
    metrics = evaluator.evaluate().metrics
    expected = averaged_over_splits(features.astype(np.float32), PIDS, num_splits=4, seed=3)
    assert metrics == {**expected, "num_queries": PIDS.size - 4, "num_gallery": 4}
    assert metrics["num_splits"] == 4 and "rank1_std" in metrics
    assert [q.tolist() for q, _ in evaluator.splits()] == [q.tolist() for q, _ in single_gallery_splits(PIDS, 4, 3)]


def test_one_hot_identities_are_perfect_and_indices_may_be_omitted():
    evaluator = reid_evaluator(HAND)
    evaluator.process(features=np.eye(4)[PIDS[:5]])
    evaluator.process(features=np.eye(4)[PIDS[5:]])  # continues at index 5
    metrics = evaluator.evaluate().metrics
    assert metrics["rank1"] == metrics["mAP"] == 1.0 and metrics["rank1_std"] == 0.0


def test_market_rule_hand_computed():
    # query 0 (pid 1, cam 0) at 0 deg; query 1 (pid 2, cam 2) at 90 deg. Gallery: pid 1 cam 0 at 1 deg
    # (same camera: removed), distractor pid 0 at 10 deg (a negative ranked first), pid 1 cam 1 at 20 deg
    # (the true match at rank 2 -> AP 1/2), pid 2 cam 0 at 91 deg (rank 1 for query 1).
    description = {"protocol": "query_gallery", "pids": [1, 2, 1, 0, 1, 2], "camids": [0, 2, 0, 1, 1, 0],
                   "num_queries": 2, "num_gallery": 4}
    evaluator = reid_evaluator(description)
    assert isinstance(evaluator, QueryGalleryEvaluator)
    evaluator.process(features=_angles([0, 90, 1, 10, 20, 91]), indices=range(6))
    metrics = evaluator.evaluate().metrics
    assert metrics["rank1"] == 0.5 and metrics["rank5"] == 1.0 and metrics["mAP"] == pytest.approx(0.75)
    assert metrics["num_valid_queries"] == 2 and (metrics["num_queries"], metrics["num_gallery"]) == (2, 4)


def test_reset_scores_only_the_features_processed_after_it():
    evaluator = reid_evaluator(HAND)
    evaluator.process(features=np.ones((PIDS.size, 4)))  # all alike
    evaluator.evaluate()
    evaluator.reset()
    evaluator.process(features=np.eye(4)[PIDS], indices=np.arange(PIDS.size))
    assert evaluator.evaluate().metrics["mAP"] == 1.0


def test_missing_features_and_bad_descriptions_are_errors():
    evaluator = reid_evaluator(HAND)
    evaluator.process(features=np.eye(4)[PIDS[:-1]])
    with pytest.raises(ZoolabError, match="every query and gallery image"):
        evaluator.evaluate()
    with pytest.raises(ValueError, match="indices"):
        evaluator.process(features=np.eye(4)[:2], indices=[0])
    with pytest.raises(ValueError, match=r"\[B, D\]"):
        evaluator.process(features=np.zeros(3))
    with pytest.raises(ValueError, match="protocol"):
        reid_evaluator({"protocol": "other"})
    with pytest.raises(ValueError, match="camids"):
        QueryGalleryEvaluator([1, 2], [0], num_queries=1, num_gallery=1)


def test_ranked_strips_follow_cosine_order_and_the_market_rule():
    # queries 0 (pid 5, cam 1) and 1 (pid 6, cam 1); gallery 2..5
    pids, camids = np.array([5, 6, 5, 5, 6, 7]), np.array([1, 1, 1, 2, 2, 2])
    evaluator = QueryGalleryEvaluator(pids, camids, num_queries=2, num_gallery=4)
    evaluator.process(features=torch.tensor(_angles([0, 90, 1, 10, 80, 45]), dtype=torch.float32))
    strips = evaluator.ranked(queries=2, k=3)
    # query 0: gallery 2 is the same pid and camera (left out), then 3 (10 deg), 5 (45), 4 (80)
    assert strips[0] == {"query": 0, "gallery": [3, 5, 4], "correct": [True, False, False]}
    assert strips[1] == {"query": 1, "gallery": [4, 5, 3], "correct": [True, False, False]}


def test_ranked_strips_of_the_hand_protocol_use_its_first_split():
    evaluator = reid_evaluator(HAND)
    evaluator.process(features=torch.tensor(_angles(np.arange(PIDS.size) * 30.0), dtype=torch.float32))
    query, gallery = single_gallery_splits(PIDS, 4, 3)[0]
    strips = evaluator.ranked(queries=3, k=2)
    assert [s["query"] for s in strips] == list(query[:3])
    assert all(set(s["gallery"]) <= set(gallery) and len(s["gallery"]) == 2 for s in strips)
    assert all(s["correct"] == [bool(PIDS[g] == PIDS[s["query"]]) for g in s["gallery"]] for s in strips)


def test_ranked_gallery_picture_frames_right_and_wrong_matches():
    import io

    from PIL import Image

    from zoolab.families.reid import GREEN, RED, ranked_gallery_png

    dataset = [(torch.full((3, 64, 32), 128.0), 0, 0, i) for i in range(4)]
    png = ranked_gallery_png(dataset, [{"query": 0, "gallery": [1, 2], "correct": [True, False]}], "t", height=64)
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert image.shape[0] == 18 + 64 + 8 + 14 + 6
    colours = {tuple(int(v) for v in image[18 + 14 + 1, x]) for x in range(image.shape[1])}
    assert GREEN in colours and RED in colours  # the top border of each gallery tile
