"""A timm model used as a pooled-feature backbone, with local-weight loading and input normalisation.

The backbone owns its input normalisation so that training, evaluation and export all see the same
preprocessing: inputs arrive as float tensors in 0-255; with ``normalize=True`` they are mapped with
the weights' own mean/std (``timm.data.resolve_model_data_config``), with ``normalize=False`` they are
passed on unchanged (the cherry report's production setting).
"""

from __future__ import annotations

import contextlib
import difflib
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoolab.backbones.weights_file import timm_pretrained_checked
from zoolab.errors import ZoolabError

__all__ = ["TimmBackbone", "pretrained_weights", "resolve_local_weights"]

log = logging.getLogger(__name__)


def _check_model_name(name: str) -> None:
    import timm

    arch = name.split(".")[0]
    if timm.is_model(arch):
        return
    close = difflib.get_close_matches(arch, timm.list_models(), n=5, cutoff=0.6)
    hint = f"close matches: {', '.join(close)}" if close else "see timm.list_models()"
    raise ZoolabError(
        f"unknown timm model '{name}'",
        where="backbone.name",
        fix=f"use a timm architecture name ({hint})",
    )


def resolve_local_weights(name: str, weights: str | None) -> str:
    """Return a local weight file for ``name``: the given file, else the Hugging Face cache, else stop."""
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ZoolabError(
                f"weights file '{weights}' does not exist",
                where="backbone.weights",
                fix="point backbone.weights at a local .safetensors/.pth file, or set "
                "backbone.pretrained=false (random init), or add +smoke=cpu",
            )
        return str(path)
    import timm
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(name) if "." in name else None
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg else None
    if hub_id:
        for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
            cached = try_to_load_from_cache(hub_id, filename)
            if isinstance(cached, str):
                return cached
    raise ZoolabError(
        f"pretrained weights for '{name}' are not on this machine (looked in the Hugging Face cache"
        f"{' for ' + hub_id if hub_id else ''}); zoolab never downloads at run time",
        where="backbone.pretrained=true with backbone.weights unset",
        fix="download the weights once and pass backbone.weights=/path/to/file.safetensors, or set "
        "backbone.pretrained=false, or add +smoke=cpu for the embedded data and random init",
    )


def pretrained_weights(name: str, pretrained: bool, weights: str | None, kwargs: dict):
    """Context for ``timm.create_model(..., **kwargs)``: with ``pretrained``, the local weights file is set
    in ``kwargs`` and checked as timm loads it (a file that is no checkpoint, or one of another architecture,
    stops with a short error naming it; see ``zoolab.backbones.weights_file``)."""
    if not pretrained:
        return contextlib.nullcontext()
    path = resolve_local_weights(name, weights)
    kwargs["pretrained_cfg_overlay"] = {"file": path}
    where = "backbone.weights" if weights else "backbone.weights unset, the Hugging Face cache"
    return timm_pretrained_checked(path, name, where=where)


class TimmBackbone(nn.Module):
    """Pooled features from a timm model (classifier removed).

    Args:
        name: timm model name, optionally with a pretrained tag (``convnextv2_tiny.fcmae``).
        pretrained: load pretrained weights from ``weights`` or the local hub cache (never the network).
        weights: local ``.safetensors``/``.pth`` file, converted by timm's own checkpoint filter.
        input_size: square input side in pixels; also used by the data pipeline.
        normalize: map 0-255 inputs with the weights' mean/std (True) or feed them raw (False).
        global_pool: timm pooling override (``avg``, ``token``, ...); None keeps the model default.
        model_kwargs: extra ``timm.create_model`` kwargs (e.g. ``dynamic_img_size`` for ViTs).
    """

    def __init__(
        self,
        name: str,
        pretrained: bool = False,
        weights: str | None = None,
        input_size: int = 224,
        normalize: bool = True,
        global_pool: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        import timm

        _check_model_name(name)
        kwargs = {k: v for k, v in dict(model_kwargs or {}, global_pool=global_pool).items() if v is not None}
        self.name = name
        with pretrained_weights(name, pretrained, weights, kwargs):
            self.model = timm.create_model(name, pretrained=pretrained, num_classes=0, **kwargs)
        # Pooled width: MobileNetV3's pre-logits conv makes it head_hidden_size (1280), not num_features (960).
        self.num_features: int = getattr(self.model, "head_hidden_size", None) or self.model.num_features
        self.input_size = input_size
        self.normalize = normalize
        data_cfg = timm.data.resolve_model_data_config(self.model)
        self.register_buffer("mean", torch.tensor(data_cfg["mean"]).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(data_cfg["std"]).view(1, 3, 1, 1) * 255.0)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        return (x - self.mean) / self.std if self.normalize else x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.preprocess(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)
