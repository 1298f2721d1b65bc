"""Which parts of a CLIP image tower train: all of it, none of it, or its last N blocks / stages.

Works on any module with a ``visual`` open_clip image tower (``OpenClipBackbone``). The text tower is never
trainable: every parameter outside ``visual`` is frozen by ``apply``. The unit of N is the architecture's
block: a ViT residual block (``visual.transformer.resblocks.i``; the last block brings ``ln_post`` and
``proj`` with it) or a ModifiedResNet stage (``layer4``, then ``layer3``, ...; the last stage brings
``attnpool`` with it). This is the "unfreeze last N blocks" knob of CLIP-FH's Stage 2; its Stage 3 trained
the whole image tower (``unfreeze_last: null``).
"""

from __future__ import annotations

from torch import nn

from zoolab.errors import ZoolabError

__all__ = ["VisualBlocks"]

_RESNET_STAGES = ("layer4", "layer3", "layer2", "layer1")


def _trainable_prefixes(visual: nn.Module, n: int) -> list[str]:
    """Parameter-name prefixes (relative to ``visual``) of the last ``n`` blocks and the output layers."""
    if hasattr(visual, "transformer"):
        depth = len(visual.transformer.resblocks)
        if n > depth:
            raise ZoolabError(f"adapter.unfreeze_last={n}, but the ViT has only {depth} blocks",
                              where="adapter.unfreeze_last", fix=f"use 0..{depth} or null (all)")
        return [f"transformer.resblocks.{i}" for i in range(depth - n, depth)] + ["ln_post", "proj"]
    if hasattr(visual, "attnpool"):
        if n > len(_RESNET_STAGES):
            raise ZoolabError(f"adapter.unfreeze_last={n}, but the ResNet has only 4 stages",
                              where="adapter.unfreeze_last", fix="use 0..4 or null (all)")
        return list(_RESNET_STAGES[:n]) + ["attnpool"]
    raise ZoolabError("the backbone's visual tower is neither an open_clip ViT nor a ModifiedResNet",
                      where="adapter", fix="use adapter=clip_visual only with an open_clip CLIP backbone")


class VisualBlocks:
    """Train the CLIP image tower (all of it, or its last ``unfreeze_last`` blocks), never the text tower.

    Args:
        unfreeze_last: None = whole image tower trainable; 0 = frozen; N = the last N ViT blocks
            (+ ``ln_post``, ``proj``) or ResNet stages (+ ``attnpool``).
        lr: learning rate of the image tower's parameter group (``lr_clip_visual``); None = the base LR.
    """

    def __init__(self, unfreeze_last: int | None = None, lr: float | None = None) -> None:
        if unfreeze_last is not None and unfreeze_last < 0:
            raise ZoolabError(f"adapter.unfreeze_last must be >= 0 or null, got {unfreeze_last}",
                              where="adapter.unfreeze_last",
                              fix="use null (all), 0 (frozen) or a block count")
        self.unfreeze_last = unfreeze_last
        self.lr = lr

    @staticmethod
    def _visual(module: nn.Module) -> nn.Module:
        visual = getattr(module, "visual", None)
        if not isinstance(visual, nn.Module):
            raise ZoolabError("adapter=clip_visual needs a backbone with a CLIP `visual` tower",
                              where="adapter", fix="use backbone=clip_vitb16 or clip_rn50 with this adapter")
        return visual

    def apply(self, module: nn.Module) -> nn.Module:
        visual = self._visual(module)
        module.requires_grad_(False)
        if self.unfreeze_last is None:
            visual.requires_grad_(True)
        elif self.unfreeze_last > 0:
            prefixes = _trainable_prefixes(visual, self.unfreeze_last)
            for name, param in visual.named_parameters():
                if any(name == p or name.startswith(p + ".") for p in prefixes):
                    param.requires_grad_(True)
        return module

    def param_groups(self, module: nn.Module, lr: float) -> list[dict]:
        params = [p for p in self._visual(module).parameters() if p.requires_grad]
        if not params:
            return []
        lr_override = {"lr": self.lr} if self.lr is not None else {}
        return [{"name": "backbone.visual", "params": params, **lr_override}]
