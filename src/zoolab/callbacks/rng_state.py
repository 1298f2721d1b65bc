"""The global random generators' state in every full checkpoint, so a resumed run draws what the
uninterrupted run would have drawn.

Saved: torch (CPU and every CUDA device), numpy's legacy global generator and Python's ``random``.
Everything random in training draws from these: dropout and augmentation in the main process, the
shuffling seed of a ``RandomSampler`` or ``WeightedRandomSampler`` without its own generator, and every
DataLoader iterator's base seed, from which each worker's seeds follow (``seed_everything(workers=True)``
seeds numpy and ``random`` in the workers from it too).

When: ``last.ckpt`` is written at the end of a training epoch, after that epoch's validation, so the saved
state is what the next epoch starts from. A resumed run first reseeds and builds its model (which draws
random numbers), then Lightning loads the checkpoint's callback states; the saved state is put back in
``on_fit_start``, before Lightning creates the first training iterator. Nothing in between draws random
numbers but the sanity check, which Lightning runs under ``isolate_rng``.

DataLoader workers: a persistent worker keeps its random state across epochs inside its own process, where
no checkpoint can see it. zoolab's datamodules therefore build their loaders with
``zoolab.callbacks.seeded_loader``: every training sample is read with its own seed, drawn in the main
process from the generator restored here, and loaders draw their workers' base seed from a private
generator, so a resumed run with workers replays the uninterrupted one too. Another loader with
persistent workers gets a warning on resume.

Not covered: a ``torch.Generator`` owned by a datamodule belongs in the datamodule's own
``state_dict``/``load_state_dict`` (Lightning stores it in the same checkpoint).
"""

from __future__ import annotations

import logging
import random

import lightning as L
import numpy as np
import torch

from zoolab.callbacks.seeded_loader import is_seeded

__all__ = ["RngStateCheckpoint", "capture_rng_state", "restore_rng_state"]

log = logging.getLogger(__name__)


def _numpy_state() -> dict:
    state = np.random.get_state(legacy=False)
    # tensors and plain values only: checkpoints are read with torch.load(weights_only=True)
    return {"key": torch.from_numpy(state["state"]["key"].astype(np.int64)), "pos": int(state["state"]["pos"]),
            "has_gauss": int(state["has_gauss"]), "gauss": float(state["gauss"])}


def _set_numpy_state(state: dict) -> None:
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": state["key"].numpy().astype(np.uint32), "pos": state["pos"]},
                         "has_gauss": state["has_gauss"], "gauss": state["gauss"]})


def _python_state() -> dict:
    version, internal, gauss_next = random.getstate()
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next}


def _set_python_state(state: dict) -> None:
    random.setstate((state["version"], tuple(state["internal"].tolist()), state["gauss_next"]))


def capture_rng_state() -> dict:
    """The state of torch's CPU and CUDA generators, numpy's global generator and Python's ``random``."""
    state = {"torch": torch.get_rng_state(), "numpy": _numpy_state(), "python": _python_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Put back a :func:`capture_rng_state` result (CUDA devices beyond those present are skipped)."""
    torch.set_rng_state(state["torch"])
    _set_numpy_state(state["numpy"])
    _set_python_state(state["python"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        present = torch.cuda.device_count()
        if len(cuda) != present:
            log.warning("checkpoint holds the random state of %d CUDA devices, this machine has %d",
                        len(cuda), present)
        for device, device_state in enumerate(cuda[:present]):
            torch.cuda.set_rng_state(device_state, device)


class RngStateCheckpoint(L.Callback):
    """Save the random generators' state in full checkpoints; restore it when training resumes."""

    def __init__(self) -> None:
        self._saved: dict | None = None

    def state_dict(self) -> dict:
        return capture_rng_state()

    def load_state_dict(self, state_dict: dict) -> None:
        self._saved = state_dict

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._saved is not None:
            restore_rng_state(self._saved)
            self._saved = None
        elif trainer.ckpt_path:
            log.warning("%s holds no random-generator state: the resumed run will not repeat the "
                        "uninterrupted one", trainer.ckpt_path)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.ckpt_path and _has_persistent_workers(trainer.train_dataloader):
            log.warning("the training DataLoader keeps persistent workers, whose random state is not in the "
                        "checkpoint: the resumed run will not repeat the uninterrupted one exactly")


def _has_persistent_workers(loaders) -> bool:
    flattened = getattr(loaders, "flattened", None)
    loaders = flattened if flattened is not None else loaders if isinstance(loaders, (list, tuple)) else [loaders]
    return any(getattr(dl, "persistent_workers", False) and getattr(dl, "num_workers", 0) > 0
               and not is_seeded(dl) for dl in loaders)
