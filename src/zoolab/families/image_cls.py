"""Image classifiers (the cherry-pit family): the default hooks plus deployment variants.

After evaluation the run measures eager fp32 batch-1 latency (``latency_ms_p50``...) and, when
``task.module.latency.variants`` names more than ``eager``, every other variant on the same inputs
(``zoolab.deploy.variants``): the ONNX graph goes to ``checkpoints/model.onnx`` (parity-checked), its int8
copy to ``checkpoints/model.int8.onnx``, the per-variant table to ``deployment.json`` and its flat
``deploy/<variant>/<key>`` metrics into the final split's metrics, beside ``deploy/best_variant``.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Subset

from zoolab.deploy.variants import check_variants, compare_variants
from zoolab.families.base import Family

__all__ = ["ImageClassificationFamily", "write_deployment"]


def calibration_batches(dataset, count: int, seed: int, batch_size: int = 8) -> list[torch.Tensor]:
    """``count`` training images drawn with ``seed`` (the same draw for every model), as float batches."""
    generator = torch.Generator().manual_seed(seed)
    indices = torch.randperm(len(dataset), generator=generator)[:count].tolist()
    return [x.float() for x, _ in DataLoader(Subset(dataset, indices), batch_size=batch_size)]


def write_deployment(comparison, out) -> None:
    """The ONNX graphs, ``deployment.json`` and the ``onnx`` record of ``run.json``."""
    record = {}
    if comparison.onnx is not None:
        out.write_bytes("checkpoints/model.onnx", comparison.onnx.model)
        record = {"file": "checkpoints/model.onnx", **comparison.onnx.record()}
    if comparison.int8 is not None:
        out.write_bytes("checkpoints/model.int8.onnx", comparison.int8)
        record["int8_file"] = "checkpoints/model.int8.onnx"
    out.write_json("deployment.json", {"best_variant": comparison.best, "variants": comparison.rows})
    if record:
        out.record.update(onnx=record)


class ImageClassificationFamily(Family):
    def build_task(self, datamodule):
        task = super().build_task(datamodule)
        task.run_name = str(self.cfg.get("exp") or "")
        check_variants(task.latency.get("variants") or ["eager"])  # a typo stops the run before training
        return task

    def deployment_metrics(self, task, datamodule, out) -> dict:
        metrics = super().deployment_metrics(task, datamodule, out)
        settings = task.latency
        variants = list(settings.get("variants") or ["eager"])
        if not settings.get("enabled", True) or variants == ["eager"]:
            return metrics
        positive = task.class_names.index(task.positive_class) if task.positive_class else None
        calibration = calibration_batches(datamodule.datasets["train"], int(settings.get("calibration_images", 32)),
                                          int(self.cfg.seed))
        eval_batches = [(x.float(), y) for x, y in datamodule.loader("val")]
        comparison = compare_variants(
            task.inference_model(), task.inference_example(), eval_batches, calibration, variants,
            num_classes=len(task.class_names), positive=positive, threads=settings.get("threads"),
            warmup=int(settings.get("warmup", 10)), runs=int(settings.get("runs", 50)),
            max_accuracy_drop=float(settings.get("max_accuracy_drop", 0.005)),
            min_agreement=float(settings.get("min_agreement", 0.99)))
        write_deployment(comparison, out)
        return {**metrics, **comparison.metrics()}
