"""Tests for zoolab.metrics.threshold: recall threshold, Clopper-Pearson bounds and the maybe band."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from zoolab.metrics.threshold import (
    apply_threshold,
    clopper_pearson_lower,
    pits_needed_for_recall_claim,
    threshold_analysis,
    threshold_for_recall,
)


def _shuffled_pits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n positives with scores 1/n .. 1 plus 50 negatives, shuffled; returns sorted pit scores too."""
    rng = np.random.default_rng(seed)
    pit_scores = np.arange(1, n + 1) / n
    scores = np.concatenate([pit_scores, rng.uniform(0, 1, 50)])
    is_positive = np.concatenate([np.ones(n, bool), np.zeros(50, bool)])
    order = rng.permutation(scores.size)
    return scores[order], is_positive[order], pit_scores


def test_threshold_allows_one_miss_in_100_pits() -> None:
    scores, is_positive, pit_scores = _shuffled_pits(100)
    t = threshold_for_recall(scores, is_positive, 0.99)
    assert t == pit_scores[1]  # k = floor(0.01 * 100) = 1 -> s_(2)
    assert apply_threshold(scores, t)[is_positive].sum() == 99


@pytest.mark.parametrize(("n", "target"), [(99, 0.99), (50, 0.99), (100, 1.0)])
def test_threshold_allows_no_miss_when_k_is_zero(n: int, target: float) -> None:
    scores, is_positive, pit_scores = _shuffled_pits(n)
    t = threshold_for_recall(torch.from_numpy(scores), torch.from_numpy(is_positive), target)
    assert t == pit_scores[0]


def test_threshold_floor_survives_float_error() -> None:
    # (1 - 0.9) * 10 == 0.9999999999999998 in floating point; one miss is still allowed.
    scores, is_positive, pit_scores = _shuffled_pits(10)
    assert threshold_for_recall(scores, is_positive, 0.9) == pit_scores[1]


def test_threshold_without_positives_raises() -> None:
    with pytest.raises(ValueError, match="at least one positive"):
        threshold_for_recall(np.array([0.1, 0.9]), np.array([False, False]))


@pytest.mark.parametrize(("trials", "misses", "expected"), [
    (100, 0, 0.9705), (200, 0, 0.9851), (300, 0, 0.9901), (300, 1, 0.9843),
    (500, 1, 0.9905), (500, 2, 0.9875), (1000, 5, 0.9895),
])
def test_clopper_pearson_matches_reference_table(trials: int, misses: int, expected: float) -> None:
    assert clopper_pearson_lower(trials - misses, trials) == pytest.approx(expected, abs=1e-4)


def test_clopper_pearson_zero_successes_and_closed_form() -> None:
    assert clopper_pearson_lower(0, 10) == 0.0
    assert clopper_pearson_lower(40, 40, 0.9) == pytest.approx(0.1 ** (1 / 40))


def test_pits_needed() -> None:
    assert pits_needed_for_recall_claim() == 299
    assert clopper_pearson_lower(298, 298) < 0.99 <= clopper_pearson_lower(299, 299)
    n = pits_needed_for_recall_claim(0.99, 0.95, misses=1)
    assert 300 < n <= 500  # table: 300 pits / 1 miss -> 0.9843, 500 / 1 -> 0.9905
    assert clopper_pearson_lower(n - 2, n - 1) < 0.99 <= clopper_pearson_lower(n - 1, n)


# Hand example: pits at 0.2, 0.4, 0.6, 0.7, 0.8, 0.9; negatives at 0.05, 0.1 (clean) and 0.3, 0.5 (maybe).
BAND_SCORES = np.array([0.05, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90])
BAND_PITS = np.array([0, 0, 1, 0, 1, 0, 1, 1, 1, 1], dtype=bool)


