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


@pytest.mark.parametrize("knobs", [
    dict(mixup_alpha=0.4, manifold_mixup=True),
    dict(feature_noise=0.1, channel_scale=0.1),
    dict(supcon_weight=0.5, center_weight=0.1),
    dict(hard_mining_epochs=3, hard_mining_fraction=0.25, phase="hard_mining"),
])
def test_every_knob_gives_a_finite_loss_with_gradients(knobs):
    phase = knobs.pop("phase", "main")
    task = make_task(**knobs)
    task.phase = phase
    task.trainer = None
    x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
    task.log = lambda *a, **k: None  # no Trainer attached in this unit test
    loss = task.training_step((x, y), 0)
    assert torch.isfinite(loss)
    loss.backward()
    assert task.head.classifier.weight.grad is not None
    if knobs.get("center_weight"):
        assert task.center_loss.centers.grad is not None
