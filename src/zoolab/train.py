"""Build the components of a prepared config, fit, evaluate the best checkpoint, fill the run folder.

Reads like the config: dataset -> backbone -> adapter -> head -> loss -> optimiser/scheduler -> task
module -> Lightning Trainer -> ``<split>_metrics.json`` -> exported weights.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from zoolab.errors import ZoolabError
from zoolab.runfolder import RunRecord, write_json_atomic, write_text_atomic

__all__ = ["reject_ckpt", "build_task", "fit", "evaluate", "evaluate_splits", "write_split_metrics", "train_and_evaluate"]

log = logging.getLogger(__name__)
# safetensors metadata "content" of a file holding only the trained tensors (e.g. LoRA + neck + head)
ADAPTER_CONTENT = "trained parameters only"
# zoolab keeps metrics.csv across a resume itself (see _keep_training_curves); Lightning's warning that
# the non-empty run folder's logs will be deleted is wrong here.
warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")


def instantiate_optional(node):
    """Instantiate a config node that may be empty or null (e.g. `sched: none`)."""
    return instantiate(node) if node else None


def reject_ckpt(cfg: DictConfig) -> None:
    """Runners that cannot evaluate a given checkpoint say so instead of silently training."""
    if cfg.get("ckpt"):
        raise ZoolabError(f"ckpt=... (evaluate a checkpoint) is not supported by task '{cfg.task.name}' yet",
                          where="ckpt", fix="remove the ckpt override to train and evaluate")


def is_adapter_file(path: Path) -> bool:
    """Whether ``path`` holds only the trained tensors of a run (they go on top of the pretrained base)."""
    if Path(path).suffix != ".safetensors" or not Path(path).is_file():
        return False
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        return (handle.metadata() or {}).get("content") == ADAPTER_CONTENT


def skip_pretrained_for_full_checkpoint(cfg: DictConfig) -> None:
    """``ckpt=`` with a full checkpoint (``.ckpt`` or exported ``model.safetensors``) replaces every weight,
    so the backbone is built without its pretrained file: evaluating or painting an exported model must
    not demand the original weights. An adapter-only file still needs the pretrained base."""
    if cfg.get("ckpt") and "pretrained" in cfg.backbone and not is_adapter_file(Path(str(cfg.ckpt)).expanduser()):
        with open_dict(cfg):
            cfg.backbone.pretrained = False


def build_task(cfg: DictConfig, class_names: list[str]) -> L.LightningModule:
    """Instantiate the family's task module from the component groups."""
    return instantiate(cfg.task.module)(
        backbone=instantiate(cfg.backbone),
        adapter=instantiate(cfg.adapter),
        head=instantiate(cfg.head),
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optim),
        scheduler=instantiate_optional(cfg.sched),
        class_names=list(class_names),
    )


def _build_trainer(cfg: DictConfig, out_dir: Path, overrides: dict | None = None) -> L.Trainer:
    """A Trainer whose checkpoints and logs go to ``out_dir`` (the run folder or a stage folder in it)."""
    def build(node):
        kwargs = {}
        if "dirpath" in node:
            kwargs["dirpath"] = str(out_dir / "checkpoints")
        if "save_dir" in node:
            kwargs["save_dir"] = str(out_dir)
        return instantiate(node, **kwargs)

    callbacks = [build(c) for c in (cfg.callbacks or {}).values() if c]
    loggers = [build(c) for c in (cfg.logger or {}).values() if c]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, default_root_dir=str(out_dir),
                       **(overrides or {}))


def _load_weights(task: L.LightningModule, ckpt_path: Path) -> int | None:
    """Load a Lightning checkpoint's weights into ``task``; return the checkpoint's epoch."""
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    task.load_state_dict(checkpoint["state_dict"])
    return checkpoint.get("epoch")


def _export(task, run_dir: Path) -> float:
    """Write inference weights with subnormal values zeroed; return the file size in MB."""
    from safetensors.torch import save_file

    from zoolab.metrics.latency import flush_denormal_

    state = {k: v.detach().cpu().contiguous().clone() for k, v in task.export_state_dict().items()}
    flushed = flush_denormal_(state)
    if flushed:
        log.info("zeroed %d subnormal weight values before export", flushed)
    path = run_dir / "checkpoints" / "model.safetensors"
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(path)
    return round(path.stat().st_size / 2**20, 2)


@contextmanager
def _keep_training_curves(run_dir: Path, resumed_step: int | None):
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
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        writer.writerows(old + new)
        write_text_atomic(csv_path, out.getvalue())
        kept.unlink()


