"""RngStateCheckpoint: a fit resumed from an end-of-epoch checkpoint repeats the uninterrupted fit."""

from __future__ import annotations

import io
import random

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from torch.utils.data import DataLoader, Dataset

from zoolab.callbacks import (
    RngStateCheckpoint,
    capture_rng_state,
    eval_loader_kwargs,
    restore_rng_state,
    train_loader,
)

EPOCHS = 3


def draw_from_every_generator() -> tuple:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]


class NoisyItems(Dataset):
    """Items jittered from torch, numpy and Python's random, like augmentations that use any of them."""

    def __init__(self, size: int, noisy: bool = True) -> None:
        self.inputs = torch.linspace(-1, 1, size * 4).reshape(size, 4)
        self.noisy = noisy

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int):
        if not self.noisy:
            return self.inputs[index], index % 2
        jitter = 0.1 * torch.rand(4) + float(np.random.rand()) * 0.01 + random.random() * 0.01
        return self.inputs[index] + jitter, index % 2


class DropoutModel(L.LightningModule):
    def __init__(self, num_workers: int = 0, persistent_workers: bool = False, seeded: bool = False) -> None:
        super().__init__()
        self.loader_options = {"num_workers": num_workers, "persistent_workers": persistent_workers}
        self.seeded = seeded  # zoolab's loaders (zoolab.callbacks.seeded_loader), persistent workers
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 2))

    def training_step(self, batch, batch_idx):
        inputs, labels = batch
        return torch.nn.functional.cross_entropy(self.net(inputs), labels)

    def validation_step(self, batch, batch_idx):
        inputs, labels = batch
        torch.rand(1)  # validation draws random numbers too, and so does the sanity check
        self.log("val_loss", torch.nn.functional.cross_entropy(self.net(inputs), labels))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)

    def train_dataloader(self):
        if self.seeded:
            return train_loader(NoisyItems(48), self.loader_options["num_workers"], shuffle=True, batch_size=8)
        return DataLoader(NoisyItems(48), batch_size=8, shuffle=True, **self.loader_options)

    def val_dataloader(self):
        if self.seeded:  # evaluation data draws nothing random, as zoolab's evaluation splits
            return DataLoader(NoisyItems(16, noisy=False), batch_size=8,
                              **eval_loader_kwargs(self.loader_options["num_workers"]))
        return DataLoader(NoisyItems(16), batch_size=8, **self.loader_options)


def fit(out_dir, max_epochs: int, rng_callback: bool, ckpt_path=None, sanity_steps: int = 1, **loader_options
        ) -> tuple[L.Trainer, DropoutModel]:
    """Seed, build and fit as a zoolab run does, resuming from ``ckpt_path`` when given."""
    L.seed_everything(42, workers=True, verbose=False)
    model = DropoutModel(**loader_options)
    # best before last, as in conf/callbacks/default.yaml (see test_best_checkpoint_is_updated_before_last)
    callbacks = [ModelCheckpoint(dirpath=out_dir, filename="best", monitor="val_loss", save_weights_only=True),
                 ModelCheckpoint(dirpath=out_dir, filename="last", monitor=None, enable_version_counter=False),
                 EarlyStopping(monitor="val_loss", patience=EPOCHS)]
    if rng_callback:
        callbacks.append(RngStateCheckpoint())
    trainer = L.Trainer(max_epochs=max_epochs, callbacks=callbacks, accelerator="cpu", logger=False,
                        num_sanity_val_steps=sanity_steps, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, ckpt_path=ckpt_path)
    return trainer, model


def fit_interrupted(tmp_path, rng_callback: bool, **loader_options) -> tuple[L.Trainer, DropoutModel]:
    """One epoch, then a fresh process-like start that resumes from its last.ckpt to the end."""
    fit(tmp_path, max_epochs=1, rng_callback=rng_callback, **loader_options)
    return fit(tmp_path, max_epochs=EPOCHS, rng_callback=rng_callback, ckpt_path=tmp_path / "last.ckpt",
               **loader_options)


def same_weights(first: L.LightningModule, second: L.LightningModule) -> bool:
    return all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


def callback_results(trainer: L.Trainer) -> dict:
    early_stopping = next(c for c in trainer.callbacks if isinstance(c, EarlyStopping))
    best = next(c for c in trainer.checkpoint_callbacks if c.monitor == "val_loss")
    return {"epoch": trainer.current_epoch, "wait": early_stopping.wait_count,
            "best_score": early_stopping.best_score.item(), "best_ckpt_score": best.best_model_score.item()}


@pytest.fixture
def quiet_lightning():
    import logging

    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def test_captured_state_replays_every_generator():
    state = capture_rng_state()
    expected = draw_from_every_generator()
    draw_from_every_generator()
    restore_rng_state(state)
    assert draw_from_every_generator() == expected


def test_captured_state_survives_a_weights_only_load():
    """Lightning and zoolab read checkpoints with ``torch.load(weights_only=True)``: no numpy objects."""
    buffer = io.BytesIO()
    state = capture_rng_state()
    expected = draw_from_every_generator()
    torch.save({"rng": state}, buffer)
    buffer.seek(0)
    restore_rng_state(torch.load(buffer, weights_only=True)["rng"])
    assert draw_from_every_generator() == expected


