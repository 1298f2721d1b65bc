"""What the families' LightningModules share: named components and their parameter counts, parameter
groups with per-group learning rates, the optimiser and its schedule (per epoch, or per iteration for
schedules that take ``iters_per_epoch``), inference export, and checkpoints without frozen base weights.

A family module subclasses :class:`ZooTask`, sets ``optimizer_factory`` / ``scheduler_factory`` (and
``adapter`` when it has a backbone) and keeps only its forward, loss and family-specific steps.
"""

from __future__ import annotations

import inspect
import math
from functools import partial

import lightning as L
import torch
from torch import nn

from zoolab.params import count_parameters

__all__ = ["ZooTask", "split_no_decay", "base_lr"]

# Key of a checkpoint whose frozen base parameters were left out (their names; the base comes from the
# backbone's own weights file, or the seed of a random-init smoke run).
FROZEN_BASE_KEY = "zoolab_frozen_base"


def base_lr(optimizer_factory) -> float | None:
    return optimizer_factory.keywords.get("lr") if isinstance(optimizer_factory, partial) else None


def split_no_decay(groups: list[dict]) -> list[dict]:
    """Each group split in two: matrices keep weight decay, 1-d parameters (norms, biases) get none."""
    split = []
    for group in groups:
        split.append({**group, "params": [p for p in group["params"] if p.ndim > 1]})
        split.append({**group, "name": group.get("name", "group") + ".no_decay",
                      "params": [p for p in group["params"] if p.ndim <= 1], "weight_decay": 0.0})
    return [g for g in split if g["params"]]


class ZooTask(L.LightningModule):
    optimizer_factory = None
    scheduler_factory = None
    adapter = None

    # ------------------------------------------------------------------------------------ structure
    def components(self) -> dict[str, nn.Module]:
        """Named parts of the model, in the order ``run.json`` reports them (backbone includes its adapter)."""
        raise NotImplementedError

    def parameter_counts(self) -> dict:
        return count_parameters(self.components())

    # ------------------------------------------------------------------------------------ optimiser
    def param_groups(self) -> list[dict]:
        """The backbone's groups from its adapter (per-stage learning rates), then one group of the
        trainable parameters of every other component."""
        parts = self.components()
        groups = []
        if "backbone" in parts and self.adapter is not None:
            groups += self.adapter.param_groups(parts["backbone"], base_lr(self.optimizer_factory))
        for name, module in parts.items():
            if name != "backbone":
                groups.append({"name": name, "params": [p for p in module.parameters() if p.requires_grad]})
        return [g for g in groups if g["params"]]

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.param_groups())
        if self.scheduler_factory is None:
            return optimizer
        factory = self.scheduler_factory
        target = factory.func if isinstance(factory, partial) else factory
        try:
            per_iteration = "iters_per_epoch" in inspect.signature(target).parameters
        except (TypeError, ValueError):
            per_iteration = False
        if per_iteration:
            scheduler = factory(optimizer, iters_per_epoch=self.iters_per_epoch())
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": factory(optimizer)}}

    def iters_per_epoch(self) -> int:
        """Optimiser steps per training epoch (known once the Trainer has loaded the training data)."""
        self.trainer.estimated_stepping_batches  # loads the training data so the batch count is known
        batches = self.trainer.num_training_batches
        if not math.isfinite(batches):
            raise ValueError("a per-iteration schedule needs a training dataloader of known length")
        return max(1, math.ceil(batches / self.trainer.accumulate_grad_batches))

    # --------------------------------------------------------------------------------------- export
    def export_components(self) -> dict[str, nn.Module]:
        """The parts written to ``model.safetensors`` (prefix = component name)."""
        return self.components()

    def export_state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{name}.{k}": v for name, part in self.export_components().items()
                for k, v in part.state_dict().items()}

    def load_export_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load :meth:`export_state_dict` weights (``ckpt=.../model.safetensors``); strict per part."""
        for name, part in self.export_components().items():
            prefix = f"{name}."
            part.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})

    # ---------------------------------------------------------------------------------- checkpoints
    def on_fit_start(self) -> None:
        # Frozen when training first starts = the pretrained base (a later phase may freeze trained
        # layers, e.g. cRT; those stay in its checkpoints).
        if getattr(self, "_frozen_base", None) is None:
            self._frozen_base = {n for n, p in self.named_parameters() if not p.requires_grad}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Leave the frozen base out of ``best.ckpt`` / ``last.ckpt``: a run folder holds each weight
        set once (the full inference weights are in ``model.safetensors``)."""
        frozen = getattr(self, "_frozen_base", None) or set()
        state = checkpoint.get("state_dict", {})
        dropped = sorted(k for k in state if k in frozen)
        for key in dropped:
            del state[key]
        if dropped:
            checkpoint[FROZEN_BASE_KEY] = dropped

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.restore_frozen_base(checkpoint)

    def restore_frozen_base(self, checkpoint: dict) -> None:
        """Put this model's own (pretrained base) values of the left-out parameters back into
        ``checkpoint['state_dict']`` so it loads strictly."""
        names = checkpoint.get(FROZEN_BASE_KEY) or []
        if not names:
            return
        own = dict(self.named_parameters())
        state = checkpoint["state_dict"]
        for name in names:
            if name not in state and name in own:
                state[name] = own[name].detach().clone()
