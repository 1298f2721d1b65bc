"""MLP classification head for cached frozen-encoder embeddings, with hooks for manifold mixup.

Blocks are Linear -> (LayerNorm) -> activation -> (Dropout), one per hidden size, followed by a
``classifier`` (``nn.Linear`` unless a factory is injected, e.g. ``ArcFaceClassifier``). ``hidden_states``
and ``forward_from`` expose the block boundaries so manifold mixup (Verma et al., ICML 2019) can mix at
layer k, where k = 0 is the input embedding and k = i the output of hidden block i.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Callable, Sequence

from torch import Tensor, nn

__all__ = ["MLPHead"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU}
_NORMS = ("none", "layernorm")


def _block(in_features: int, out_features: int, activation: str, norm: str, dropout: float) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict(fc=nn.Linear(in_features, out_features))
    if norm == "layernorm":
        layers["norm"] = nn.LayerNorm(out_features)
    layers["act"] = _ACTIVATIONS[activation]()
    if dropout > 0:
        layers["drop"] = nn.Dropout(dropout)
    return nn.Sequential(layers)


class MLPHead(nn.Module):
    """Embedding [B, in_features] -> logits [B, num_classes]; ``hidden=[]`` is a linear classifier."""

    def __init__(self, in_features: int, num_classes: int, hidden: Sequence[int] = (1024, 512),
                 activation: str = "relu", norm: str = "none", dropout: float = 0.0,
                 classifier: Callable[[int, int], nn.Module] | None = None) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(_ACTIVATIONS)}, got {activation!r}")
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_features = in_features
        self.num_classes = num_classes
        widths = [in_features, *hidden]
        self.blocks = nn.ModuleList(
            _block(w_in, w_out, activation, norm, dropout) for w_in, w_out in zip(widths, widths[1:]))
        self.num_features = widths[-1]
        self.classifier = (classifier or nn.Linear)(self.num_features, num_classes)
        self._classifier_takes_labels = "labels" in inspect.signature(self.classifier.forward).parameters

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Logits; ``labels`` reach the classifier only if its forward accepts them (margin heads)."""
        return self._classify(self.features(x), labels)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features: the output of the last hidden block (``x`` itself if there is none)."""
        for block in self.blocks:
            x = block(x)
        return x

    def hidden_states(self, x: Tensor) -> list[Tensor]:
        """[x, block_1(x), block_2(block_1(x)), ...]: entry k is the input of ``forward_from(., k)``."""
        states = [x]
        for block in self.blocks:
            states.append(block(states[-1]))
        return states

    def forward_from(self, h: Tensor, layer: int, labels: Tensor | None = None) -> Tensor:
        """Logits from hidden state ``h`` taken at ``layer`` (0 = input, i = after hidden block i)."""
        if not 0 <= layer <= len(self.blocks):
            raise ValueError(f"layer must be in [0, {len(self.blocks)}], got {layer}")
        for block in self.blocks[layer:]:
            h = block(h)
        return self._classify(h, labels)

    def _classify(self, h: Tensor, labels: Tensor | None) -> Tensor:
        if self._classifier_takes_labels:
            return self.classifier(h, labels=labels)
        return self.classifier(h)
