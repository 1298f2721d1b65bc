"""CPU latency variants of one classifier, each compared with eager fp32 on the same inputs.

Variants: ``eager`` (fp32, the reference), ``channels_last``, ``compile`` (torch.compile, Inductor),
``ort_fp32`` (the exported ONNX graph in ONNX Runtime), ``ort_int8`` (that graph statically quantised to
int8 on training images) and ``bf16`` (CPU autocast). Each gets p50/p90 batch-1 latency at the deployment
size and a fixed thread count, and, on the validation images, accuracy, macro F1 and positive-class
recall as changes against eager plus the share of predictions equal to eager's. The variants are timed
in rotation (one call of each per round), so load from other processes skews none of the ratios. The
best variant is the fastest whose accuracy is within ``max_accuracy_drop`` of eager and that agrees on at least
``min_agreement`` of the images; eager always qualifies. A variant that cannot run here (for example
torch.compile without a C++ compiler) records its error and the others go on.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional.classification import multiclass_f1_score

from zoolab.deploy.onnx_export import OnnxExport, export_onnx, ort_session
from zoolab.deploy.quantize import quantize_int8
from zoolab.errors import ZoolabError
from zoolab.metrics.latency import time_interleaved

__all__ = ["VARIANTS", "DeploymentComparison", "compare_variants", "best_variant", "check_variants"]

log = logging.getLogger(__name__)
VARIANTS = ("eager", "channels_last", "compile", "ort_fp32", "ort_int8", "bf16")
Runner = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class DeploymentComparison:
    """Per-variant rows (latency, quality vs eager, or ``error``), the exported graphs and the best variant."""

    rows: dict[str, dict] = field(default_factory=dict)
    onnx: OnnxExport | None = None
    int8: bytes | None = None
    best: str = "eager"

    def metrics(self) -> dict:
        """Flat ``deploy/<variant>/<key>`` metrics plus ``deploy/best_variant`` and its speed-up."""
        flat = {f"deploy/{name}/{key}": value for name, row in self.rows.items() for key, value in row.items()}
        best = self.rows[self.best]
        flat.update({"deploy/best_variant": self.best, "deploy/best_latency_ms_p50": best["latency_ms_p50"],
                     "deploy/best_speedup": best["speedup"]})
        return flat


def check_variants(names: Sequence[str]) -> list[str]:
    """The variant names in run order (eager first, duplicates dropped); unknown names are an error."""
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ZoolabError(f"unknown latency variant(s) {unknown}", where="task.module.latency.variants",
                          fix=f"choose from {list(VARIANTS)}")
    return ["eager", *[n for n in dict.fromkeys(names) if n != "eager"]]


def _torch_runner(model: nn.Module, channels_last: bool = False, compile: bool = False,
                  bf16: bool = False) -> Runner:
    runner = copy.deepcopy(model).cpu().eval()
    if channels_last:
        runner = runner.to(memory_format=torch.channels_last)
    if compile:
        runner = torch.compile(runner)

    def run(x: torch.Tensor) -> torch.Tensor:
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return runner(x).float()

    return run


def _ort_runner(model: bytes, threads: int | None) -> Runner:
    session = ort_session(model, threads)
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: x.detach().cpu().float().numpy()})[0])

    return run


def _quality(logits: torch.Tensor, labels: torch.Tensor, positive: int | None, num_classes: int) -> dict:
    predictions = logits.argmax(1)
    quality = {"accuracy": float((predictions == labels).float().mean()),
               "f1": float(multiclass_f1_score(predictions, labels, num_classes, average="macro"))}
    if positive is not None and bool((labels == positive).any()):
        quality["pit_recall"] = float((predictions[labels == positive] == positive).float().mean())
    return quality


def best_variant(rows: dict[str, dict], max_accuracy_drop: float, min_agreement: float) -> str:
    """Fastest variant whose accuracy drop and agreement pass the bars (eager when none does)."""
    def passes(row: dict) -> bool:
        return ("error" not in row and row.get("accuracy_delta", 0.0) >= -max_accuracy_drop
                and row.get("agreement", 1.0) >= min_agreement)

    candidates = {name: row for name, row in rows.items() if passes(row)}
    return min(candidates, key=lambda name: candidates[name]["latency_ms_p50"]) if candidates else "eager"


def _to_size(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x.float(), size=tuple(size), mode="bilinear", align_corners=False)


def _resize(batches: list[tuple[torch.Tensor, torch.Tensor]], size: Sequence[int]):
    return [(_to_size(x, size), y) for x, y in batches]


def compare_variants(model: nn.Module, example: torch.Tensor, eval_batches: list[tuple[torch.Tensor, torch.Tensor]],
                     calibration: list[torch.Tensor], variants: Sequence[str], num_classes: int,
                     positive: int | None = None, threads: int | None = None, warmup: int = 10, runs: int = 50,
                     max_accuracy_drop: float = 0.005, min_agreement: float = 0.99) -> DeploymentComparison:
    """Time every variant at batch 1 on ``example`` and score it on ``eval_batches`` against eager.

    ``model`` maps a float image batch to logits; ``calibration`` batches quantise ``ort_int8``. When the
    ONNX graph keeps a fixed spatial size, the calibration images are resized to it and every variant
    (eager included) is scored on the evaluation images resized to it, so the comparison stays like for
    like.
    """
    names = check_variants(variants)
    model = model.cpu().eval()
    comparison = DeploymentComparison()
    runners: dict[str, Runner] = {}
    for name in names:
        try:
            if name in ("ort_fp32", "ort_int8") and comparison.onnx is None:
                comparison.onnx = export_onnx(model, example, threads=threads)
            if name == "ort_fp32":
                runners[name] = _ort_runner(comparison.onnx.model, threads)
            elif name == "ort_int8":
                if not comparison.onnx.dynamic_spatial:   # a fixed-size graph calibrates at its own size
                    calibration = [_to_size(x, example.shape[-2:]) for x in calibration]
                comparison.int8 = quantize_int8(comparison.onnx.model, calibration)
                runners[name] = _ort_runner(comparison.int8, threads)
            else:
                runners[name] = _torch_runner(model, channels_last=name == "channels_last",
                                              compile=name == "compile", bf16=name == "bf16")
        except Exception as exc:
            if name == "eager":
                raise
            log.warning("latency variant %s is unavailable: %s: %s", name, type(exc).__name__, exc)
            comparison.rows[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    if comparison.onnx is not None and not comparison.onnx.dynamic_spatial:
        eval_batches = _resize(eval_batches, example.shape[-2:])
    labels = torch.cat([y for _, y in eval_batches]) if eval_batches else torch.empty(0, dtype=torch.long)

    timed = time_interleaved(runners, example, threads=threads, warmup=warmup, runs=runs)
    reference_predictions = None
    for name, runner in runners.items():
        row = dict(timed[name])
        try:
            if eval_batches:
                logits = torch.cat([runner(x) for x, _ in eval_batches])
                row.update(_quality(logits, labels, positive, num_classes))
                predictions = logits.argmax(1)
                if reference_predictions is None:
                    reference_predictions = predictions
                row["agreement"] = float((predictions == reference_predictions).float().mean())
        except Exception as exc:
            if name == "eager":
                raise
            log.warning("latency variant %s failed: %s: %s", name, type(exc).__name__, exc)
            comparison.rows[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
            continue
        comparison.rows[name] = row
    eager = comparison.rows["eager"]
    for row in comparison.rows.values():
        if "error" in row:
            continue
        row["speedup"] = eager["latency_ms_p50"] / row["latency_ms_p50"]
        for key in ("accuracy", "f1", "pit_recall"):
            if key in row and key in eager:
                row[f"{key}_delta"] = row[key] - eager[key]
    comparison.rows = {name: comparison.rows[name] for name in names if name in comparison.rows}
    comparison.best = best_variant(comparison.rows, max_accuracy_drop, min_agreement)
    return comparison
