"""Re-identification task (PromptSG family): CLIP image encoder -> PromptSG interaction -> re-ID head.

Training: uint8 images -> float 0-255 -> ``PromptSG.forward(backbone, images, training=True)`` -> head
(linear or BNNeck + ArcFace) -> ``ReidLoss(outputs, logits, labels, epoch_fraction)``; every part of the
loss is logged as ``train/loss_<part>``. Validation: features of the validation split (training identities
held out by the datamodule, never test data) ranked by the split's evaluator (``zoolab.evaluators.reid``,
built from ``dataset.describe()``) -> ``val/rank1``, ``val/rank5``, ``val/mAP`` (``val/rank1`` drives
checkpointing and early stopping). Test: the same features for every evaluated split -> ``rank1``,
``rank5``, ``rank10``, ``mAP`` (+ ``_std`` and ``num_splits`` for the split protocol).

Optimiser (AdamW or whatever ``optim`` names): the CLIP visual encoder in the adapter's groups at
``adapter.lr`` (``lr_clip_visual``), the new modules (PromptSG, head, learned loss weights) at
``optim.lr`` (``lr_modules``), weight decay on both. Center-loss centres are not in that optimiser:
they take a plain SGD step at ``center_lr`` after each optimiser step, with their gradient scaled by
1 / center_weight (Wen et al. 2016 / CLIP-ReID), so the loss weight does not change how fast they move.
Gradients of the optimiser's parameters are clipped to ``grad_clip`` (L2 norm) in Lightning's
``configure_gradient_clipping`` hook, which Lightning calls after backward and BEFORE ``step()``.

Every quirk of the original CLIP-FH runs (numbered in docs/reid.md) is an
explicit flag whose default is the correct behaviour:

- ``clip_after_step`` (#6): clip after ``optimizer.step()`` instead, which leaves the update unclipped.
- ``train_normalize: false`` (#9): training and in-training validation images skip the CLIP mean/std;
  the final evaluation (``trainer.test``) applies it.
- ``select_on: test_split0`` (#11): the monitored ``val/*`` values are computed on test split 0 (single
  gallery protocol only), so checkpoint choice and early stopping read test data as the original did.
- ``use_last_epoch_weights`` (#12): evaluate the weights of the last trained epoch, not the best one.
- ``triplet_feature: normalized_dropout`` (#14): the triplet loss sees ``dropout(normalize(feature))``.

The frozen-CLIP baselines (no training) are ``zoolab.families.zero_shot``.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from zoolab.adapters.freeze import freeze_norm_stats
from zoolab.errors import ZoolabError
from zoolab.evaluators.base import Evaluation, evaluation_dataset
from zoolab.evaluators.reid import ReidEvaluator, reid_evaluator
from zoolab.tasks.base import ZooTask, base_lr

__all__ = ["ReidTask", "reid_latency", "SELECT_ON", "TRIPLET_FEATURES", "EVAL_FEATURES"]

log = logging.getLogger(__name__)
SELECT_ON = ("val", "test_split0")
TRIPLET_FEATURES = ("feature", "normalized_dropout")
EVAL_FEATURES = ("feature", "neck")
QUIRK_DROPOUT = 0.1  # CLIP-FH's dropout after the L2 normalisation of the pooled feature (#14)


# ----------------------------------------------------------------------------------------- small pieces
def _reid_feature(backbone: nn.Module, promptsg: nn.Module, head: nn.Module, eval_feature: str,
                  images: torch.Tensor) -> torch.Tensor:
    """The deployed re-ID feature of 0-255 images: PromptSG output, or the BNNeck's BN output."""
    feature = promptsg(backbone, images.float(), training=False)["feature"]
    return head.neck_feature(feature) if eval_feature == "neck" else feature


class _InferenceModel(nn.Module):
    """Image -> re-ID feature, as deployed (for latency): the image encoder plus the interaction."""

    def __init__(self, backbone: nn.Module, promptsg: nn.Module, head: nn.Module, eval_feature: str) -> None:
        super().__init__()
        self.backbone, self.promptsg, self.head, self.eval_feature = backbone, promptsg, head, eval_feature

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return _reid_feature(self.backbone, self.promptsg, self.head, self.eval_feature, images)


def _center_losses(loss: nn.Module) -> list[nn.Module]:
    from zoolab.losses.center import CenterLoss

    return [m for m in loss.modules() if isinstance(m, CenterLoss)]


def _set_normalize(backbone: nn.Module, value: bool) -> None:
    """Switch the backbone's CLIP mean/std step (quirk #9 replays training without it)."""
    if hasattr(backbone, "normalize"):
        backbone.normalize = value


