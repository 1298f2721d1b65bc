"""The one pipeline every experiment runs through.

config -> family (``task.family``) -> datamodule and task -> fit phases (each a Lightning fit that
resumes from its ``last.ckpt``) or a given checkpoint -> evaluation of every held-out split ->
``<split>_metrics.json`` -> exported weights. Only this module and the run-folder writer it hands to
the family (:class:`~zoolab.run_outputs.RunOutputs`) write files.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ProgressBar
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from zoolab.checkpoints import checkpoint_path, load_checkpoint, load_lightning_weights, \
    skip_pretrained_for_full_checkpoint
from zoolab.console import evaluation_progress_bar
from zoolab.families.base import Family, Phase
from zoolab.metrics.latency import cpu_model_name
from zoolab.run_outputs import ADAPTER_CONTENT, RunOutputs
from zoolab.runfolder import RunRecord
from zoolab.trackers import log_run_summary

__all__ = ["run_pipeline", "build_family", "build_trainer", "fit_phase", "write_split_metrics"]

log = logging.getLogger(__name__)


def build_family(cfg: DictConfig) -> Family:
    return get_object(str(cfg.task.family))(cfg)


def run_pipeline(cfg: DictConfig, run_dir: Path, record: RunRecord) -> dict[str, dict]:
    """Run one experiment into ``run_dir``; returns the metrics of every evaluated split."""
    out = RunOutputs(run_dir, record)
    family = build_family(cfg)
    family.check_checkpoint_use()
    L.seed_everything(cfg.seed, workers=True)
    with record.phase("setup"):
        if cfg.get("ckpt"):
            skip_pretrained_for_full_checkpoint(cfg)
        datamodule = family.build_datamodule()
        task = family.build_task(datamodule)
    out.write_text("resolved_config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    record.update(params=family.parameter_counts(task))

    trainer = None
    if cfg.get("ckpt"):
        path = checkpoint_path(cfg)
        load_checkpoint(task, path)
        record.update(evaluated_checkpoint=str(path))
    else:
        for phase in family.fit_phases(task, datamodule, out):
            trainer = fit_phase(cfg, phase, out)
            task, datamodule = phase.task, phase.datamodule
    if task is not None and isinstance(task, L.LightningModule):
        trainer = trainer or build_trainer(cfg, out.run_dir, evaluation_only=True)
        record.update(device=_device_of(trainer.strategy.root_device, trainer.world_size))
    elif isinstance(task, torch.nn.Module):  # evaluated without a Trainer (e.g. zero-shot baselines)
        first = next(task.parameters(), None)
        record.update(device=_device_of(first.device if first is not None else torch.device("cpu"), 1))

    with record.phase("evaluate"):
        results = family.evaluate(task, trainer, datamodule, out)
    with record.phase("latency"):  # measured by the process that writes it (rank 0)
        extra = family.deployment_metrics(task, datamodule, out) if task is not None and out.writes else {}
    write_split_metrics(cfg, results, out, extra)
    if trainer is not None and trainer.loggers and out.writes:
        log_run_summary(trainer.loggers, cfg, results, trainer.global_step)
    if family.exports_weights and task is not None and out.writes:
        export_weights(task, out)
    return results


# ------------------------------------------------------------------------------------------ trainer
def build_trainer(cfg: DictConfig, out_dir: Path, overrides: dict | None = None,
                  evaluation_only: bool = False) -> L.Trainer:
    """A Trainer whose checkpoints and logs go to ``out_dir`` (the run folder or a stage folder in it).
    ``evaluation_only``: no checkpointing or logging callbacks (nothing is trained)."""
    def build(node):
        kwargs = {}
        if "dirpath" in node:
            kwargs["dirpath"] = str(out_dir / "checkpoints")
        if "save_dir" in node:
            kwargs["save_dir"] = str(out_dir)
        return instantiate(node, **kwargs)

    callbacks = [] if evaluation_only else [build(c) for c in (cfg.callbacks or {}).values() if c]
    if cfg.trainer.get("enable_progress_bar", True) is not False and not any(
            isinstance(c, ProgressBar) for c in callbacks):
        callbacks.append(evaluation_progress_bar())
    loggers = [] if evaluation_only else [build(c) for c in (cfg.logger or {}).values() if c]
    extra = {"enable_checkpointing": False} if evaluation_only else {}
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, default_root_dir=str(out_dir),
                       **extra, **(overrides or {}))


def _device_of(device: torch.device, processes: int) -> dict:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model_name()
    return {"accelerator": device.type, "name": name, "processes": processes}


# ---------------------------------------------------------------------------------------------- fit
def phase_epochs(cfg: DictConfig, phase: Phase) -> int:
    """A phase's length; in a smoke run no phase is longer than ``trainer.max_epochs``."""
    limit = int(cfg.trainer.max_epochs)
    epochs = int(phase.max_epochs) if phase.max_epochs is not None else limit
    return min(epochs, limit) if cfg.get("smoke") else epochs


