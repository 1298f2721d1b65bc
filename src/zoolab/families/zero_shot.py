"""Frozen-CLIP re-ID baselines (``clip_zeroshot_*``): global image embeddings ranked by cosine, no training.

Writes ``<split>_metrics.json`` for every evaluated split like the trained experiments (a smoke run writes
``smoke_metrics.json``), with the image encoder's batch-1 CPU latency in the final split's file. The
features of a split (in dataset order) are scored by the split's re-ID evaluator.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from zoolab.evaluators.reid import reid_evaluator
from zoolab.families.base import Family
from zoolab.params import count_parameters
from zoolab.tasks.reid import reid_latency

__all__ = ["ZeroShotFamily"]


class GlobalEmbedding(nn.Module):
    """CLIP's global image embedding (the first output of ``encode_image``)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone.encode_image(images.float())[0]


@torch.inference_mode()
def embed_split(model: nn.Module, loader) -> np.ndarray:
    """Features of every image of ``loader``'s dataset, in dataset order."""
    features: dict[int, torch.Tensor] = {}
    for batch in loader:
        for index, feature in zip(batch[3].tolist(), model(batch[0]).float()):
            features[int(index)] = feature
    return torch.stack([features[i] for i in range(len(loader.dataset))]).numpy()


class ZeroShotFamily(Family):
    accepts_checkpoint = False
    exports_weights = False

    def build_task(self, datamodule):
        return GlobalEmbedding(instantiate(self.cfg.backbone).requires_grad_(False).eval()).eval()

    def parameter_counts(self, task):
        return count_parameters({"backbone": task.backbone})

    def fit_phases(self, task, datamodule, out):
        return iter(())

    def evaluate(self, task, trainer, datamodule, out):
        results = {}
        for split in datamodule.eval_splits:
            evaluator = reid_evaluator(datamodule.dataset(split).describe())
            evaluator.process(features=embed_split(task, datamodule.loader(split)))
            results[split] = evaluator.evaluate().metrics
        return results

    def deployment_metrics(self, task, datamodule, out) -> dict:
        node = (self.cfg.task.module or {}).get("latency")
        settings = OmegaConf.to_container(node, resolve=True) if node else {}
        return reid_latency(copy.deepcopy(task), task.backbone, settings)
