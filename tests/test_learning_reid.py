"""Learning test of the re-ID family, and the gradient-clipping order of its task.

A tiny CLIP (RN50 code path, ``backbone.model_cfg`` shrunk) with the PromptSG paper-mode interaction,
composed from the real ``promptsg_rn50_v8`` config, learns unseen synthetic hands: test rank-1 rises far
above its value before training within a few CPU minutes.
"""

from __future__ import annotations

from functools import partial

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from zoolab.config import prepare_config
from zoolab.families.base import build_task_module as build_task


@pytest.fixture(autouse=True)
def _flush_denormal():
    """As `python -m zoolab` does: subnormal activations would otherwise slow CPU training many times over.
    Restored afterwards: other tests create subnormal values on purpose."""
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


TINY_RN = ["backbone.model_cfg={embed_dim:64,vision_cfg:{width:16,layers:[1,1,1,1]},"
           "text_cfg:{width:64,layers:1,heads:2}}", "backbone.image_size=[64,64]"]
# 80 training identities: with fewer, a model this small memorises the training hands and generalises little.
DATA = ["dataset=synthetic_reid", "dataset.root.num_identities={train:80,test:16}",
        "dataset.val_identities=8", "dataset.num_splits=5"]
RECIPE = ["head.classifier=linear", "head.reduction_dim=null", "loss.supcon_weight=0.0",
          "loss.center_weight=0.0", "loss.auto_balance=false", "loss.id_weight=1.0", "optim.lr=1e-3",
          "adapter.lr=1e-3",
          "task.module.grad_clip=5.0", "task.module.promptsg.self_layers=1"]


def _trainer(**kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, num_sanity_val_steps=0, **kwargs)


def _test_rank1(task, trainer, datamodule) -> float:
    trainer.test(task, dataloaders=datamodule.loader("test"), verbose=False)
    return task.evaluate_split("test").metrics["rank1"]


def _build(compose, tmp_path, extra: list[str]):
    overrides = ["+exp=promptsg_rn50_v8", "+smoke=cpu", *TINY_RN, *DATA, *RECIPE, *extra]
    cfg, choices = compose(overrides, tmp_path)
    cfg = prepare_config(cfg, overrides, choices.get("dataset"))
    L.seed_everything(0, workers=True)
    datamodule = instantiate(cfg.dataset)
    datamodule.setup()
    return build_task(cfg, datamodule.class_names), datamodule


def test_tiny_clip_promptsg_learns_unseen_hands(compose, tmp_path):
    task, datamodule = _build(compose, tmp_path, [])
    assert task.promptsg.mode == "paper"
    before = _test_rank1(task, _trainer(), datamodule)
    trainer = _trainer(max_epochs=12)
    trainer.fit(task, datamodule=datamodule)
    val_rank1 = float(trainer.callback_metrics["val/rank1"])
    after = _test_rank1(task, trainer, datamodule)
    print(f"test rank1 before {before:.3f}, after {after:.3f}; last val/rank1 {val_rank1:.3f}")
    assert before < 0.2  # 16 test identities: chance is 1/16
    assert after >= before + 0.15 and after >= 2 * before


@pytest.mark.parametrize("clip_after_step", [False, True])
def test_gradient_clipping_happens_before_the_optimizer_step(compose, tmp_path, clip_after_step):
    """With plain SGD at lr 1 the parameter update IS the gradient the optimiser used: its norm equals the
    clip value when clipping precedes the step, and is the raw (larger) norm under quirk #6."""
    clip = 1e-3
    flag = str(clip_after_step).lower()
    task, datamodule = _build(compose, tmp_path, [f"task.module.grad_clip={clip}",
                                                  f"task.module.clip_after_step={flag}"])
    task.optimizer_factory = partial(torch.optim.SGD, lr=1.0)
    task.adapter.lr = None  # every group at lr 1
    before = {n: p.detach().clone() for n, p in task.named_parameters() if p.requires_grad}
    _trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0).fit(task, datamodule=datamodule)
    moved = [(p.detach() - before[n]).pow(2).sum() for n, p in task.named_parameters() if n in before]
    update = torch.sqrt(sum(moved))
    if clip_after_step:
        assert update > 10 * clip
    else:
        assert update == pytest.approx(clip, rel=1e-3)
