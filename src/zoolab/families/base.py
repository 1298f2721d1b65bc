"""What a family declares to the pipeline: how to build its data and task, which fits to run, how to
evaluate and what to export. The pipeline (``zoolab.pipeline``) runs these hooks in order and writes
every file; a family overrides only the hooks where it differs (in the way detectron2's trainer exposes
``build_*`` methods).

The default family fits one phase and evaluates every held-out split: ``trainer.test`` feeds the task's
evaluator, ``task.evaluate_split(split)`` returns an :class:`~zoolab.evaluators.base.Evaluation` and
the family writes its figures under ``plots/`` and returns its metrics. Image classification, detection
and re-identification use it as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from zoolab.console import label_evaluation
from zoolab.errors import ZoolabError

__all__ = ["Phase", "Family", "build_task_module", "record_evaluation"]


@dataclass
class Phase:
    """One Lightning fit. ``stage`` names the sub-folder of its checkpoints (``""``: the run folder),
    ``max_epochs`` its length (None: ``trainer.max_epochs``), ``timing`` its ``run.json`` seconds key
    (default ``fit``, ``<stage>_fit`` in a stage folder)."""

    name: str
    task: L.LightningModule
    datamodule: Any
    stage: str = ""
    max_epochs: int | None = None
    timing: str | None = None
    trainer_overrides: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.timing is None:
            self.timing = f"{self.stage}_fit" if self.stage else "fit"


def build_task_module(cfg: DictConfig, class_names: list[str]) -> L.LightningModule:
    """Instantiate ``task.module`` from the component groups (backbone, adapter, head, loss, optimiser)."""
    return instantiate(cfg.task.module)(
        backbone=instantiate(cfg.backbone),
        adapter=instantiate(cfg.adapter),
        head=instantiate(cfg.head),
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optim),
        scheduler=instantiate(cfg.sched) if cfg.sched else None,
        class_names=list(class_names),
    )


def record_evaluation(evaluation, out) -> dict:
    """Write an evaluation's figures to ``plots/<name>`` through the run-folder writer; return its metrics."""
    for name, png in evaluation.figures.items():
        if not name or Path(name).name != name:
            raise ValueError(f"figure name {name!r} must be a plain file name (it goes under plots/)")
        out.write_bytes(Path("plots") / name, png)
    return evaluation.metrics


class Family:
    """Hooks of the default family; subclasses override what differs."""

    #: whether ``ckpt=PATH`` (evaluate a checkpoint instead of training) is supported
    accepts_checkpoint = True
    #: whether a checkpoint is required (painting, for example, has nothing to train)
    needs_checkpoint = False
    #: whether weights are exported to ``checkpoints/model.safetensors`` after evaluation
    exports_weights = True

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg

    # ------------------------------------------------------------------------------------- build
    def build_datamodule(self):
        datamodule = instantiate(self.cfg.dataset)
        datamodule.setup()
        return datamodule

    def build_task(self, datamodule) -> L.LightningModule:
        return build_task_module(self.cfg, datamodule.class_names)

    def parameter_counts(self, task) -> dict | None:
        return task.parameter_counts() if task is not None else None

    # --------------------------------------------------------------------------------------- fit
    def fit_phases(self, task, datamodule, out) -> Iterator[Phase]:
        """The fits to run, in order; code between two ``yield`` runs between those fits. The last
        phase's task and datamodule are the ones evaluated."""
        yield Phase("fit", task, datamodule)

    # ---------------------------------------------------------------------------------- evaluate
    def evaluate(self, task, trainer: L.Trainer, datamodule, out) -> dict[str, dict]:
        """Metrics of every held-out split (val before test: val fits thresholds that test reuses)."""
        results = {}
        for split in datamodule.eval_splits:
            label_evaluation(trainer, split)
            trainer.test(task, dataloaders=datamodule.loader(split), verbose=False)
            results[split] = record_evaluation(task.evaluate_split(split), out)
            for name, png in self.split_figures(task, datamodule, split).items():
                out.write_bytes(Path("plots") / name, png)
        return results

    def split_figures(self, task, datamodule, split: str) -> dict[str, bytes]:
        """Figures that need the split's images besides the evaluator's numbers (file name -> PNG bytes)."""
        return {}

    def deployment_metrics(self, task, datamodule, out) -> dict:
        """Measured once per run and added to the final split's metrics (e.g. CPU latency)."""
        return task.measure_latency() if hasattr(task, "measure_latency") else {}

    def check_checkpoint_use(self) -> None:
        given = bool(self.cfg.get("ckpt"))
        if given and not self.accepts_checkpoint:
            raise ZoolabError(f"ckpt=... (evaluate a checkpoint) is not supported by task '{self.cfg.task.name}'",
                              where="ckpt", fix="remove the ckpt override to train and evaluate")
        if self.needs_checkpoint and not given:
            raise ZoolabError(f"task={self.cfg.task.name} needs a trained checkpoint and none was given",
                              where="ckpt", fix="add ckpt=<run>/checkpoints/best.ckpt (or model.safetensors)")