def test_resumed_fit_repeats_the_uninterrupted_fit(tmp_path, quiet_lightning, one_thread):
    straight_trainer, straight = fit(tmp_path / "straight", max_epochs=EPOCHS, rng_callback=True)
    resumed_trainer, resumed = fit_interrupted(tmp_path / "resumed", rng_callback=True)
    assert same_weights(resumed, straight)
    assert callback_results(resumed_trainer) == callback_results(straight_trainer)


def test_resumed_fit_with_workers_repeats_the_uninterrupted_fit(tmp_path, quiet_lightning, one_thread):
    """Workers are seeded from the iterator's base seed, drawn from torch's restored generator."""
    _, straight = fit(tmp_path / "straight", max_epochs=EPOCHS, rng_callback=True, num_workers=1)
    _, resumed = fit_interrupted(tmp_path / "resumed", rng_callback=True, num_workers=1)
    assert same_weights(resumed, straight)


def test_persistent_workers_are_named_when_resuming(tmp_path, quiet_lightning, one_thread, caplog):
    """A persistent worker's random state lives in its process, outside any checkpoint."""
    fit(tmp_path, max_epochs=1, rng_callback=True, num_workers=1, persistent_workers=True)
    with caplog.at_level("WARNING", logger="zoolab.callbacks.rng_state"):
        fit(tmp_path, max_epochs=2, rng_callback=True, ckpt_path=tmp_path / "last.ckpt", num_workers=1,
            persistent_workers=True)
    assert "persistent workers" in caplog.text


# zoolab's trainer configs run no sanity check, so a persistent validation iterator is first created in the
# first validation after (re)start: with workers, creating it draws their base seed.
ZOOLAB_LIKE = {"num_workers": 1, "sanity_steps": 0}


def test_persistent_workers_diverge_without_seeded_loaders(tmp_path, quiet_lightning, one_thread):
    """What the seeded loaders fix: persistent workers keep drawing from generators seeded at their start."""
    options = dict(ZOOLAB_LIKE, persistent_workers=True)
    _, straight = fit(tmp_path / "straight", max_epochs=EPOCHS, rng_callback=True, **options)
    _, resumed = fit_interrupted(tmp_path / "resumed", rng_callback=True, **options)
    assert not same_weights(resumed, straight)


@pytest.mark.parametrize("num_workers", [1, 2])
def test_seeded_loaders_with_persistent_workers_resume_exactly(tmp_path, quiet_lightning, one_thread, num_workers):
    options = dict(ZOOLAB_LIKE, num_workers=num_workers, seeded=True)
    straight_trainer, straight = fit(tmp_path / "straight", max_epochs=EPOCHS, rng_callback=True, **options)
    assert straight_trainer.train_dataloader.persistent_workers
    resumed_trainer, resumed = fit_interrupted(tmp_path / "resumed", rng_callback=True, **options)
    assert same_weights(resumed, straight)
    assert callback_results(resumed_trainer) == callback_results(straight_trainer)


def test_seeded_samples_do_not_depend_on_the_number_of_workers(one_thread):
    def epochs(num_workers: int) -> list:
        torch.manual_seed(7)
        loader = train_loader(NoisyItems(12), num_workers, shuffle=True, batch_size=4)
        return [torch.cat([x for x, _ in loader]) for _ in range(2)]

    one, two = epochs(1), epochs(2)
    assert all(torch.equal(a, b) for a, b in zip(one, two))
    assert not torch.equal(one[0].sort(0).values, one[1].sort(0).values)  # each epoch draws anew


def test_seeded_loaders_are_not_named_when_resuming(tmp_path, quiet_lightning, one_thread, caplog):
    fit(tmp_path, max_epochs=1, rng_callback=True, seeded=True, **ZOOLAB_LIKE)
    with caplog.at_level("WARNING", logger="zoolab.callbacks.rng_state"):
        fit(tmp_path, max_epochs=2, rng_callback=True, ckpt_path=tmp_path / "last.ckpt", seeded=True, **ZOOLAB_LIKE)
    assert "persistent workers" not in caplog.text


def test_without_the_callback_a_resumed_fit_diverges(tmp_path, quiet_lightning, one_thread):
    """The test above is not vacuous: reseeding on resume changes this model's training."""
    _, straight = fit(tmp_path / "straight", max_epochs=EPOCHS, rng_callback=False)
    _, resumed = fit_interrupted(tmp_path / "resumed", rng_callback=False)
    assert not same_weights(resumed, straight)


def test_old_checkpoint_without_rng_state_still_resumes(tmp_path, quiet_lightning, one_thread, caplog):
    fit(tmp_path, max_epochs=1, rng_callback=False)
    with caplog.at_level("WARNING", logger="zoolab.callbacks.rng_state"):
        trainer, _ = fit(tmp_path, max_epochs=2, rng_callback=True, ckpt_path=tmp_path / "last.ckpt")
    assert trainer.current_epoch == 2
    assert "holds no random-generator state" in caplog.text


def test_default_callbacks_include_the_rng_state(compose):
    cfg, _ = compose([])
    assert isinstance(instantiate(cfg.callbacks.rng_state), RngStateCheckpoint)


def test_best_checkpoint_is_updated_before_last(compose):
    """Lightning runs checkpoint callbacks in config order and last.ckpt stores every callback's state: were
    last written first, it would hold the best-checkpoint tracker from before the epoch, and a resumed run
    would forget that epoch's score (and could overwrite a better best.ckpt)."""
    names = list(compose([])[0].callbacks)
    assert names.index("model_checkpoint") < names.index("last_checkpoint")
