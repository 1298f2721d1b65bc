"""Tests for zoolab.metrics.calibration: ECE binning, temperature fit and the reliability diagram."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoolab.metrics.calibration import expected_calibration_error, fit_temperature, reliability_png


def test_ece_one_sample_per_bin() -> None:
    probs = np.array([[0.95, 0.03, 0.02],   # correct, |1 - 0.95|
                      [0.62, 0.30, 0.08],   # wrong,   |0 - 0.62|
                      [0.41, 0.39, 0.20],   # correct, |1 - 0.41|
                      [0.05, 0.85, 0.10]])  # correct, |1 - 0.85|
    labels = np.array([0, 1, 0, 1])
    expected = (0.05 + 0.62 + 0.59 + 0.15) / 4
    assert expected_calibration_error(probs, labels) == pytest.approx(expected)
    assert expected_calibration_error(torch.tensor(probs), torch.tensor(labels)) == pytest.approx(expected)


def test_ece_averages_within_bins() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.45, 0.55]])
    labels = np.array([0, 1, 0, 1])  # 4 bins: (0.75, 1] holds 0.9 (ok), 0.8 (wrong); (0.5, 0.75] 0.6, 0.55
    expected = 0.5 * abs(0.5 - 0.85) + 0.5 * abs(1.0 - 0.575)
    assert expected_calibration_error(probs, labels, n_bins=4) == pytest.approx(expected)


def test_ece_confidence_on_an_edge_goes_to_the_lower_bin() -> None:
    probs = np.array([[0.5, 0.3, 0.2], [0.7, 0.2, 0.1], [1.0, 0.0, 0.0]])
    labels = np.array([0, 1, 0])
    # (lower, upper]: 0.5 -> (0.25, 0.5], 0.7 -> (0.5, 0.75], 1.0 -> (0.75, 1]. With [lower, upper)
    # 0.5 and 0.7 would share a bin and give (2/3) * |0.5 - 0.6| instead.
    expected = (abs(1 - 0.5) + abs(0 - 0.7) + 0.0) / 3
    assert expected_calibration_error(probs, labels, n_bins=4) == pytest.approx(expected)


def _tempered_sample(seed: int = 0, n: int = 20000) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = 4.0 * torch.randn(n, 5, generator=generator)
    labels = torch.multinomial(torch.softmax(logits / 2.0, dim=1), 1, generator=generator).squeeze(1)
    return logits, labels


def test_fit_temperature_recovers_the_generating_temperature() -> None:
    logits, labels = _tempered_sample()
    temperature = fit_temperature(logits, labels)
    assert abs(temperature - 2.0) < 0.15
    probs_before, probs_after = torch.softmax(logits, 1), torch.softmax(logits / temperature, 1)
    assert torch.equal(probs_after.argmax(1), logits.argmax(1))
    ece_before = expected_calibration_error(probs_before, labels)
    assert expected_calibration_error(probs_after, labels) < ece_before / 2


def test_fit_temperature_goes_below_one_for_underconfident_logits() -> None:
    logits, labels = _tempered_sample(seed=1)
    assert 0.3 < fit_temperature(logits / 4.0, labels) < 0.7  # true T = 2 / 4 = 0.5


def test_reliability_diagram_is_png_bytes_and_writes_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    logits, labels = _tempered_sample(n=500)
    data = reliability_png(torch.softmax(logits, 1), labels, title="val")
    assert isinstance(data, bytes) and data[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(tmp_path.iterdir()) == []  # nothing written anywhere


def test_reliability_picture_with_counts_and_before_after_temperature() -> None:
    import io

    from PIL import Image

    from zoolab.metrics.calibration import _bin_stats

    logits, labels = _tempered_sample(n=400, seed=2)
    before, after = torch.softmax(logits * 3.0, 1), torch.softmax(logits, 1)  # overconfident, then T = 3
    counts, accuracy, _ = _bin_stats(after, labels, 15)
    assert counts.sum() == 400 and ((0 <= accuracy) & (accuracy <= 1)).all()  # what the bars and labels show
    assert expected_calibration_error(before, labels) > expected_calibration_error(after, labels)
    image = Image.open(io.BytesIO(reliability_png(after, labels, title="val · T=3", probs_before=before)))
    pixels = np.asarray(image.convert("L"), dtype=float)
    assert image.size == (500, 480) and pixels.std() > 10
