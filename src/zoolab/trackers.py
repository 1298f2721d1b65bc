"""Experiment trackers beside ``metrics.csv``: MLflow (a local file store in the run folder unless
``MLFLOW_TRACKING_URI`` names another) and Weights & Biases in offline mode (nothing leaves the machine;
``wandb sync`` uploads later). Lightning's loggers do the logging; this module only builds them with
offline-safe settings and, at the end of a run, gives each the resolved config and the split metrics.
"""

from __future__ import annotations

import os
from typing import Any

from omegaconf import DictConfig, OmegaConf

__all__ = ["mlflow_logger", "wandb_logger", "log_run_summary"]


def mlflow_logger(tracking_uri: str, **kwargs: Any):
    """Lightning's MLFlowLogger. MLflow 3 refuses its file store unless told it is wanted; a run folder's
    ``mlruns/`` is exactly that use (no server, no database), so it is allowed for ``file:`` URIs."""
    from lightning.pytorch.loggers import MLFlowLogger

    if tracking_uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MLFlowLogger(tracking_uri=tracking_uri, **kwargs)


def wandb_logger(folder: str, **kwargs: Any):
    """Lightning's WandbLogger in offline mode, written under ``<folder>/wandb/``. ``folder`` is the run
    folder even for a run of several fits (their loggers share one wandb run, which wandb keeps open in
    the process until :func:`log_run_summary` closes it)."""
    from lightning.pytorch.loggers import WandbLogger

    os.environ.setdefault("WANDB_SILENT", "true")
    os.makedirs(folder, exist_ok=True)
    return WandbLogger(save_dir=folder, offline=True, **kwargs)


def log_run_summary(loggers: list, cfg: DictConfig, results: dict[str, dict], step: int) -> None:
    """Give every tracker (not the CSV logger: ``metrics.csv`` holds the training curves, the split
    metrics have their own JSON files) the resolved config and ``<split>/<metric>`` of every split, then
    close it so its files are complete."""
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    from zoolab.results.aggregate import flatten_metrics

    trackers = [lg for lg in loggers if not isinstance(lg, CSVLogger)]
    if not trackers:
        return
    # Each Lightning logger flattens and sanitises nested parameters its own way.
    params = OmegaConf.to_container(cfg, resolve=True)
    metrics = flatten_metrics(results, list(results))
    for tracker in trackers:
        tracker.log_hyperparams(params)
        tracker.log_metrics(metrics, step=step)
        tracker.finalize("success")
        if isinstance(tracker, WandbLogger):
            tracker.experiment.finish()  # closes the offline run so its file is complete