def test_band_on_hand_example() -> None:
    result = threshold_analysis(BAND_SCORES, BAND_PITS, target_recall=0.99, target_precision=0.99)
    # 6 pits, k = floor(0.06) = 0 -> t_low is the lowest pit score
    assert result["threshold"] == result["band_low"] == 0.20
    assert result["recall_at_threshold"] == 1.0
    assert result["precision_at_threshold"] == pytest.approx(6 / 8)
    assert result["negative_recall_at_threshold"] == pytest.approx(2 / 4)
    # precision at t = 0.3, 0.4, 0.5, 0.6: 5/7, 5/6, 4/5, 4/4 -> first reaching 0.99 is 0.6
    assert result["band_high"] == 0.60
    assert result["band_precision_high"] == 1.0
    assert result["band_fraction"] == pytest.approx(4 / 10)  # 0.2, 0.3, 0.4, 0.5 are "maybe"
    assert result["recall_cp95_lower"] == pytest.approx(0.05 ** (1 / 6))
    assert result["num_positives"] == 6
    assert result["pits_needed"] == 299
    assert result["claim_supported"] is False
    assert json.loads(json.dumps(result)) == result


def test_band_lower_target_precision_and_negative_mask() -> None:
    clean_only = np.zeros(10, bool)
    clean_only[:2] = True
    result = threshold_analysis(BAND_SCORES, BAND_PITS, target_precision=0.8, negative_mask=clean_only)
    assert result["band_high"] == 0.40  # 5/6 >= 0.8 first at 0.4
    assert result["band_fraction"] == pytest.approx(2 / 10)
    assert result["negative_recall_at_threshold"] == 1.0


def test_band_never_confident() -> None:
    scores, pits = np.array([0.1, 0.5, 0.9]), np.array([True, True, False])
    result = threshold_analysis(scores, pits)
    assert result["band_low"] == 0.1
    assert 0.9 < result["band_high"] < 0.9 + 1e-12
    assert result["band_fraction"] == 1.0
    assert result["band_precision_high"] == 0.0


def test_claim_supported_needs_enough_caught_pits() -> None:
    scores = np.linspace(0.5, 1.0, 300)
    result = threshold_analysis(scores, np.ones(300, bool))
    assert result["recall_at_threshold"] == pytest.approx(297 / 300)  # k = 3 misses allowed
    assert result["claim_supported"] is False
    assert math.isnan(result["negative_recall_at_threshold"])
    # Tied pit scores: the threshold catches all 300, and 300/300 gives a CP95 bound of 0.9901.
    tied = threshold_analysis(np.full(300, 0.7), np.ones(300, bool))
    assert tied["recall_at_threshold"] == 1.0
    assert tied["recall_cp95_lower"] == pytest.approx(0.05 ** (1 / 300))
    assert tied["claim_supported"] is True


def test_scores_tied_with_threshold_are_called_pit() -> None:
    scores, pits = np.array([0.2, 0.2, 0.9]), np.array([False, True, True])
    result = threshold_analysis(scores, pits, target_precision=0.9)
    assert result["threshold"] == 0.2
    assert result["negative_recall_at_threshold"] == 0.0  # the tied negative is not below t
    assert result["precision_at_threshold"] == pytest.approx(2 / 3)
    assert result["band_high"] == 0.9
    assert apply_threshold(scores, 0.2).tolist() == [True, True, True]


def test_evaluate_band_reports_a_frozen_threshold_on_new_data():
    from zoolab.metrics.threshold import evaluate_band

    scores = np.array([0.1, 0.2, 0.6, 0.7, 0.9, 0.95])
    positive = np.array([False, False, True, False, True, True])
    result = evaluate_band(scores, positive, band_low=0.5, band_high=0.8, target_recall=0.99)
    assert result["recall_at_threshold"] == 1.0            # all three pits score >= 0.5
    assert result["precision_at_threshold"] == 0.75         # 3 pits among 4 called
    assert result["band_fraction"] == 2 / 6                 # 0.6 and 0.7 fall in [0.5, 0.8)
    assert result["band_precision_high"] == 1.0             # 0.9, 0.95 are both pits
    assert result["negative_recall_at_threshold"] == 2 / 3  # 0.1, 0.2 below; 0.7 above
