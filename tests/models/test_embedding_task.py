"""EmbeddingClassificationTask mechanics: calibration never changes predictions, post-hoc logit
adjustment favours rare classes, cRT re-initialises and isolates the classifier, every knob trains."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from zoolab.heads.mlp import MLPHead
from zoolab.losses.long_tail import LogitAdjustedCrossEntropy
from zoolab.tasks.embedding_cls import EmbeddingClassificationTask

CLASSES = ["a", "b", "c", "background"]
COUNTS = torch.tensor([100.0, 20.0, 5.0, 50.0])


def make_task(**knobs) -> EmbeddingClassificationTask:
    torch.manual_seed(0)
    return EmbeddingClassificationTask(
        head=partial(MLPHead, hidden=[16], activation="gelu", norm="layernorm"),
        loss=LogitAdjustedCrossEntropy(label_smoothing=0.1),
        optimizer=partial(torch.optim.AdamW, lr=1e-3),
        class_names=CLASSES, in_features=8, train_counts=COUNTS, background="background",
        **knobs)


def test_temperature_changes_probabilities_not_predictions():
    task = make_task(logit_adjust="inference")
    raw = torch.randn(32, 4)
    before = task.deployed_logits(raw).argmax(1)
    task.temperature.fill_(3.0)
    assert torch.equal(task.deployed_logits(raw).argmax(1), before)
    assert not torch.allclose(task.deployed_logits(raw).softmax(1), (task.decision_logits(raw)).softmax(1))


def test_post_hoc_adjustment_shifts_towards_rare_classes():
    plain, adjusted = make_task(logit_adjust="none"), make_task(logit_adjust="inference")
    raw = torch.zeros(1, 4)  # a tie: the prior decides
    assert plain.decision_logits(raw).argmax().item() == 0
    assert adjusted.decision_logits(raw).argmax().item() == CLASSES.index("c")  # the rarest class


def test_the_reports_inference_adjustment_adds_the_prior():
    """+stack=report_logit_adjust (inference_adjust=add) moves predictions towards head classes, the
    default (subtract) towards rare ones; the training-side adjustment is the same in both."""
    raw = torch.tensor([[0.0, 0.0, 0.5, 0.0]])  # the rare class c leads slightly
    subtract = make_task(logit_adjust="both")
    add = make_task(logit_adjust="both", inference_adjust="add")
    assert subtract.decision_logits(raw).argmax().item() == CLASSES.index("c")
    assert add.decision_logits(raw).argmax().item() == CLASSES.index("a")  # the most frequent class
    assert torch.allclose(add.decision_logits(raw) - raw, raw - subtract.decision_logits(raw))
    assert torch.equal(add.loss_fn.log_prior, subtract.loss_fn.log_prior)
    with pytest.raises(Exception, match="inference_adjust"):
        make_task(logit_adjust="both", inference_adjust="sideways")


def test_logit_adjusted_training_installs_priors_and_weights():
    task = make_task(logit_adjust="train", class_weights="effective")
    assert task.loss_fn.log_prior is not None and task.loss_fn.weight is not None
    assert task.loss_fn.weight[2] > task.loss_fn.weight[0]  # rare class weighs more
    assert make_task(logit_adjust="inference").loss_fn.log_prior is None


def test_crt_reinitialises_and_isolates_the_classifier():
    task = make_task(crt_epochs=2)
    before = task.head.classifier.weight.detach().clone()
    task.start_crt()
    assert task.in_crt_phase
    assert not torch.equal(task.head.classifier.weight, before)
    trainable = {n for n, p in task.named_parameters() if p.requires_grad}
    assert trainable == {"head.classifier.weight", "head.classifier.bias"}


def _one_step(knobs: dict, phase: str = "main"):
    """Loss and classifier gradient of one training step on a fixed batch, with fixed random draws."""
    import numpy as np

    task = make_task(**knobs)  # seeded: the head is built first, so every task starts from the same head
    task.phase = phase
    task.log = lambda *a, **k: None  # no Trainer attached in this unit test
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 8, generator=generator), torch.randint(0, 4, (32,), generator=generator)
    torch.manual_seed(2)
    np.random.seed(2)
    loss = task.training_step((x, y), 0)
    loss.backward()
    return task, loss.detach(), task.head.classifier.weight.grad.clone()


@pytest.mark.parametrize("knobs", [
    dict(mixup_alpha=0.4),
    dict(mixup_alpha=0.4, manifold_mixup=True),
    dict(feature_noise=0.1),
    dict(channel_scale=0.1),
    dict(supcon_weight=0.5),
    dict(center_weight=0.1),
    dict(hard_mining_epochs=3, hard_mining_fraction=0.25, phase="hard_mining"),
], ids=lambda k: "+".join(k))
def test_every_knob_changes_the_step_against_the_same_batch_without_it(knobs):
    """A knob that were ignored would leave loss and gradients equal to the plain step's."""
    knobs = dict(knobs)
    phase = knobs.pop("phase", "main")
    _, plain_loss, plain_grad = _one_step({})
    task, loss, grad = _one_step(knobs, phase)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert not torch.isclose(loss, plain_loss, rtol=1e-4, atol=0) or not torch.allclose(grad, plain_grad, rtol=1e-4)
    if knobs.get("center_weight"):
        assert task.center_loss.centers.grad is not None and task.center_loss.centers.grad.abs().sum() > 0
    if phase == "hard_mining":  # the mean over the hardest quarter is above the mean over the batch
        assert loss > plain_loss


def test_the_plain_step_is_repeatable():
    """The comparison above is meaningful only if two plain steps agree exactly."""
    _, first_loss, first_grad = _one_step({})
    _, second_loss, second_grad = _one_step({})
    assert torch.equal(first_loss, second_loss) and torch.equal(first_grad, second_grad)


def test_feature_augmentation_reaches_only_the_chosen_samples():
    x = torch.ones(4000, 8)
    never = make_task(feature_noise=0.5, channel_scale=0.5, feature_aug_prob=0.0)
    assert torch.equal(never._augment(x), x)
    torch.manual_seed(3)
    half = make_task(feature_noise=0.5, feature_aug_prob=0.5)._augment(x)
    changed = (half != x).any(dim=1).float().mean().item()
    assert 0.45 < changed < 0.55
    torch.manual_seed(3)
    always = make_task(channel_scale=0.5)._augment(x)  # default probability 1: every sample is scaled
    assert (always != x).any(dim=1).all()
    with pytest.raises(Exception, match="feature_aug_prob"):
        make_task(feature_aug_prob=1.5)


def test_class_weighted_supcon_changes_the_step_and_needs_a_known_kind():
    _, plain_loss, _ = _one_step(dict(supcon_weight=0.5))
    task, weighted_loss, _ = _one_step(dict(supcon_weight=0.5, supcon_class_weights="inverse"))
    assert task.supcon_class_weights is not None and not torch.isclose(weighted_loss, plain_loss)
    with pytest.raises(Exception, match="supcon_class_weights"):
        make_task(supcon_weight=0.5, supcon_class_weights="squared")
    with pytest.raises(Exception, match="crt_sampler"):
        make_task(crt_epochs=1, crt_sampler="random")
