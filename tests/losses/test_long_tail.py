"""Tests for zoolab.losses.long_tail: class weights, priors, logit adjustment and the CE normaliser."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoolab.losses.long_tail import (
    LogitAdjustedCrossEntropy,
    adjust_logits,
    class_counts,
    class_weights,
    log_priors,
)

COUNTS = torch.tensor([2000.0, 500.0, 100.0, 20.0, 5.0])


def test_class_counts_include_empty_classes() -> None:
    assert class_counts(torch.tensor([0, 2, 2]), 4).tolist() == [1.0, 0.0, 2.0, 0.0]
    assert class_counts(torch.tensor([0, 2, 2]), 4).dtype == torch.float32
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        class_counts(torch.tensor([0, 3]), 3)


def test_effective_number_weights_match_cui_et_al() -> None:
    weights = class_weights(COUNTS, "effective", beta=0.9999)
    expected = torch.tensor([0.0105, 0.039, 0.1912, 0.9524, 3.8068])
    torch.testing.assert_close(weights, expected, atol=1e-3, rtol=0)
    assert weights.sum().item() == pytest.approx(5.0, abs=1e-5)


def test_inverse_frequency_weights() -> None:
    weights = class_weights(COUNTS, "inverse")
    expected = torch.tensor([0.0095, 0.0381, 0.1905, 0.9524, 3.8095])
    torch.testing.assert_close(weights, expected, atol=1e-3, rtol=0)
    assert weights.sum().item() == pytest.approx(5.0, abs=1e-5)


def test_effective_weights_differ_from_inverse_only_for_large_classes() -> None:
    effective, inverse = class_weights(COUNTS, "effective"), class_weights(COUNTS, "inverse")
    assert effective[0] > inverse[0] * 1.05  # E_2000 / 2000 ~ 0.906: the big class gains weight
    assert effective[4] == pytest.approx(inverse[4].item(), rel=2e-3)


@pytest.mark.parametrize("kind", ["inverse", "effective"])
def test_empty_class_gets_zero_weight_and_stays_out_of_normalisation(kind: str) -> None:
    weights = class_weights(torch.tensor([0.0, 1.0, 3.0]), kind)
    assert weights[0] == 0
    # 1/n = [1, 1/3] rescaled to sum to the 2 present classes; effective ~ inverse for tiny n.
    torch.testing.assert_close(weights[1:], torch.tensor([1.5, 0.5]), atol=1e-3, rtol=0)
    assert torch.isfinite(weights).all()


def test_class_weight_kinds() -> None:
    assert class_weights(COUNTS, "none") is None
    with pytest.raises(ValueError, match="effective"):
        class_weights(COUNTS, "balanced")


def test_log_priors_are_log_frequencies_with_epsilon() -> None:
    got = log_priors(torch.tensor([3.0, 1.0, 0.0]))
    assert got[0].item() == pytest.approx(math.log(0.75))
    assert got[1].item() == pytest.approx(math.log(0.25))
    assert got[2].item() == pytest.approx(math.log(1e-12), rel=1e-5)


def _hand_ce(z: list[float], y: int) -> float:
    return -z[y] + math.log(sum(math.exp(v) for v in z))


def test_logit_adjusted_loss_is_ce_on_logits_plus_log_prior() -> None:
    logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    target = torch.tensor([0, 1])
    counts = [6.0, 3.0, 1.0]
    loss = LogitAdjustedCrossEntropy(log_prior=log_priors(torch.tensor(counts)), tau=1.0)(logits, target)

    log_pi = [math.log(n / 10.0) for n in counts]
    expected = sum(_hand_ce([v + lp for v, lp in zip(row, log_pi)], y)
                   for row, y in zip(logits.tolist(), target.tolist())) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert loss.item() != pytest.approx(F.cross_entropy(logits, target).item(), rel=1e-3)


def test_tau_one_equals_balanced_softmax() -> None:
    logits = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0, 1, 2, 3, 0, 0, 1, 3])
    counts = torch.tensor([50.0, 20.0, 5.0, 1.0])
    la = LogitAdjustedCrossEntropy(log_prior=log_priors(counts), tau=1.0)(logits, target)
    balanced_softmax = F.cross_entropy(logits + counts.log(), target)  # log n_y: a constant shift of log pi
    assert la.item() == pytest.approx(balanced_softmax.item(), rel=1e-5)


def test_post_hoc_adjustment_favours_the_rare_class() -> None:
    logits = torch.tensor([[2.0, 1.5]])
    log_pi = log_priors(torch.tensor([9.0, 1.0]))
    adjusted = adjust_logits(logits, log_pi, tau=1.0, sign=-1)
    torch.testing.assert_close(adjusted, torch.tensor([[2.0 - math.log(0.9), 1.5 - math.log(0.1)]]))
    assert logits.argmax().item() == 0 and adjusted.argmax().item() == 1
    with pytest.raises(ValueError, match="sign"):
        adjust_logits(logits, log_pi, tau=1.0, sign=0)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_one_hot_soft_target_equals_hard_label_weighted_loss(smoothing: float) -> None:
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 1, 2, 2, 1, 0])
    weight = torch.tensor([0.2, 1.0, 3.0])
    loss_fn = LogitAdjustedCrossEntropy(label_smoothing=smoothing, weight=weight)
    hard = loss_fn(logits, target)
    soft = loss_fn(logits, F.one_hot(target, 3).float())
    assert soft.item() == hard.item()
    reference = F.cross_entropy(logits, target, weight=weight, label_smoothing=smoothing)
    torch.testing.assert_close(hard, reference)
    # The gotcha being fixed: torch divides soft-target losses by N, not by sum_i w_{y_i}.
    one_hot = F.one_hot(target, 3).float()
    torch_soft = F.cross_entropy(logits, one_hot, weight=weight, label_smoothing=smoothing)
    assert torch_soft.item() != pytest.approx(hard.item(), rel=1e-3)


def test_mixup_soft_target_divides_by_weight_of_the_soft_label() -> None:
    logits = torch.tensor([[1.0, 0.0, -1.0]])
    target = torch.tensor([[0.7, 0.3, 0.0]])
    weight = torch.tensor([2.0, 0.5, 1.0])
    loss = LogitAdjustedCrossEntropy(weight=weight)(logits, target)

    log_p = [v - math.log(sum(math.exp(u) for u in (1.0, 0.0, -1.0))) for v in (1.0, 0.0, -1.0)]
    numerator = -(0.7 * 2.0 * log_p[0] + 0.3 * 0.5 * log_p[1])
    assert loss.item() == pytest.approx(numerator / (0.7 * 2.0 + 0.3 * 0.5), rel=1e-6)


def test_unweighted_loss_divides_by_batch_size_for_both_target_kinds() -> None:
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([3, 0, 1, 1, 2])
    loss_fn = LogitAdjustedCrossEntropy(label_smoothing=0.2)
    torch.testing.assert_close(loss_fn(logits, target), F.cross_entropy(logits, target, label_smoothing=0.2))
    torch.testing.assert_close(loss_fn(logits, F.one_hot(target, 4).float()), loss_fn(logits, target))


def test_set_buffers_installs_registered_buffers() -> None:
    loss_fn = LogitAdjustedCrossEntropy()
    assert loss_fn.weight is None and loss_fn.log_prior is None
    counts = torch.tensor([3.0, 1.0])
    loss_fn.set_buffers(weight=class_weights(counts, "inverse"), log_prior=log_priors(counts))
    assert set(dict(loss_fn.named_buffers())) == {"weight", "log_prior"}
    loss_fn.to(torch.float64)
    assert loss_fn.weight.dtype == torch.float64 and loss_fn.log_prior.dtype == torch.float64
    loss_fn.set_buffers(log_prior=log_priors(torch.tensor([1.0, 1.0])))
    assert loss_fn.weight is not None  # None leaves the installed weight alone

    logits, target = torch.tensor([[0.3, 0.1]]), torch.tensor([1])
    expected = F.cross_entropy(logits + math.log(0.5), target)  # uniform prior: no change, w cancels
    assert loss_fn(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_bad_target_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match="target"):
        LogitAdjustedCrossEntropy()(torch.zeros(2, 3), torch.zeros(2, 4))


def test_per_sample_losses_average_to_the_batch_loss():
    torch.manual_seed(0)
    logits, target = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 1, 0])
    loss = LogitAdjustedCrossEntropy(label_smoothing=0.1, weight=torch.tensor([0.5, 1.0, 2.0, 4.0]))
    per_sample = loss(logits, target, reduction="none")
    assert per_sample.shape == (6,)
    assert torch.allclose(per_sample.mean(), loss(logits, target))
