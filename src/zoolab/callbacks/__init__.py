"""Lightning callbacks that the ``callbacks`` config group adds to every Trainer."""

from zoolab.callbacks.rng_state import RngStateCheckpoint, capture_rng_state, restore_rng_state
from zoolab.callbacks.seeded_loader import eval_loader_kwargs, train_loader

__all__ = ["RngStateCheckpoint", "capture_rng_state", "eval_loader_kwargs", "restore_rng_state", "train_loader"]