def fit(cfg: DictConfig, task, datamodule, run_dir: Path, record: RunRecord, stage: str = "",
        phase: str = "fit", trainer_overrides: dict | None = None) -> L.Trainer:
    """Fit ``task``, resuming from ``<stage>/checkpoints/last.ckpt`` when present; load the best weights.

    ``stage`` names a sub-folder for multi-stage methods; ``phase`` is the ``run.json`` timing key.
    """
    stage_dir = run_dir / stage if stage else run_dir
    trainer = _build_trainer(cfg, stage_dir, trainer_overrides)
    last = stage_dir / "checkpoints" / "last.ckpt"
    resume = last if last.is_file() else None
    resumed_step = None
    prefix = f"{stage}_" if stage else ""
    if resume:
        # mmap: only the two counters are read here; Lightning loads the full state itself.
        state = torch.load(resume, map_location="cpu", weights_only=True, mmap=True)
        resumed_step = state.get("global_step")
        log.info("resuming from %s (epoch %s)", resume, state.get("epoch"))
        record.update(**{f"{prefix}resumed_from": str(resume.relative_to(run_dir)),
                         f"{prefix}resumed_at_epoch": state.get("epoch")})
    with record.phase(f"{prefix}{phase}"), _keep_training_curves(stage_dir, resumed_step):
        trainer.fit(task, datamodule=datamodule, ckpt_path=str(resume) if resume else None)

    best = Path(trainer.checkpoint_callback.best_model_path) if trainer.checkpoint_callback else None
    best = best if best and best.is_file() else last
    if best.is_file():
        epoch = _load_weights(task, best)
        record.update(**{f"{prefix}best_checkpoint": str(best.relative_to(run_dir)), f"{prefix}best_epoch": epoch})
    return trainer


def evaluate_splits(task, trainer: L.Trainer, datamodule, run_dir: Path) -> dict[str, dict]:
    """Run every held-out split through ``task`` and collect its ``split_metrics`` (val before test)."""
    results = {}
    for split in datamodule.eval_splits:
        trainer.test(task, dataloaders=datamodule.loader(split), verbose=False)
        results[split] = task.split_metrics(split, run_dir / "plots")
    return results


def write_split_metrics(cfg: DictConfig, results: dict[str, dict], run_dir: Path, extra: dict) -> None:
    """``<split>_metrics.json`` per split; a smoke run writes only its final split, as ``smoke_metrics.json``.
    ``extra`` (e.g. latency) goes into the final split's file."""
    smoke = bool(cfg.get("smoke"))
    final = "test" if "test" in results else "val"
    for split, metrics in results.items():
        if smoke and split != final:
            continue
        metrics = {**metrics, **(extra if split == final else {})}
        write_json_atomic(run_dir / f"{'smoke' if smoke else split}_metrics.json", metrics)


def evaluate(cfg: DictConfig, task, trainer: L.Trainer, datamodule, run_dir: Path, record: RunRecord) -> dict:
    """Evaluate every held-out split, measure latency, export weights, write ``<split>_metrics.json``."""
    with record.phase("evaluate"):
        results = evaluate_splits(task, trainer, datamodule, run_dir)
    with record.phase("latency"):
        latency = task.measure_latency()
    record.update(model_size_mb=_export(task, run_dir))
    write_split_metrics(cfg, results, run_dir, extra=latency)
    return results


def train_and_evaluate(cfg: DictConfig, run_dir: Path, record: RunRecord) -> dict:
    """The default runner: build, fit (resuming when the folder has a last.ckpt), evaluate every split."""
    L.seed_everything(cfg.seed, workers=True)
    with record.phase("setup"):
        datamodule = instantiate(cfg.dataset)
        datamodule.setup()
        skip_pretrained_for_full_checkpoint(cfg)
        task = build_task(cfg, datamodule.class_names)
        write_text_atomic(run_dir / "resolved_config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    record.update(params=task.parameter_counts())
    if cfg.get("ckpt"):
        return evaluate_checkpoint(cfg, task, datamodule, run_dir, record)
    trainer = fit(cfg, task, datamodule, run_dir, record)
    return evaluate(cfg, task, trainer, datamodule, run_dir, record)


def checkpoint_path(cfg: DictConfig) -> Path:
    """The existing file named by ``ckpt=``."""
    path = Path(str(cfg.ckpt)).expanduser()
    if not path.is_file():
        raise ZoolabError(f"checkpoint '{cfg.ckpt}' does not exist", where="ckpt",
                          fix="point ckpt at a run folder's checkpoints/best.ckpt or checkpoints/model.safetensors")
    return path


def load_checkpoint(task, path: Path) -> None:
    """Load a Lightning ``*.ckpt``, an exported ``model.safetensors`` or (tasks with adapters) an adapter-only
    ``adapter.safetensors`` into ``task``; any failure becomes a ZoolabError naming the file."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            if is_adapter_file(path) and hasattr(task, "load_adapter_state_dict"):
                task.load_adapter_state_dict(load_file(str(path)))  # trained tensors on top of the base
            else:
                task.load_export_state_dict(load_file(str(path)))
        else:
            _load_weights(task, path)
    except ZoolabError:
        raise
    except Exception as exc:  # corrupt file, wrong format, or weights of another architecture
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ZoolabError(
            f"checkpoint '{path}' cannot be loaded into this experiment's model ({type(exc).__name__}: {first[:300]})",
            where="ckpt",
            fix="pass checkpoints/best.ckpt or checkpoints/model.safetensors of a run of the same experiment "
                "(same backbone, adapter and head settings)",
        ) from None


def evaluate_checkpoint(cfg: DictConfig, task, datamodule, run_dir: Path, record: RunRecord) -> dict:
    """``ckpt=PATH``: evaluate a zoolab checkpoint (see :func:`load_checkpoint`), no training."""
    path = checkpoint_path(cfg)
    load_checkpoint(task, path)
    record.update(evaluated_checkpoint=str(path))
    return evaluate(cfg, task, _build_trainer(cfg, run_dir), datamodule, run_dir, record)
