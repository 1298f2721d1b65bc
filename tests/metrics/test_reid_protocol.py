"""Known-answer tests of the re-ID evaluation protocols on real layouts: the evaluator built from the
dataset's description (``reid_evaluator(dataset.describe())``) scoring features in dataset order;
single-gallery splits on identity folders and Market-1501 query/gallery with camera filtering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoolab.data.reid import ReidDataModule
from zoolab.errors import ZoolabError
from zoolab.evaluators.reid import reid_evaluator
from zoolab.metrics.reid import single_gallery_splits


def _write(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)


def _hands(root: Path, test_counts: dict[str, int], num_splits: int) -> ReidDataModule:
    for i in range(4):
        for k in range(2):
            _write(root / "train" / f"tr{i}" / f"{k}.jpg", 100 + 2 * i + k)
    for name, n in test_counts.items():
        for k in range(n):
            _write(root / "test" / name / f"{k}.png", k)
    dm = ReidDataModule(root, image_size=[8, 8], batch_size=4, num_instances=2, num_splits=num_splits,
                        split_seed=7, val_identities=0, num_workers=0)
    dm.setup()
    return dm


def _evaluate(dataset, features) -> dict:
    evaluator = reid_evaluator(dataset.describe())
    evaluator.process(features=features, indices=np.arange(len(features)))
    return evaluator.evaluate().metrics


def _angles(degrees) -> np.ndarray:
    radians = np.radians(np.asarray(degrees, dtype=float))
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


def test_one_hot_identity_features_are_perfect(tmp_path):
    test = _hands(tmp_path, {"a": 3, "b": 2, "c": 4}, num_splits=5).dataset("test")
    out = _evaluate(test, np.eye(3)[test.pids])
    assert out["rank1"] == out["rank5"] == out["mAP"] == 1.0 and out["rank1_std"] == 0.0
    assert out["num_splits"] == 5 and out["num_queries"] == 6 and out["num_gallery"] == 3


def test_true_match_second_gives_ap_one_half(tmp_path):
    # Cosine geometry: a's images at 0 and 60 degrees, b's at 30 and 31, c's at 180 and 181. Whatever
    # the split, a's query sees b's gallery image (30 degrees away) before a's own (60 away): AP 1/2;
    # b and c find themselves first. So every split gives rank1 2/3 and mAP (1/2 + 1 + 1) / 3.
    test = _hands(tmp_path, {"a": 2, "b": 2, "c": 2}, num_splits=4).dataset("test")
    by_image = {("a", "0.png"): 0, ("a", "1.png"): 60, ("b", "0.png"): 30, ("b", "1.png"): 31,
                ("c", "0.png"): 180, ("c", "1.png"): 181}
    features = _angles([by_image[(s.path.parent.name, s.path.name)] for s in test.samples])
    out = _evaluate(test, features)
    assert out["rank1"] == pytest.approx(2 / 3) and out["rank5"] == 1.0
    assert out["mAP"] == pytest.approx((0.5 + 1 + 1) / 3) and out["mAP_std"] == pytest.approx(0.0)


def test_split_average_equals_hand_computed_mean(tmp_path):
    test = _hands(tmp_path, {"a": 3, "b": 4, "c": 2, "d": 3}, num_splits=6).dataset("test")
    features = _angles(np.random.default_rng(0).uniform(0, 360, len(test)))
    pids = test.pids
    rank1, ap = [], []
    for query, gallery in single_gallery_splits(pids, 6, seed=7):
        assert len(gallery) == 4 and len(query) == len(test) - 4
        per_query = []
        for q in query:
            similarity = features[gallery] @ features[q]
            true = similarity[pids[gallery] == pids[q]][0]
            per_query.append(1 + int((similarity > true).sum()))  # rank of the one true gallery image
        ranks = np.array(per_query)
        rank1.append(np.mean(ranks == 1))
        ap.append(np.mean(1.0 / ranks))  # one relevant item: AP = 1 / rank
    out = _evaluate(test, features)
    assert out["rank1"] == pytest.approx(np.mean(rank1)) and out["rank1_std"] == pytest.approx(np.std(rank1))
    assert out["mAP"] == pytest.approx(np.mean(ap)) and out["mAP_std"] == pytest.approx(np.std(ap))
    assert 0 < out["rank1"] < 1 and len(set(np.round(rank1, 6))) > 1  # splits genuinely differ


def test_market_same_camera_and_junk_through_the_dataset(tmp_path):
    root = tmp_path / "market"
    for k, pid in enumerate((1, 1, 2, 2)):
        _write(root / "bounding_box_train" / f"{pid + 100:04d}_c{k % 2 + 1}s1_{k:06d}_00.jpg", k)
    query = {"0001_c1s1_000001_00.jpg": 0, "0002_c3s1_000002_00.jpg": 90}
    gallery = {  # angle of each gallery feature; the query of pid 1 sits at 0 degrees
        "0001_c1s1_000011_00.jpg": 1,    # same pid, same camera: removed
        "0000_c2s1_000012_00.jpg": 10,   # distractor: a kept negative, ranked first
        "0001_c2s1_000013_00.jpg": 20,   # the true match on another camera: rank 2 -> AP 1/2
        "0002_c1s1_000014_00.jpg": 91,   # pid 2's match for its camera-3 query: rank 1
        "-1_c1s1_000015_00.jpg": 0.5,    # junk: dropped when the folder is read
    }
    for folder, names in (("query", query), ("bounding_box_test", gallery)):
        for k, name in enumerate(names):
            _write(root / folder / name, k)
    dm = ReidDataModule(root, protocol="market1501", image_size=[8, 8], batch_size=2, num_instances=2,
                        val_identities=0, num_workers=0)
    test = dm.dataset("test")
    angles = {**query, **gallery}
    assert len(test) == 6 and (test.num_queries, test.num_gallery) == (2, 4)
    out = _evaluate(test, _angles([angles[s.path.name] for s in test.samples]))
    assert out["rank1"] == 0.5 and out["rank5"] == 1.0
    assert out["mAP"] == pytest.approx((0.5 + 1.0) / 2) and out["num_valid_queries"] == 2
    assert out["num_queries"] == 2 and out["num_gallery"] == 4 and "num_splits" not in out
    with pytest.raises(ZoolabError, match="every query and gallery image"):
        _evaluate(test, np.zeros((5, 2)))
