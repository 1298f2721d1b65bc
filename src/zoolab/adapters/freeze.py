"""Full fine-tune, frozen backbone (linear probe / FC-only) and partial unfreezing with per-stage LRs."""

from __future__ import annotations

from torch import nn

from zoolab.errors import ZoolabError

__all__ = ["FullFineTune", "Frozen", "PartialUnfreeze", "freeze_norm_stats"]

def freeze_norm_stats(module: nn.Module) -> None:
    """Keep frozen parts in eval mode: a wholly frozen module (linear probe) and every batch-norm layer
    whose parameters are all frozen, so running statistics and dropout never change frozen features.

    Called at every train-epoch start, after Lightning switched the model to train mode.
    """
    if not any(p.requires_grad for p in module.parameters()):
        module.eval()
        return
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                m.eval()


class FullFineTune:
    """Every backbone parameter trains at the optimiser's base learning rate."""

    def apply(self, module: nn.Module) -> nn.Module:
        module.requires_grad_(True)
        return module

    def param_groups(self, module: nn.Module, lr: float) -> list[dict]:
        return [{"name": "backbone", "params": [p for p in module.parameters() if p.requires_grad]}]


class Frozen:
    """The backbone is frozen (weights and batch-norm statistics): only the head trains."""

    def apply(self, module: nn.Module) -> nn.Module:
        module.requires_grad_(False)
        return module

    def param_groups(self, module: nn.Module, lr: float) -> list[dict]:
        return []


class PartialUnfreeze:
    """Train only the named submodules, each optionally at its own learning rate.

    Args:
        trainable: submodule name prefixes inside the timm model, e.g. ``[layer4]`` for a ResNet.
        lr: optional per-prefix learning rates, e.g. ``{layer4: 1.0e-5}``; others use the base LR.
    """

    def __init__(self, trainable: list[str], lr: dict[str, float] | None = None) -> None:
        self.trainable = list(trainable)
        self.lr = dict(lr or {})
        unknown = set(self.lr) - set(self.trainable)
        if unknown:
            raise ZoolabError(
                f"adapter.lr names {sorted(unknown)} that are not in adapter.trainable {self.trainable}",
                where="adapter.lr",
                fix="list every prefix with its own learning rate in adapter.trainable too",
            )

    def _prefix_of(self, name: str) -> str | None:
        name = name.removeprefix("model.")
        return next((p for p in self.trainable if name == p or name.startswith(p + ".")), None)

    def apply(self, module: nn.Module) -> nn.Module:
        module.requires_grad_(False)
        seen = set()
        for name, param in module.named_parameters():
            prefix = self._prefix_of(name)
            if prefix is not None:
                param.requires_grad_(True)
                seen.add(prefix)
        missing = [p for p in self.trainable if p not in seen]
        if missing:
            top = sorted({n.removeprefix("model.").split(".")[0] for n, _ in module.named_parameters()})
            raise ZoolabError(
                f"adapter.trainable names {missing} match no backbone parameter",
                where="adapter.trainable",
                fix=f"use submodule names of the backbone, e.g. one of {top}",
            )
        return module

    def param_groups(self, module: nn.Module, lr: float) -> list[dict]:
        groups: dict[str, list] = {p: [] for p in self.trainable}
        for name, param in module.named_parameters():
            prefix = self._prefix_of(name)
            if prefix is not None and param.requires_grad:
                groups[prefix].append(param)
        return [
            {"name": f"backbone.{p}", "params": params, **({"lr": self.lr[p]} if p in self.lr else {})}
            for p, params in groups.items()
            if params
        ]
