"""ImageClassificationTask: val/acc_best survives a resume from last.ckpt, a fresh fit starts it anew, and
the default family writes the evaluator's figures under plots/ and returns its metrics."""

from __future__ import annotations

from functools import partial

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from zoolab.adapters.freeze import FullFineTune
from zoolab.families.base import Family
from zoolab.heads.linear import LinearHead
from zoolab.run_outputs import RunOutputs
from zoolab.runfolder import RunRecord
from zoolab.tasks.image_cls import ImageClassificationTask

CLASSES = ["cherry_clean", "cherry_maybe", "cherry_pit"]


class TinyBackbone(nn.Module):
    num_features = 3

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)


def _task() -> ImageClassificationTask:
    torch.manual_seed(0)
    return ImageClassificationTask(backbone=TinyBackbone(), head=LinearHead, adapter=FullFineTune(),
                                   loss=nn.CrossEntropyLoss(), optimizer=partial(torch.optim.SGD, lr=0.1),
                                   class_names=CLASSES, positive_class="cherry_pit", target_recall=0.5)


class Blobs(L.LightningDataModule):
    """Three separable classes; ``loader(split)`` and ``eval_splits`` as the family expects."""

    eval_splits = ("val", "test")

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        labels = torch.arange(48) % 3
        images = torch.eye(3)[labels] * 4 + torch.randn(48, 3, generator=g)
        self.data = TensorDataset(images, labels)

    def loader(self, split):
        return DataLoader(self.data, batch_size=16)

    def train_dataloader(self):
        return self.loader("train")

    def val_dataloader(self):
        return self.loader("val")


def _trainer(tmp_path, epochs, **kwargs) -> L.Trainer:
    return L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=str(tmp_path), **kwargs)


def test_val_acc_best_is_in_the_state_dict_and_loads_back():
    task = _task()
    task.val_acc_best(torch.tensor(0.75))
    state = task.state_dict()
    assert float(state["val_acc_best.max_value"]) == 0.75
    fresh = _task()
    fresh.load_state_dict(state)
    fresh.val_acc_best(torch.tensor(0.5))  # lower than the restored best
    assert float(fresh.val_acc_best.compute()) == 0.75
    # a checkpoint written before the best was saved still loads (strictly), leaving the metric empty
    older = _task()
    older.load_state_dict({k: v for k, v in state.items() if not k.startswith("val_acc_best.")})
    assert float(older.val_acc_best.max_value) == float("-inf")


def test_a_resumed_fit_keeps_the_best_and_a_fresh_fit_starts_anew(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    first = _trainer(tmp_path, 1, callbacks=[ModelCheckpoint(dirpath=checkpoints, save_last=True)])
    first.fit(_task(), datamodule=Blobs())
    last = checkpoints / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    saved_best = float(state["state_dict"]["val_acc_best.max_value"])
    assert 0.0 <= saved_best <= 1.0
    state["state_dict"]["val_acc_best.max_value"] = torch.tensor(2.0)  # a value no epoch can reach
    torch.save(state, last)

    resumed = _task()
    trainer = _trainer(tmp_path, 2, enable_checkpointing=False)
    trainer.fit(resumed, datamodule=Blobs(), ckpt_path=str(last))
    assert float(trainer.callback_metrics["val/acc_best"]) == 2.0  # restored, not reset at train start

    fresh = _task()
    fresh.val_acc_best(torch.tensor(2.0))
    trainer = _trainer(tmp_path / "fresh", 1, enable_checkpointing=False)
    trainer.fit(fresh, datamodule=Blobs())
    assert float(trainer.callback_metrics["val/acc_best"]) == pytest.approx(float(trainer.callback_metrics["val/acc"]))


def test_family_writes_the_figures_and_returns_the_metrics(tmp_path):
    task, datamodule = _task(), Blobs()
    _trainer(tmp_path, 3, enable_checkpointing=False).fit(task, datamodule=datamodule)
    run_dir = tmp_path / "run"
    out = RunOutputs(run_dir, RunRecord(run_dir))
    family = Family(OmegaConf.create({}))
    results = family.evaluate(task, _trainer(tmp_path, 1, enable_checkpointing=False), datamodule, out)
    assert list(results) == ["val", "test"]
    assert results["val"]["threshold"]["fitted_on"] == "val" and results["test"]["threshold"]["fitted_on"] == "val"
    assert results["test"]["threshold"]["threshold"] == results["val"]["threshold"]["threshold"]
    assert task.fitted_threshold == {k: results["val"]["threshold"][k] for k in ("band_low", "band_high")}
    assert results["val"]["num_samples"] == 48 and 0.0 <= results["test"]["accuracy"] <= 1.0
    plots = sorted((run_dir / "plots").iterdir())
    assert [p.name for p in plots] == ["confusion_matrix_test.png", "confusion_matrix_test_normalized.png",
                                       "confusion_matrix_val.png", "confusion_matrix_val_normalized.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for p in plots)
    assert sorted(p.name for p in run_dir.iterdir()) == ["plots", "run.json"]  # nothing else written


def test_evaluate_split_needs_a_test_pass():
    with pytest.raises(RuntimeError, match="trainer.test"):
        _task().evaluate_split("val")
