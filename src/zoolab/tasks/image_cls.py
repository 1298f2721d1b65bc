"""Image classification task (cherry-pit family): backbone -> head, cross-entropy, full evaluation.

Evaluation of a split (``zoolab.evaluators.classification``) gives accuracy, macro and per-class
P/R/F1, the confusion matrix (JSON + figure) and, for the positive (pit) class, a threshold analysis:
the threshold is fitted on ``val`` and the same frozen threshold is reported on ``test``. During fit,
``val/acc``, ``val/f1`` and ``val/acc_best`` (the best ``val/acc`` so far, kept in checkpoints so that a
resumed fit goes on from it) are logged. CPU batch-1 latency is measured once per run.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from zoolab.adapters.freeze import freeze_norm_stats
from zoolab.evaluators.base import Evaluation, evaluation_dataset
from zoolab.evaluators.classification import ClassificationEvaluator
from zoolab.tasks.base import ZooTask, split_no_decay

__all__ = ["ImageClassificationTask"]


class ImageClassificationTask(ZooTask):
    """Backbone + classification head trained with a cross-entropy-style loss.

    Args:
        backbone: module with ``num_features`` taking 0-255 float images.
        head: partial taking ``in_features`` and ``num_classes``.
        adapter: decides trainable backbone parameters and their LR groups.
        loss: ``loss(logits, targets) -> scalar``.
        optimizer: partial taking ``params``; scheduler: partial taking the optimiser, or None.
        class_names: label order; ``positive_class`` is analysed for recall thresholds.
        no_decay_norm_bias: put 1-d parameters (norms, biases) in a weight-decay-free group.
        latency: ``measure_latency`` settings (``enabled``, ``threads``, ``warmup``, ``runs``, ``input_size``) and
            the deployment variants the family compares (``variants``, ``calibration_images``, ...).
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: Callable[..., nn.Module],
        adapter: Any,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        class_names: list[str],
        scheduler: Callable | None = None,
        positive_class: str | None = "cherry_pit",
        target_recall: float = 0.99,
        target_precision: float = 0.99,
        no_decay_norm_bias: bool = True,
        latency: dict | None = None,
    ) -> None:
        super().__init__()
        self.adapter = adapter
        self.backbone = adapter.apply(backbone)
        self.head = head(in_features=backbone.num_features, num_classes=len(class_names))
        self.loss_fn = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.class_names = list(class_names)
        self.positive_class = positive_class if positive_class in self.class_names else None
        self.target_recall = target_recall
        self.target_precision = target_precision
        self.no_decay_norm_bias = no_decay_norm_bias
        self.latency = dict(latency or {})
        self.fitted_threshold: dict | None = None
        self.run_name = ""  # the experiment's name, for figure titles (set by the family)

        n = len(class_names)
        self.train_loss, self.val_loss = MeanMetric(), MeanMetric()
        self.train_acc = MulticlassAccuracy(num_classes=n, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=n, average="micro")
        self.val_f1 = MulticlassF1Score(num_classes=n, average="macro")
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)  # in checkpoints: a resumed fit keeps the best val/acc so far
        self.evaluator: ClassificationEvaluator | None = None

    def components(self) -> dict[str, nn.Module]:
        return {"backbone": self.backbone, "head": self.head}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))

    def _shared_step(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images, targets = batch
        logits = self(images)
        return self.loss_fn(logits, targets), logits, targets

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss, logits, targets = self._shared_step(batch)
        self.train_loss(loss)
        self.train_acc(logits, targets)
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        loss, logits, targets = self._shared_step(batch)
        self.val_loss(loss)
        self.val_acc(logits, targets)
        self.val_f1(logits, targets)
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("val/acc", self.val_acc, on_step=False, on_epoch=True, prog_bar=True)
        self.log("val/f1", self.val_f1, on_step=False, on_epoch=True)

    def test_step(self, batch, batch_idx: int) -> None:
        images, targets = batch
        self.evaluator.process(logits=self(images), labels=targets)

    def on_train_start(self) -> None:
        if self.trainer.ckpt_path is None:  # a fresh fit; a resumed one keeps the restored best
            self.val_acc_best.reset()

    def on_train_epoch_start(self) -> None:
        freeze_norm_stats(self.backbone)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:  # a few batches before training: not a validation result
            return
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=False)

    def on_test_epoch_start(self) -> None:
        self.evaluator = ClassificationEvaluator(self.class_names, self.positive_class, self.target_recall,
                                                 self.target_precision, band=self.fitted_threshold,
                                                 run_name=self.run_name)
        self.evaluator.num_samples = len(evaluation_dataset(self.trainer.test_dataloaders))

    def evaluate_split(self, split: str) -> Evaluation:
        """Metrics and confusion-matrix figure of the split last run through ``trainer.test``; ``val``
        fits the pit threshold band that later splits reuse."""
        if self.evaluator is None:
            raise RuntimeError("evaluate_split needs a trainer.test run of the split first")
        self.evaluator.split = split
        evaluation = self.evaluator.evaluate()
        self.fitted_threshold = self.evaluator.band
        return evaluation

    def inference_model(self) -> nn.Module:
        """The deployed classifier on CPU in eval mode: 0-255 float images -> logits (shares weights)."""
        return nn.Sequential(self.backbone, self.head).cpu().eval()

    def inference_example(self) -> torch.Tensor:
        size = int(self.latency.get("input_size", 224))
        return torch.rand(1, 3, size, size) * 255

    def measure_latency(self) -> dict:
        from zoolab.metrics.latency import measure_latency

        if not self.latency.get("enabled", True):
            return {}
        size = int(self.latency.get("input_size", 224))
        return measure_latency(
            self.inference_model(),
            input_shape=(1, 3, size, size),
            threads=self.latency.get("threads"),
            warmup=int(self.latency.get("warmup", 10)),
            runs=int(self.latency.get("runs", 50)),
        )

    def param_groups(self) -> list[dict]:
        groups = super().param_groups()
        return split_no_decay(groups) if self.no_decay_norm_bias else groups
