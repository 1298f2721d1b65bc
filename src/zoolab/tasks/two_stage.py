"""Model operations of the cherry report's two-stage method (the procedure: ``zoolab.families.two_stage``)."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

__all__ = ["misclassified", "grow_head"]


def misclassified(model: torch.nn.Module, dataset, batch_size: int = 64) -> list[bool]:
    """Which samples of ``dataset`` (eval transforms) the model gets wrong."""
    model.eval()
    wrong: list[bool] = []
    with torch.inference_mode():
        for images, targets in DataLoader(dataset, batch_size=batch_size):
            wrong += (model(images).argmax(dim=1) != targets).tolist()
    return wrong


def grow_head(linear: torch.nn.Linear, rows: list[int]) -> torch.nn.Linear:
    """A wider linear layer whose output ``rows[i]`` copies row ``i`` of ``linear``; new rows start at 0."""
    grown = torch.nn.Linear(linear.in_features, max(rows) + 1 if rows else linear.out_features)
    with torch.no_grad():
        grown.weight.zero_()
        grown.bias.zero_()
        for old, new in enumerate(rows):
            grown.weight[new] = linear.weight[old]
            grown.bias[new] = linear.bias[old]
    return grown
