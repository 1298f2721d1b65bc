"""Lightning callbacks that the ``callbacks`` config group adds to every Trainer."""

from zoolab.callbacks.rng_state import RngStateCheckpoint, capture_rng_state, restore_rng_state

__all__ = ["RngStateCheckpoint", "capture_rng_state", "restore_rng_state"]
