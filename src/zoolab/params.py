"""Parameter counts per component, read from named parameters (never from config)."""

from __future__ import annotations

from torch import nn

__all__ = ["count_parameters"]


def count_parameters(components: dict[str, nn.Module]) -> dict:
    """Total and trainable counts overall and per named component (shared tensors counted once)."""
    seen: set[int] = set()
    per_component = {}
    total = trainable = 0
    for name, module in components.items():
        c_total = c_trainable = 0
        for p in module.parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            c_total += p.numel()
            c_trainable += p.numel() if p.requires_grad else 0
        per_component[name] = {"total": c_total, "trainable": c_trainable}
        total += c_total
        trainable += c_trainable
    return {"total": total, "trainable": trainable, "per_component": per_component}