# ------------------------------------------------------------------------------------------------- task
class ReidTask(ZooTask):
    """CLIP backbone + PromptSG + re-ID head trained with ``ReidLoss``.

    Args:
        backbone: ``OpenClipBackbone`` (``embed_dim``, ``token_dim``, ``image_size``, ``encode_image``, ...).
        head: partial taking ``in_features`` and ``num_classes`` (LinearHead, BNNeckHead).
        adapter: decides the trainable visual parameters and their LR group (``VisualBlocks``).
        loss: ``ReidLoss``; its ``bind(num_classes, feat_dim)`` creates the center-loss centres.
        optimizer: partial taking ``params``; its ``lr`` is the new modules' LR. scheduler: partial or None.
        class_names: training identities (the number of ID classes).
        promptsg: partial of ``zoolab.models.promptsg.PromptSG`` taking ``embed_dim`` and ``token_dim``.
        grad_clip: max L2 norm of the optimiser's gradients (None or 0: no clipping).
        center_lr: SGD learning rate of center-loss centres (used when the loss has a center term).
        eval_feature: ``feature`` (PromptSG output, before any BNNeck; CLIP-ReID) or ``neck`` (after BN).
        clip_after_step, train_normalize, select_on, use_last_epoch_weights, triplet_feature: quirk
            flags, see the module docstring.
        latency: ``measure_latency`` settings (``enabled``, ``threads``, ``warmup``, ``runs``); the input is
            one image at the backbone's ``image_size``.
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
        promptsg: Callable[..., nn.Module] | None = None,
        grad_clip: float | None = None,
        center_lr: float = 0.5,
        eval_feature: str = "feature",
        clip_after_step: bool = False,
        train_normalize: bool = True,
        select_on: str = "val",
        use_last_epoch_weights: bool = False,
        triplet_feature: str = "feature",
        latency: dict | None = None,
    ) -> None:
        super().__init__()
        for key, value, allowed in (("select_on", select_on, SELECT_ON),
                                    ("triplet_feature", triplet_feature, TRIPLET_FEATURES),
                                    ("eval_feature", eval_feature, EVAL_FEATURES)):
            if value not in allowed:
                raise ZoolabError(f"unknown {key} '{value}'", where=f"task.module.{key}",
                                  fix=f"use one of {', '.join(allowed)}")
        if promptsg is None:
            raise ZoolabError("the re-ID task needs a PromptSG module", where="task.module.promptsg",
                              fix="set task.module.promptsg (see conf/task/reid.yaml)")
        self.adapter = adapter
        self.backbone = adapter.apply(backbone)
        self.promptsg = promptsg(embed_dim=backbone.embed_dim, token_dim=backbone.token_dim)
        feature_dim = int(backbone.embed_dim)  # both PromptSG modes output an embed_dim feature
        self.head = head(in_features=feature_dim, num_classes=len(class_names))
        self._head_takes_labels = "labels" in inspect.signature(self.head.forward).parameters
        if eval_feature == "neck" and not hasattr(self.head, "neck_feature"):
            raise ZoolabError(f"eval_feature 'neck' needs a head with a neck; {type(self.head).__name__} "
                              "has none",
                              where="task.module.eval_feature", fix="use eval_feature=feature or head=bnneck")
        bind = getattr(loss, "bind", None)  # ReidLoss creates its center-loss centres here
        self.loss_fn = bind(num_classes=len(class_names), feat_dim=feature_dim) if bind else loss
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.class_names = list(class_names)
        self.grad_clip = float(grad_clip) if grad_clip else None
        self.center_lr = center_lr
        self.eval_feature = eval_feature
        self.clip_after_step, self.train_normalize = clip_after_step, train_normalize
        self.eval_normalize = bool(getattr(backbone, "normalize", True))  # the backbone's configured value
        self.select_on, self.use_last_epoch_weights = select_on, use_last_epoch_weights
        self.triplet_feature = triplet_feature
        self.latency = dict(latency or {})
        self._center_optimizer: torch.optim.Optimizer | None = None
        self._last_epoch_state: dict[str, torch.Tensor] | None = None
        self.evaluator: ReidEvaluator | None = None

    # ------------------------------------------------------------------------------ parts and forward
    def components(self) -> dict[str, nn.Module]:
        return {"backbone": self.backbone, "promptsg": self.promptsg, "head": self.head, "loss": self.loss_fn}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Re-ID features [B, D] of uint8 or 0-255 float images (evaluation path)."""
        return _reid_feature(self.backbone, self.promptsg, self.head, self.eval_feature, images)

    def _epoch_fraction(self) -> float:
        max_epochs = self.trainer.max_epochs if self._trainer is not None else None
        return self.current_epoch / max_epochs if max_epochs and max_epochs > 0 else 0.0

    # ------------------------------------------------------------------------------------- training
    def on_train_epoch_start(self) -> None:
        freeze_norm_stats(self.backbone)  # frozen ResNet stages keep their batch-norm statistics

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch[0], batch[1]
        _set_normalize(self.backbone, self.eval_normalize and self.train_normalize)
        outputs = self.promptsg(self.backbone, images.float(), training=True)
        feature = outputs["feature"]
        logits = self.head(feature, labels) if self._head_takes_labels else self.head(feature)
        if self.triplet_feature == "normalized_dropout" and self.promptsg.mode != "clipfh":
            # clipfh mode already returns dropout(normalize(mean)) as its feature, as the original did.
            quirk_feature = F.dropout(F.normalize(feature, dim=1), QUIRK_DROPOUT, training=True)
            outputs = {**outputs, "feature": quirk_feature}
        total, parts = self.loss_fn(outputs, logits, labels, self._epoch_fraction())
        batch_size = images.shape[0]
        self.log("train/loss", total, on_step=False, on_epoch=True, prog_bar=True, batch_size=batch_size)
        for name, value in parts.items():  # loss/id -> train/loss_id
            self.log(f"train/{name.replace('/', '_')}", value, on_step=False, on_epoch=True,
                     batch_size=batch_size)
        return total

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None,
                                    gradient_clip_algorithm=None) -> None:
        """Called by Lightning after backward and before ``optimizer.step()``: clip here (unless quirk #6)."""
        if gradient_clip_val:
            raise ZoolabError("trainer.gradient_clip_val is set, but the re-ID task clips with its own value",
                              where="trainer.gradient_clip_val",
                              fix="set task.module.grad_clip and leave trainer.gradient_clip_val null")
        if self.grad_clip and not self.clip_after_step:
            self.log("train/grad_norm", self._clip(optimizer), on_step=False, on_epoch=True)

    def _clip(self, optimizer) -> torch.Tensor:
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        return torch.nn.utils.clip_grad_norm_(params, self.grad_clip)

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        optimizer.step(closure=optimizer_closure)
        if self.grad_clip and self.clip_after_step:
            # Quirk #6: the original clipped here; the update above is already done, so this changes nothing.
            self._clip(optimizer)
        if self._center_optimizer is not None:
            self._step_centers()

    def _step_centers(self) -> None:
        weight = float(getattr(self.loss_fn, "weights", {}).get("center", 0.0))
        for group in self._center_optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None and weight > 0:
                    p.grad.mul_(1.0 / weight)
        self._center_optimizer.step()
        self._center_optimizer.zero_grad(set_to_none=True)

    # ------------------------------------------------------------------------------------ evaluation
    def _eval_features(self, batch, evaluator: ReidEvaluator) -> None:
        images, indices = batch[0], batch[3]
        evaluator.process(features=self(images).float().cpu(), indices=indices)

    def _split_evaluator(self, dataloaders) -> ReidEvaluator:
        dataset = evaluation_dataset(dataloaders)
        if not hasattr(dataset, "describe"):
            raise ZoolabError("the re-ID task evaluates zoolab.data.reid evaluation splits (datasets with "
                              "describe())", where="dataset", fix="use zoolab.data.reid.ReidDataModule")
        return reid_evaluator(dataset.describe())

    def on_validation_epoch_start(self) -> None:
        self.evaluator = self._split_evaluator(self.trainer.val_dataloaders) if self.select_on == "val" else None
        _set_normalize(self.backbone, self.eval_normalize and self.train_normalize)

    def validation_step(self, batch, batch_idx: int) -> None:
        if self.select_on == "val":
            self._eval_features(batch, self.evaluator)

    def on_validation_epoch_end(self) -> None:
        if self.select_on == "val":
            metrics = self.evaluator.evaluate().metrics
        else:
            metrics = self._test_split0_metrics()
        for key in ("rank1", "rank5", "mAP"):
            if key in metrics:
                self.log(f"val/{key}", float(metrics[key]), prog_bar=key != "rank5")
        self.evaluator = None

    @torch.no_grad()
    def _test_split0_metrics(self) -> dict:
        """Quirk #11: the selection metric on split 0 of the test protocol (what CLIP-FH validated on)."""
        loader = self.trainer.datamodule.loader("test")
        description = loader.dataset.describe()
        if description.get("protocol") != "single_gallery":
            raise ZoolabError("select_on=test_split0 replays the hand protocol's query0/gallery0 selection "
                              "and needs the single_gallery protocol", where="task.module.select_on",
                              fix="use select_on=val")
        # Split 0 of the test protocol: single_gallery_splits draws split s with seed + s.
        evaluator = reid_evaluator({**description, "num_splits": 1})
        for batch in loader:
            self._eval_features([t.to(self.device) if torch.is_tensor(t) else t for t in batch], evaluator)
        return evaluator.evaluate().metrics

    def on_fit_end(self) -> None:
        if self.use_last_epoch_weights:
            # Quirk #12: keep the last epoch's weights; they replace the best ones before evaluation.
            self._last_epoch_state = {k: v.detach().clone() for k, v in self.state_dict().items()}

    def on_test_epoch_start(self) -> None:
        if self._last_epoch_state is not None:
            self.load_state_dict(self._last_epoch_state)
            log.info("evaluating the last epoch's weights (use_last_epoch_weights, quirk #12)")
        self.evaluator = self._split_evaluator(self.trainer.test_dataloaders)
        _set_normalize(self.backbone, self.eval_normalize)

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_features(batch, self.evaluator)

    def evaluate_split(self, split: str) -> Evaluation:
        """rank1/5/10, mAP (+ ``_std``, ``num_splits``) of the split last run through ``trainer.test``."""
        if self.evaluator is None:
            raise RuntimeError("evaluate_split needs a trainer.test run of the split first")
        self.evaluator.split = split
        evaluation = self.evaluator.evaluate()
        if self._last_epoch_state is not None:
            evaluation.metrics["evaluated_weights"] = "last_epoch"
        return evaluation

    # --------------------------------------------------------------------------------- latency/export
    def measure_latency(self) -> dict:
        _set_normalize(self.backbone, self.eval_normalize)
        return reid_latency(_InferenceModel(self.backbone, self.promptsg, self.head, self.eval_feature),
                            self.backbone, self.latency)

    def inference_model(self) -> nn.Module:
        """Image -> deployed re-ID feature, on CPU in eval mode (shares the task's weights)."""
        _set_normalize(self.backbone, self.eval_normalize)
        return _InferenceModel(self.backbone, self.promptsg, self.head, self.eval_feature).cpu().eval()

    def inference_example(self) -> torch.Tensor:
        height, width = (int(s) for s in getattr(self.backbone, "image_size", (224, 224)))
        return torch.rand(1, 3, height, width) * 255

    def export_components(self) -> dict[str, nn.Module]:
        """Backbone (both towers: paper-mode inference encodes a prompt), PromptSG and head."""
        return {"backbone": self.backbone, "promptsg": self.promptsg, "head": self.head}

    # ----------------------------------------------------------------------------------- optimiser
    def param_groups(self) -> list[dict]:
        """The adapter's backbone groups, then PromptSG, head and loss parameters in one group; the
        center-loss centres have their own optimiser (see ``optimizer_step``)."""
        groups = [g for g in self.adapter.param_groups(self.backbone, base_lr(self.optimizer_factory)) if g["params"]]
        centers = {id(p) for m in _center_losses(self.loss_fn) for p in m.parameters()}
        modules = [p for part in (self.promptsg, self.head, self.loss_fn) for p in part.parameters()
                   if p.requires_grad and id(p) not in centers]
        return groups + ([{"name": "modules", "params": modules}] if modules else [])

    def configure_optimizers(self):
        centers = [p for m in _center_losses(self.loss_fn) for p in m.parameters() if p.requires_grad]
        self._center_optimizer = torch.optim.SGD(centers, lr=self.center_lr) if centers else None
        return super().configure_optimizers()


# --------------------------------------------------------------------------------------- latency helper
def reid_latency(model: nn.Module, backbone: nn.Module, settings: dict) -> dict:
    """Batch-1 CPU latency of ``model`` at the backbone's input size (``settings.enabled`` false: skip)."""
    from zoolab.metrics.latency import measure_latency

    if not settings.get("enabled", True):
        return {}
    height, width = (int(s) for s in getattr(backbone, "image_size", (224, 224)))
    return measure_latency(model, input_shape=(1, 3, height, width), threads=settings.get("threads"),
                           warmup=int(settings.get("warmup", 2)), runs=int(settings.get("runs", 10)))
