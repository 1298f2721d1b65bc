"""Object detection task (SAR family): timm features -> adapter -> RetinaNet (FPN neck + head), COCO mAP.

Protocol of the original zoo (SAR-LoRA-DINO on MMDetection): validation after every epoch with score
threshold 0.05 selects the checkpoint on ``val/coco/bbox_mAP``; the final figures come from a separate
test pass of the best checkpoint with score threshold 0.0 and at most 100 detections per image, scored
by the COCO evaluator against the split's own annotation file (categories mapped by name), with
per-class APs. Training optimises focal + L1 box loss, logged as ``train/loss_cls`` / ``train/loss_bbox``.

Evaluation (``zoolab.evaluators.coco.CocoEvaluator``) collects every image's detections in the
validation / test steps and scores them when the epoch ends (validation: logged as ``val/coco/*``) or
when :meth:`DetectionTask.evaluate_split` is asked (test). Evaluation writes nothing.

Weights written besides ``model.safetensors`` (merged inference weights, from :meth:`export_state_dict`):
``checkpoints/adapter.safetensors`` holds only the trained parameters (LoRA, neck, head and any unfrozen
stage; see :meth:`adapter_state_dict`). The pipeline's ``export_weights`` writes both after evaluation,
from the evaluated weights (the best checkpoint's); a full fine-tune (nothing frozen) has no adapter file
because it would equal the whole model.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Callable

import torch
from torch import nn

from zoolab.adapters.freeze import freeze_norm_stats
from zoolab.evaluators.base import Evaluation, evaluation_dataset
from zoolab.evaluators.coco import CocoEvaluator
from zoolab.tasks.base import ZooTask

__all__ = ["DetectionTask"]

log = logging.getLogger(__name__)
LOSS_KEYS = {"classification": "train/loss_cls", "bbox_regression": "train/loss_bbox"}
VAL_LOGGED = ("coco/bbox_mAP", "coco/bbox_mAP_50", "coco/bbox_mAP_75")


def _eval_dataset(dataloaders: Any):
    """The dataset behind a Trainer's ``val_dataloaders`` / ``test_dataloaders`` (one loader or a list)."""
    dataset = evaluation_dataset(dataloaders)
    if dataset is None or not hasattr(dataset, "annotation_file"):
        raise ValueError("the evaluation dataloader's dataset has no annotation_file: the detection task needs "
                         "a zoolab.data.coco_detection split to score COCO mAP")
    return dataset


