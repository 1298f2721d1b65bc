"""Embedding classifiers: load the cache, train the head (then hard mining and cRT phases when asked),
calibrate a temperature on val, evaluate val and test."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import OmegaConf

from zoolab.console import label_evaluation
from zoolab.families.base import Family, Phase
from zoolab.tasks.embedding_cls import run_label

__all__ = ["EmbeddingClassifierFamily"]


class EmbeddingClassifierFamily(Family):
    """``ckpt=`` takes a run's ``checkpoints/best.ckpt`` (the best weights of its last phase) or
    ``checkpoints/model.safetensors`` (the final, calibrated head); the temperature is fitted on val
    again, which gives the training run's value for the same weights."""

    def build_task(self, datamodule):
        cfg = self.cfg
        task = instantiate(cfg.task.module)(
            head=instantiate(cfg.head), loss=instantiate(cfg.loss), optimizer=instantiate(cfg.optim),
            scheduler=instantiate(cfg.sched) if cfg.sched else None, class_names=datamodule.class_names,
            in_features=datamodule.dim, train_counts=datamodule.train_counts(),
            background=datamodule.background if datamodule.background_index is not None else None)
        task.feature_std.copy_(datamodule.tensors["train"][0].std(0))
        return task

    @property
    def label(self) -> str:
        return run_label(self.cfg, (self.cfg.get("report") or {}).get("profile") or "custom")

    def fit_phases(self, task, datamodule, out):
        """main, then hard mining and cRT when enabled. The last phase that runs writes the run folder's
        ``checkpoints/`` (so ``checkpoints/best.ckpt`` holds the final weights); earlier ones write a
        folder of their own name."""
        out.record.update(label=self.label,
                          report={**OmegaConf.to_container(self.cfg.report, resolve=True), "label": self.label})
        names = ["main"] + [name for name, epochs in (("hard_mining", task.hard_mining_epochs),
                                                      ("crt", task.crt_epochs)) if epochs > 0]

        def stage(name: str) -> str:
            return "" if name == names[-1] else name

        yield Phase("main", task, datamodule, stage=stage("main"), timing="train")
        if "hard_mining" in names:
            task.phase = "hard_mining"
            yield Phase("hard_mining", task, datamodule, stage=stage("hard_mining"), timing="hard_mining_train",
                        max_epochs=task.hard_mining_epochs)
        if "crt" in names:
            task.start_crt()
            datamodule.sampler = task.crt_sampler  # cRT retrains the classifier on re-balanced batches
            yield Phase("crt", task, datamodule, stage=stage("crt"), timing="crt_train", max_epochs=task.crt_epochs)

    def evaluate(self, task, trainer, datamodule, out):
        with out.record.phase("calibrate"):
            if task.calibrate:
                label_evaluation(trainer, "val (calibration)")
                trainer.test(task, dataloaders=datamodule.loader("val"), verbose=False)
                out.record.update(temperature=task.fit_temperature(*task.raw_outputs()))
        results = super().evaluate(task, trainer, datamodule, out)
        for metrics in results.values():
            metrics["label"] = self.label
        return results

    def deployment_metrics(self, task, datamodule, out) -> dict:
        return {}
