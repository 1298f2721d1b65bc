"""A timm model as a multi-level feature extractor for dense heads (detection), with local-weight loading.

``timm.create_model(..., features_only=True)`` wraps the network in a ``FeatureListNet`` whose top-level
children are flattened (``stem_0``, ``stages_0`` ... ``stages_3``), so adapter names look like
``stages_2.blocks.13.mlp.fc2``. Pretrained weights are loaded into the full model *before* that wrapping by
passing the local file as ``pretrained_cfg_overlay=dict(file=...)``; timm's ``checkpoint_path=`` would load
after wrapping and miss every renamed key. Unlike ``TimmBackbone`` this module does not normalise: detectors
take float images in [0, 1] and normalise inside their own resize transform, using ``mean``/``std`` here
(0-1 scale, read from the weights' pretrained config so preprocessing cannot drift from the weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from zoolab.backbones.timm_backbone import _check_model_name, pretrained_weights
from zoolab.errors import ZoolabError

__all__ = ["TimmFeatures"]


class TimmFeatures(nn.Module):
    """Feature maps of a timm model at the requested stages (``features_only=True``).

    Args:
        name: timm model name with an optional pretrained tag (``convnext_small.dinov3_lvd1689m``).
        pretrained: load pretrained weights from ``weights`` or the local hub cache (never the network).
        weights: local ``.safetensors``/``.pth``/``.bin`` file, converted by timm's checkpoint filter.
        out_indices: feature levels to return; ``[1, 2, 3]`` is C3-C5 (strides 8/16/32) of a ConvNeXt.
        model_kwargs: extra ``timm.create_model`` kwargs (e.g. ``drop_path_rate``); None values are dropped.

    Attributes:
        model: the timm ``FeatureListNet``.
        out_channels: channels per returned level ([192, 384, 768] for ConvNeXt-S C3-C5).
        reductions: stride per returned level ([8, 16, 32]).
        mean, std: per-channel input normalisation of the weights, 0-1 scale.
    """

    def __init__(
        self,
        name: str,
        pretrained: bool = False,
        weights: str | None = None,
        out_indices: Sequence[int] = (1, 2, 3),
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        import timm

        _check_model_name(name)
        kwargs = {k: v for k, v in dict(model_kwargs or {}).items() if v is not None}
        out_indices = tuple(int(i) for i in out_indices)
        try:
            with pretrained_weights(name, pretrained, weights, kwargs):
                self.model = timm.create_model(
                    name, pretrained=pretrained, features_only=True, out_indices=out_indices, **kwargs
                )
        except IndexError:
            raise ZoolabError(
                f"out_indices {list(out_indices)} are not feature levels of '{name}'",
                where="backbone.out_indices",
                fix="use level indices the model has, e.g. [1, 2, 3] for a four-stage ConvNeXt",
            ) from None
        self.name = name
        self.out_indices = list(out_indices)
        self.out_channels: list[int] = list(self.model.feature_info.channels())
        self.reductions: list[int] = list(self.model.feature_info.reduction())
        data_cfg = timm.data.resolve_model_data_config(self.model)
        self.mean: list[float] = [float(v) for v in data_cfg["mean"]]
        self.std: list[float] = [float(v) for v in data_cfg["std"]]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Normalised images ``[B, 3, H, W]`` -> one ``[B, C_i, H / s_i, W / s_i]`` map per output level."""
        return self.model(x)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward(x)