class DetectionTask(ZooTask):
    """RetinaNet on an adapted timm feature backbone.

    Args:
        backbone: ``TimmFeatures`` (multi-level features, ``out_channels``).
        head: partial of the detector taking ``backbone``, ``num_classes`` and ``loss``
            (``zoolab.heads.retinanet.RetinaNetDetector``: ``.backbone``, ``.neck``, ``.head``).
        adapter: decides which backbone parameters train (LoRA, frozen, full fine-tune) and their groups.
        loss: the detector's loss settings (``zoolab.losses.detection.RetinaNetLoss``).
        optimizer: partial taking ``params``; no weight-decay exceptions (the original has no paramwise cfg).
        class_names: label order (0-based labels).
        scheduler: partial taking the optimiser; when it also takes ``iters_per_epoch`` (per-iteration
            schedules such as ``warmup_multistep``) it is stepped every iteration, else every epoch.
        val_score_thresh: detector score threshold during per-epoch validation (checkpoint selection).
        test_score_thresh: score threshold of the final evaluation of each split (the report's protocol).
        eval_backend: COCO evaluator backend, ``faster_coco_eval`` or ``pycocotools`` (identical numbers).
        latency: ``measure_latency`` settings (``enabled`` false by default, ``threads``, ``warmup``, ``runs``).
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: Callable[..., nn.Module],
        adapter: Any,
        loss: Any,
        optimizer: Callable[..., torch.optim.Optimizer],
        class_names: list[str],
        scheduler: Callable | None = None,
        val_score_thresh: float = 0.05,
        test_score_thresh: float = 0.0,
        eval_backend: str = "faster_coco_eval",
        latency: dict | None = None,
    ) -> None:
        super().__init__()
        self.adapter = adapter
        self.class_names = list(class_names)
        self.detector = head(backbone=adapter.apply(backbone), num_classes=len(self.class_names), loss=loss)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.val_score_thresh = float(val_score_thresh)
        self.test_score_thresh = float(test_score_thresh)
        self.eval_backend = eval_backend
        self.latency = {"enabled": False, **dict(latency or {})}
        self.evaluator: CocoEvaluator | None = None

    # ------------------------------------------------------------------------------------- structure
    def components(self) -> dict[str, nn.Module]:
        return {"backbone": self.detector.backbone, "neck": self.detector.neck, "head": self.detector.head}

    def parameter_counts(self) -> dict:
        """Total/trainable overall and per component (backbone incl. LoRA, neck, head), with the backbone's
        LoRA parameter count (``per_component.backbone.lora``)."""
        from zoolab.heads.retinanet import detection_parameter_counts

        counts = detection_parameter_counts(self.detector)
        return {"total": counts.pop("total"), "trainable": counts.pop("trainable"), "per_component": counts}

    def forward(self, images: list[torch.Tensor]) -> list[dict]:
        return self.detector(images)

    # ----------------------------------------------------------------------------------------- steps
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, targets = batch
        losses = self.detector(images, targets)
        loss = sum(losses.values())
        n = len(images)
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=n)
        for key, value in losses.items():
            self.log(LOSS_KEYS.get(key, f"train/loss_{key}"), value, on_step=True, on_epoch=False, batch_size=n)
        return loss

    def _collect(self, batch) -> None:
        images, targets = batch
        self.evaluator.process(outputs=self.detector(images), targets=targets)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._collect(batch)

    def test_step(self, batch, batch_idx: int) -> None:
        self._collect(batch)

    # ---------------------------------------------------------------------------------------- hooks
    def on_train_epoch_start(self) -> None:
        freeze_norm_stats(self.detector.backbone)

    def on_validation_epoch_start(self) -> None:
        self._start_eval(self.val_score_thresh, self.trainer.val_dataloaders, classwise=False)

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            metrics = self.evaluator.evaluate().metrics
            for key in VAL_LOGGED:
                self.log(f"val/{key}", metrics[key], prog_bar=key == "coco/bbox_mAP")
        self.evaluator.reset()

    def on_test_epoch_start(self) -> None:
        self._start_eval(self.test_score_thresh, self.trainer.test_dataloaders, classwise=True)

    def _start_eval(self, score_thresh: float, dataloaders, classwise: bool) -> None:
        """A fresh evaluator for the split behind ``dataloaders``; validation reports no classwise APs
        (nor ``score_thresh``), the test pass reports both."""
        self.detector.score_thresh = score_thresh
        data = _eval_dataset(dataloaders)
        self.evaluator = CocoEvaluator(data.annotation_file, list(data.category_ids), self.class_names,
                                       backend=self.eval_backend, classwise=classwise,
                                       score_thresh=score_thresh if classwise else None)
        self.evaluator.num_samples = len(data)

    # ---------------------------------------------------------------------------------- evaluation
    def evaluate_split(self, split: str) -> Evaluation:
        """COCO bbox metrics (six ``coco/bbox_*`` keys + ``classwise`` APs, ``score_thresh``,
        ``num_images``) of the split last run through ``trainer.test``."""
        if self.evaluator is None:
            raise RuntimeError("evaluate_split needs a trainer.test run of the split first")
        self.evaluator.split = split
        return self.evaluator.evaluate()

    def measure_latency(self) -> dict:
        """Batch-1 CPU latency at the detector's input size (post-processing included); off by default."""
        from zoolab.metrics.latency import measure_latency

        if not self.latency.get("enabled", False):
            return {}
        height, width = (int(s) for s in getattr(self.detector, "image_size", (800, 800)))
        return measure_latency(_ListInput(self.detector), input_shape=(1, 3, height, width),
                               threads=self.latency.get("threads"), warmup=int(self.latency.get("warmup", 2)),
                               runs=int(self.latency.get("runs", 10)), input_scale=1.0)

    # --------------------------------------------------------------------------------------- weights
    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """Every trained parameter (LoRA, neck, head, unfrozen stages), keyed as in ``self.detector``;
        empty when nothing is frozen (a full fine-tune has no adapter file)."""
        if all(p.requires_grad for p in self.detector.parameters()):
            return {}
        return {name: p.detach() for name, p in self.detector.named_parameters() if p.requires_grad}

    def load_adapter_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load :meth:`adapter_state_dict` weights on top of the (pretrained) base; every trained
        parameter must be present."""
        own = {name: p for name, p in self.detector.named_parameters() if p.requires_grad}
        expected = set(own)
        missing, unexpected = expected - set(state), set(state) - expected
        unexpected |= {k for k in expected & set(state) if state[k].shape != own[k].shape}  # e.g. another rank
        if missing or unexpected:
            from zoolab.errors import ZoolabError

            raise ZoolabError(f"the adapter weights do not match this model: {len(missing)} trained tensors "
                              f"missing (e.g. {sorted(missing)[:3]}), {len(unexpected)} unexpected or of another shape "
                              f"(e.g. {sorted(unexpected)[:3]})", where="ckpt",
                              fix="use the adapter.safetensors of a run of the same experiment (same LoRA rank, "
                                  "targets and unfrozen stages), or its best.ckpt / model.safetensors")
        self.detector.load_state_dict(state, strict=False)

    def export_state_dict(self) -> dict[str, torch.Tensor]:
        """Inference weights of a plain detector: LoRA merged into the base weights (on a copy), keys
        ``backbone.* / neck.* / head.*`` as in ``RetinaNetDetector`` without any adapter."""
        from zoolab.adapters.lora import merge_lora

        merged = merge_lora(copy.deepcopy(self.detector.backbone))
        return ({f"backbone.{k}": v for k, v in merged.state_dict().items()}
                | {f"neck.{k}": v for k, v in self.detector.neck.state_dict().items()}
                | {f"head.{k}": v for k, v in self.detector.head.state_dict().items()})

    def load_export_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load :meth:`export_state_dict` weights: LoRA is merged away in place first (so the backbone has
        the plain layout), then every key must match."""
        from zoolab.adapters.lora import merge_lora

        self.detector.backbone = merge_lora(self.detector.backbone)
        self.detector.load_state_dict(state, strict=True)


class _ListInput(nn.Module):
    """Adapts the detector's list-of-images input to the latency timer's single batch tensor."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> list[dict]:
        return self.detector(list(images))
