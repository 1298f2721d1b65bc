"""``task=export``: an existing run's model as an ONNX graph, parity-checked, in a new run folder.

``python -m zoolab task=export ckpt=<run>/checkpoints/best.ckpt format=onnx`` rebuilds the model from the
run's own ``resolved_config.yaml`` (found beside or above the checkpoint), loads the checkpoint and writes
``checkpoints/model.onnx`` with the opset, the onnx / ONNX Runtime / torch versions and the largest
|ONNX - PyTorch| output difference in ``run.json`` (``onnx``). ``task.int8=true`` also writes
``checkpoints/model.int8.onnx``, statically quantised on ``task.calibration_images`` training images
(image classifiers). Image classifiers, embedding heads and re-ID encoders export; a task without an
``inference_model`` (detection) is refused with an error.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from zoolab.checkpoints import skip_pretrained_for_full_checkpoint
from zoolab.deploy.onnx_export import export_onnx
from zoolab.deploy.quantize import quantize_int8
from zoolab.errors import ZoolabError
from zoolab.families.base import Family
from zoolab.families.image_cls import calibration_batches

__all__ = ["ExportFamily", "source_config"]

log = logging.getLogger(__name__)
FORMATS = ("onnx",)


def source_config(ckpt: str | Path) -> tuple[DictConfig, Path]:
    """The resolved config of the run that wrote ``ckpt`` (searched up to three folders above it)."""
    path = Path(str(ckpt)).expanduser()
    for folder in list(path.parents)[:3]:
        candidate = folder / "resolved_config.yaml"
        if candidate.is_file():
            return OmegaConf.load(candidate), folder
    raise ZoolabError(f"no resolved_config.yaml beside or above {path}", where="ckpt",
                      fix="export a checkpoint inside a zoolab run folder (<run>/checkpoints/best.ckpt), "
                          "whose resolved_config.yaml says how to build the model")


class ExportFamily(Family):
    needs_checkpoint = True
    exports_weights = False

    def __init__(self, cfg: DictConfig) -> None:
        super().__init__(cfg)
        if str(cfg.get("format")) not in FORMATS:
            raise ZoolabError(f"unknown export format '{cfg.get('format')}'", where="format",
                              fix=f"use one of {list(FORMATS)}")
        self.source = None
        if cfg.get("ckpt"):
            self.source, self.source_dir = source_config(cfg.ckpt)
            with open_dict(self.source):
                self.source.ckpt = str(cfg.ckpt)
                self.source.smoke = None  # no training happens; smoke limits do not apply
            skip_pretrained_for_full_checkpoint(self.source)
            from zoolab.pipeline import build_family

            self.inner = build_family(self.source)

    def build_datamodule(self):
        return self.inner.build_datamodule()

    def build_task(self, datamodule):
        task = self.inner.build_task(datamodule)
        if not hasattr(task, "inference_model"):
            raise ZoolabError(f"task '{self.source.task.name}' has no ONNX export path", where="task=export",
                              fix="export image classifiers, embedding heads or re-ID encoders")
        return task

    def parameter_counts(self, task) -> dict | None:
        return self.inner.parameter_counts(task)

    def evaluate(self, task, trainer, datamodule, out) -> dict[str, dict]:
        model, example = task.inference_model(), task.inference_example()
        exported = export_onnx(model, example)
        out.write_bytes("checkpoints/model.onnx", exported.model)
        record = {"file": "checkpoints/model.onnx", **exported.record()}
        if self.cfg.task.get("int8"):
            if "train" not in getattr(datamodule, "datasets", {}):
                raise ZoolabError("int8 export needs the run's training images for calibration",
                                  where="task.int8", fix="export fp32 only (task.int8=false)")
            batches = calibration_batches(datamodule.datasets["train"], int(self.cfg.task.calibration_images),
                                          int(self.cfg.seed))
            out.write_bytes("checkpoints/model.int8.onnx", quantize_int8(exported.model, batches))
            record["int8_file"] = "checkpoints/model.int8.onnx"
        out.record.update(onnx=record, exported_from=str(self.cfg.ckpt), source_exp=str(self.source.get("exp")))
        print(f"zoolab: exported {out.path('checkpoints/model.onnx')} (opset {exported.opset}, "
              f"max |onnx - torch| {exported.parity_max_abs:.2e})")
        return {}

    def deployment_metrics(self, task, datamodule, out) -> dict:
        return {}
