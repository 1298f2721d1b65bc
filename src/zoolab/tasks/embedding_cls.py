"""Embedding classifiers: an MLP head on cached frozen-encoder embeddings, with long-tail knobs.

Training options (each a ``task.module`` value; profiles in ``conf/profile`` bundle them):

- class weights ``none`` / ``inverse`` / ``effective`` (Cui et al. 2019, β) in the cross-entropy;
- logit adjustment (Menon et al. 2021) ``train`` (loss on f(x) + τ log π), ``inference`` (argmax of
  f(x) − τ log π; ``inference_adjust=add`` replays the original report's f(x) + τ log π), ``both``; π are
  training-split class frequencies, stored with the model;
- input mixup (α) or manifold mixup (same λ, mixed at a random hidden layer of the MLP);
- feature-space augmentation: Gaussian noise (σ × training std) and channel scaling (1 + δ·N(0,1)), each
  applied to a sample with probability ``feature_aug_prob``;
- hard-example mining: after the main phase, ``hard_mining_epochs`` more epochs whose loss is the mean
  over the hardest ``hard_mining_fraction`` of each batch (online hard-example mining);
- supervised-contrastive auxiliary loss on a projection head (``supcon_class_weights`` none / inverse /
  effective weights its anchors by class); center loss with its own optimiser group;
- cRT (Kang et al. 2020): last, re-initialise the classifier layer, freeze the rest and retrain it for
  ``crt_epochs`` with ``crt_sampler`` batches (``balanced`` by default, or ``sqrt`` / ``natural``);

Each phase (main, hard mining, cRT) is its own fit with early stopping and best-on-val weights, so a
phase always runs even when early stopping ended the one before it.
- temperature calibration (Guo et al. 2017): T fitted on validation NLL after training.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from zoolab.data.embedding_datamodule import check_sampler
from zoolab.errors import ZoolabError
from zoolab.evaluators.base import Evaluation, evaluation_dataset
from zoolab.evaluators.foreground import ForegroundEvaluator
from zoolab.losses.long_tail import WEIGHT_KINDS
from zoolab.tasks.base import ZooTask

__all__ = ["EmbeddingClassificationTask", "run_label"]

log = logging.getLogger(__name__)
LOGIT_ADJUST = ("none", "train", "inference", "both")
# Inference-time logit adjustment: Menon et al.'s post-hoc rule subtracts tau*log(prior); the report's
# original code added it (the same sign as in training), which +stack=report_logit_adjust replays.
INFERENCE_ADJUST = ("subtract", "add")


class EmbeddingClassificationTask(ZooTask):
    def __init__(
        self,
        head: Callable[..., nn.Module],
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        class_names: list[str],
        in_features: int,
        train_counts: torch.Tensor,
        background: str | None = None,
        scheduler: Callable | None = None,
        class_weights: str = "none",
        beta: float = 0.9999,
        logit_adjust: str = "none",
        tau: float = 1.0,
        inference_adjust: str = "subtract",
        mixup_alpha: float = 0.0,
        manifold_mixup: bool = False,
        feature_noise: float = 0.0,
        channel_scale: float = 0.0,
        feature_aug_prob: float = 1.0,
        hard_mining_epochs: int = 0,
        hard_mining_fraction: float = 0.5,
        supcon_weight: float = 0.0,
        supcon_temperature: float = 0.07,
        supcon_class_weights: str = "none",
        projection_dim: int = 128,
        center_weight: float = 0.0,
        center_lr: float = 0.5,
        crt_epochs: int = 0,
        crt_sampler: str = "balanced",
        calibrate: bool = True,
    ) -> None:
        super().__init__()
        from zoolab.losses.long_tail import class_weights as make_weights
        from zoolab.losses.long_tail import log_priors

        if logit_adjust not in LOGIT_ADJUST:
            raise ZoolabError(f"unknown logit_adjust '{logit_adjust}'", where="task.module.logit_adjust",
                              fix=f"use one of {', '.join(LOGIT_ADJUST)}")
        if inference_adjust not in INFERENCE_ADJUST:
            raise ZoolabError(f"unknown inference_adjust '{inference_adjust}'", where="task.module.inference_adjust",
                              fix=f"use one of {', '.join(INFERENCE_ADJUST)} (add replays the report: +stack=report_logit_adjust)")
        if not 0.0 <= feature_aug_prob <= 1.0:
            raise ZoolabError(f"feature_aug_prob must be a probability, got {feature_aug_prob}",
                              where="task.module.feature_aug_prob", fix="use a value in [0, 1] (1 augments every sample)")
        check_sampler(crt_sampler, "task.module.crt_sampler")
        for key, kind in (("class_weights", class_weights), ("supcon_class_weights", supcon_class_weights)):
            if kind not in WEIGHT_KINDS:
                raise ZoolabError(f"unknown {key} '{kind}'", where=f"task.module.{key}",
                                  fix=f"use one of {', '.join(WEIGHT_KINDS)}")
        self.class_names = list(class_names)
        self.background = background
        self.head = head(in_features=in_features, num_classes=len(class_names))
        self.loss_fn = loss
        weight = make_weights(train_counts, class_weights, beta)
        prior = log_priors(train_counts)
        self.loss_fn.set_buffers(weight=weight, log_prior=prior if logit_adjust in ("train", "both") else None)
        self.loss_fn.tau = tau
        self.register_buffer("log_prior", prior)
        self.register_buffer("temperature", torch.ones(()))
        self.logit_adjust, self.tau = logit_adjust, tau
        self.inference_sign = -1.0 if inference_adjust == "subtract" else 1.0
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.mixup_alpha, self.manifold_mixup = mixup_alpha, manifold_mixup
        self.feature_noise, self.channel_scale, self.feature_aug_prob = feature_noise, channel_scale, feature_aug_prob
        self.hard_mining_epochs, self.hard_mining_fraction = hard_mining_epochs, hard_mining_fraction
        self.supcon_weight, self.center_weight, self.center_lr = supcon_weight, center_weight, center_lr
        self.crt_epochs, self.crt_sampler, self.calibrate = crt_epochs, crt_sampler, calibrate
        self.phase = "main"  # main | hard_mining | crt
        features = self.head.num_features
        if supcon_weight > 0:
            from zoolab.losses.supcon import SupConLoss

            self.projection = nn.Sequential(nn.Linear(features, features), nn.ReLU(),
                                            nn.Linear(features, projection_dim))
            self.supcon = SupConLoss(temperature=supcon_temperature)
            self.register_buffer("supcon_class_weights", make_weights(train_counts, supcon_class_weights, beta))
        if center_weight > 0:
            from zoolab.losses.center import CenterLoss

            self.center_loss = CenterLoss(len(class_names), features)
        self.register_buffer("feature_std", torch.ones(in_features))
        self.evaluator: ForegroundEvaluator | None = None
        self.val_scores: list[float] = []

    # ------------------------------------------------------------------ forward and inference logits
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits as deployed: post-hoc logit adjustment (if enabled), then the fitted temperature."""
        return self.deployed_logits(self.head(x))

    def inference_model(self) -> nn.Module:
        """Embedding -> deployed logits (the head, post-hoc adjustment, temperature), on CPU in eval mode."""
        return _DeployedLogits(self).cpu().eval()

    def inference_example(self) -> torch.Tensor:
        return torch.randn(1, self.feature_std.numel())

    def decision_logits(self, raw: torch.Tensor) -> torch.Tensor:
        """The logits whose argmax is the prediction (post-hoc adjustment applied, no temperature)."""
        if self.logit_adjust not in ("inference", "both"):
            return raw
        return raw + self.inference_sign * self.tau * self.log_prior

    def deployed_logits(self, raw: torch.Tensor) -> torch.Tensor:
        # Temperature divides the decision logits, so calibration never changes a prediction.
        return self.decision_logits(raw) / self.temperature

    @property
    def in_crt_phase(self) -> bool:
        return self.phase == "crt"

    def components(self) -> dict[str, nn.Module]:
        parts = {"head": self.head}
        for name in ("projection", "center_loss"):
            if hasattr(self, name):
                parts[name] = getattr(self, name)
        return parts

    # ------------------------------------------------------------------ training
    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        """Feature-space augmentation; each sample gets each enabled one with probability feature_aug_prob."""
        if self.feature_noise > 0:
            x = x + self._chosen(x) * self.feature_noise * self.feature_std * torch.randn_like(x)
        if self.channel_scale > 0:
            x = x * (1 + self._chosen(x) * self.channel_scale * torch.randn(1, x.shape[1], device=x.device))
        return x

    def _chosen(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1] mask: 1 for the samples an augmentation applies to."""
        return (torch.rand(x.shape[0], 1, device=x.device) < self.feature_aug_prob).to(x.dtype)

    def _mixed_logits(self, x: torch.Tensor, y: torch.Tensor):
        """Logits, soft targets and (unmixed) penultimate features, under input or manifold mixup
        (one λ and permutation per batch). A margin classifier (ArcFace) gets the dominant label."""
        num_classes = len(self.class_names)
        target = nn.functional.one_hot(y, num_classes).float()
        if self.mixup_alpha <= 0 or self.in_crt_phase:
            features = self.head.features(x)
            return self.head.forward_from(features, len(self.head.blocks), labels=y), target, features
        lam = float(np.random.beta(self.mixup_alpha, self.mixup_alpha))
        perm = torch.randperm(x.shape[0], device=x.device)
        mixed_target = lam * target + (1 - lam) * target[perm]
        dominant = y if lam >= 0.5 else y[perm]
        layer = int(np.random.randint(0, len(self.head.blocks) + 1)) if self.manifold_mixup else 0
        h = x
        for block in self.head.blocks[:layer]:
            h = block(h)
        h = lam * h + (1 - lam) * h[perm]
        return self.head.forward_from(h, layer, labels=dominant), mixed_target, None

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        x = self._augment(x)
        logits, target, features = self._mixed_logits(x, y)
        if self.phase == "hard_mining":
            per_sample = self.loss_fn(logits, target, reduction="none")
            k = max(1, math.ceil(self.hard_mining_fraction * len(per_sample)))
            loss = per_sample.topk(k).values.mean()
        else:
            loss = self.loss_fn(logits, target)
        if not self.in_crt_phase:
            if self.supcon_weight > 0:
                feats = self.head.features(x) if features is None else features
                loss = loss + self.supcon_weight * self.supcon(self.projection(feats), y, self.supcon_class_weights)
            if self.center_weight > 0:
                feats = self.head.features(x) if features is None else features
                loss = loss + self.center_weight * self.center_loss(feats, y)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def start_crt(self) -> None:
        """Re-initialise the classifier layer and train only it from here (class-balanced batches)."""
        self.phase = "crt"
        classifier = self.head.classifier
        for module in classifier.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        self.requires_grad_(False)
        classifier.requires_grad_(True)
        log.info("cRT: classifier re-initialised; training it alone with the %s sampler", self.crt_sampler)

    # ------------------------------------------------------------------ evaluation
    def _collect(self, batch) -> None:
        """Feed the raw head logits and labels of an evaluation batch (validation or test) to the evaluator."""
        x, y = batch
        self.evaluator.process(logits=self.head(x), labels=y)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._collect(batch)

    def on_validation_epoch_start(self) -> None:
        # During fit: predictions from the decision logits (no temperature, no calibration figures).
        self.evaluator = ForegroundEvaluator(self.class_names, self.background, to_logits=self.decision_logits,
                                             calibration=False)
        self.evaluator.num_samples = len(evaluation_dataset(self.trainer.val_dataloaders))

    def on_validation_epoch_end(self) -> None:
        report = self.evaluator.evaluate().metrics
        self.log("val/macro_f1_fg", report["macro_f1_fg"], prog_bar=True)

    def test_step(self, batch, batch_idx: int) -> None:
        self._collect(batch)

    def on_test_epoch_start(self) -> None:
        # As deployed: post-hoc adjustment and the fitted temperature (fitted before this pass).
        self.evaluator = ForegroundEvaluator(self.class_names, self.background, to_logits=self.deployed_logits,
                                             calibration=True, temperature=float(self.temperature))
        self.evaluator.num_samples = len(evaluation_dataset(self.trainer.test_dataloaders))

    def raw_outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw head logits and labels of the last evaluation pass (the temperature is fitted on val's)."""
        return self.evaluator.collected()

    def evaluate_split(self, split: str) -> Evaluation:
        """Foreground report, ECE, temperature and ``reliability_<split>.png`` of the split last run
        through ``trainer.test``."""
        if self.evaluator is None:
            raise RuntimeError("evaluate_split needs a trainer.test run of the split first")
        self.evaluator.split = split
        return self.evaluator.evaluate()

    def fit_temperature(self, raw_logits: torch.Tensor, labels: torch.Tensor) -> float:
        """Fit T on validation NLL of the decision logits (what the deployed model divides by T)."""
        from zoolab.metrics.calibration import fit_temperature

        temperature = fit_temperature(self.decision_logits(raw_logits).float(), labels)
        self.temperature.fill_(temperature)
        return temperature

    # ------------------------------------------------------------------ export
    # The deployed logits need the class priors (post-hoc adjustment) and the fitted temperature too.
    _EXPORTED_BUFFERS = ("log_prior", "temperature")

    def export_state_dict(self) -> dict[str, torch.Tensor]:
        return {**super().export_state_dict(), **{name: getattr(self, name) for name in self._EXPORTED_BUFFERS}}

    def load_export_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        for name in self._EXPORTED_BUFFERS:
            if name not in state:
                raise KeyError(f"'{name}' is missing from the exported weights")
            getattr(self, name).copy_(state.pop(name))
        super().load_export_state_dict(state)

    # ------------------------------------------------------------------ optimisation
    def param_groups(self) -> list[dict]:
        params = [p for n, p in self.named_parameters() if not n.startswith("center_loss.")]
        groups = [{"name": "model", "params": params}]
        if hasattr(self, "center_loss"):
            # The centres move at their own rate, independent of the loss weight (Wen et al. 2016).
            groups.append({"name": "centers", "params": list(self.center_loss.parameters()), "lr": self.center_lr,
                           "weight_decay": 0.0})
        return groups


class _DeployedLogits(nn.Module):
    """Only the task's inference path, so that exporters trace ``forward`` and nothing else."""

    def __init__(self, task: EmbeddingClassificationTask) -> None:
        super().__init__()
        self.task = task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.task(x)


def _num(value: float) -> str:
    return f"{value:g}".replace(".", "p").replace("-", "m")


def run_label(cfg: DictConfig, profile: str) -> str:
    """The report's run label, e.g. ``qwen_dataset_dinov3_vitl16_mlp1024_512_mix0p1_balnorm_ls0p1_full_bg5``."""
    d, m = cfg.dataset, cfg.task.module
    parts = [d.name, d.encoder, "mlp" + "_".join(str(h) for h in cfg.head.hidden) if cfg.head.hidden else "linear"]
    if m.mixup_alpha > 0:
        parts.append(f"mix{_num(m.mixup_alpha)}")
    if d.balnorm:
        parts.append("balnorm")
    parts += [f"ls{_num(cfg.loss.label_smoothing)}", profile]
    if d.background and d.bg is not None:
        parts.append(f"bg{_num(d.bg)}")
    return "_".join(str(p) for p in parts)
