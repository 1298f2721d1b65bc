"""What a person sees on the terminal: library messages a user cannot act on are silenced, and every
run ends with one line of its headline metrics and its run folder."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

__all__ = ["quiet_library_noise", "headline", "HEADLINE_KEYS", "evaluation_progress_bar", "label_evaluation"]

# The first metrics a reader looks for, per family, in this order.
HEADLINE_KEYS = ("accuracy", "f1", "coco/bbox_mAP", "coco/bbox_mAP_50", "macro_f1_fg", "ece", "rank1", "mAP",
                 "num_images", "dim")

_SILENCED_WARNINGS = (
    r".*LeafSpec.*is deprecated.*",                      # torch._pytree, inside Lightning
    r"Checkpoint directory .* exists and is not empty",  # a resumed run reuses its own folder on purpose
    r"Experiment logs directory .* exists and is not empty",  # zoolab keeps metrics.csv across a resume
    r"The number of training batches .* is smaller than the logging interval",  # tiny embedding epochs
    r".*does not have many workers which may be a bottleneck.*",  # num_workers is a config choice
    r"Using `DistributedSampler` with the dataloaders.*",  # DDP evaluators drop the repeated samples
    r".*`isinstance\(treespec, LeafSpec\)` is deprecated.*",
)
_SILENCED_MESSAGES = ("💡 Tip", "litlogger", "LitLogger")


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in _SILENCED_MESSAGES)


def quiet_library_noise() -> None:
    for pattern in _SILENCED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning"):
        logger = logging.getLogger(name)
        # Lightning adds its own console handler; Hydra's root handler already prints these records.
        if logging.getLogger().handlers:
            for handler in list(logger.handlers):
                if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                    logger.removeHandler(handler)
            logger.propagate = True
        if not any(isinstance(f, _DropTips) for f in logger.filters):
            logger.addFilter(_DropTips())
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _DropTips) for f in handler.filters):
            handler.addFilter(_DropTips())


def headline(results: dict[str, dict], run_dir: Path) -> str:
    """``zoolab: ok  test accuracy 0.950  f1 0.948  ->  runs/...`` from the last evaluated split."""
    if not results:
        return f"zoolab: ok  ->  {run_dir}"
    split, metrics = list(results.items())[-1]
    shown = [f"{key} {_format(metrics[key])}" for key in HEADLINE_KEYS
             if isinstance(metrics.get(key), (int, float)) and not isinstance(metrics.get(key), bool)]
    return f"zoolab: ok  {split} " + "  ".join(shown[:4]) + f"  ->  {run_dir}"


def _format(value: float) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def evaluation_progress_bar():
    """Lightning's usual progress bar (rich when installed), whose evaluation bars name their split."""
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

    try:
        import rich  # noqa: F401

        base = RichProgressBar
    except ImportError:
        base = TQDMProgressBar

    class SplitProgressBar(base):
        split = ""

        @property
        def test_description(self) -> str:
            return f"Evaluating {self.split}" if self.split else "Evaluating"

    return SplitProgressBar()


def label_evaluation(trainer, split: str) -> None:
    """Name ``split`` on the trainer's evaluation progress bar."""
    for callback in getattr(trainer, "callbacks", []):
        if hasattr(type(callback), "split"):
            callback.split = split