def fit_phase(cfg: DictConfig, phase: Phase, out: RunOutputs) -> L.Trainer:
    """Fit one phase, resuming from ``<stage>/checkpoints/last.ckpt`` when present; load its best weights."""
    record = out.record
    stage_dir = out.run_dir / phase.stage if phase.stage else out.run_dir
    epochs = phase_epochs(cfg, phase)
    record.update(phase_epochs={**(record.data.get("phase_epochs") or {}), phase.name: epochs})
    trainer = build_trainer(cfg, stage_dir, {"max_epochs": epochs, **phase.trainer_overrides})
    last = stage_dir / "checkpoints" / "last.ckpt"
    resume = last if last.is_file() else None
    resumed_step = None
    prefix = f"{phase.stage}_" if phase.stage else ""
    if resume:
        # mmap: only the two counters are read here; Lightning loads the full state itself.
        state = torch.load(resume, map_location="cpu", weights_only=True, mmap=True)
        resumed_step = state.get("global_step")
        log.info("resuming %s from %s (epoch %s)", phase.name, resume, state.get("epoch"))
        record.update(**{f"{prefix}resumed_from": out.relative(resume),
                         f"{prefix}resumed_at_epoch": state.get("epoch")})
    with record.phase(phase.timing), _keep_training_curves(stage_dir, resumed_step, out):
        trainer.fit(phase.task, datamodule=phase.datamodule, ckpt_path=str(resume) if resume else None)

    _draw_training_curves(cfg, phase, stage_dir, out)
    best = Path(trainer.checkpoint_callback.best_model_path) if trainer.checkpoint_callback else None
    best = best if best and best.is_file() else last
    if best.is_file():
        epoch = load_lightning_weights(phase.task, best)
        record.update(**{f"{prefix}best_checkpoint": out.relative(best), f"{prefix}best_epoch": epoch})
    return trainer


def _draw_training_curves(cfg: DictConfig, phase: Phase, stage_dir: Path, out: RunOutputs) -> None:
    """``plots/training_curves.png`` (``training_curves_<stage>.png`` for a stage) from the fit's metrics.csv."""
    from zoolab.results.curves import training_curves_png

    csv_path = stage_dir / "metrics.csv"
    if not out.writes or not csv_path.is_file():
        return
    png = training_curves_png(csv_path, title=f"{cfg.exp} - {phase.name}")
    if png:
        out.write_bytes(Path("plots") / (f"training_curves_{phase.stage}.png" if phase.stage else "training_curves.png"), png)


@contextmanager
def _keep_training_curves(run_dir: Path, resumed_step: int | None, out: RunOutputs):
    """Lightning's CSV logger deletes an existing metrics.csv; on resume keep the rows logged before the
    checkpoint's step and put them in front of the new ones."""
    csv_path = run_dir / "metrics.csv"
    if resumed_step is None or not csv_path.is_file():
        yield
        return
    kept = csv_path.with_name("metrics.before_resume.csv")
    os.replace(csv_path, kept)
    try:
        yield
    finally:
        with open(kept, newline="") as fh:
            old = [r for r in csv.DictReader(fh) if r.get("step") and int(float(r["step"])) < resumed_step]
        new = []
        if csv_path.is_file():
            with open(csv_path, newline="") as fh:
                new = list(csv.DictReader(fh))
        fields = sorted({k for row in old + new for k in row})
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=fields)
        writer.writeheader()
        writer.writerows(old + new)
        out.write_text(csv_path.relative_to(out.run_dir), text.getvalue())
        kept.unlink()


# -------------------------------------------------------------------------------------------- write
def write_split_metrics(cfg: DictConfig, results: dict[str, dict], out: RunOutputs, extra: dict) -> None:
    """``<split>_metrics.json`` per split; a smoke run writes only its final split, as
    ``smoke_metrics.json``. ``extra`` (e.g. latency) goes into the final split's file."""
    if not results:
        return
    smoke = bool(cfg.get("smoke"))
    final = "test" if "test" in results else list(results)[-1]
    for split, metrics in results.items():
        if smoke and split != final:
            continue
        metrics = {**metrics, **(extra if split == final else {})}
        out.write_json(f"{'smoke' if smoke else split}_metrics.json", metrics)


def export_weights(task, out: RunOutputs) -> None:
    """``checkpoints/model.safetensors`` (inference weights, subnormal values zeroed) and, for tasks
    with frozen base weights, ``checkpoints/adapter.safetensors`` (trained tensors only)."""
    from zoolab.metrics.latency import flush_denormal_

    if hasattr(task, "export_state_dict"):
        state = {k: v.detach().cpu().contiguous().clone() for k, v in task.export_state_dict().items()}
        flushed = flush_denormal_(state)
        if flushed:
            log.info("zeroed %d subnormal weight values before export", flushed)
        path = out.write_safetensors("checkpoints/model.safetensors", state)
        out.record.update(model_size_mb=round(path.stat().st_size / 2**20, 2))
    adapter = task.adapter_state_dict() if hasattr(task, "adapter_state_dict") else None
    if adapter:
        out.write_safetensors("checkpoints/adapter.safetensors", adapter, {"content": ADAPTER_CONTENT})
