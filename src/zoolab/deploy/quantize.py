"""Static int8 quantisation of an ONNX graph with ONNX Runtime, calibrated on real inputs.

QDQ format, int8 weights per output channel, uint8 activations with min/max ranges collected on the
calibration batches (training images, so the test split never shapes the model). The graph is first
run through ONNX Runtime's pre-processing (shape inference and fusions), as its quantisation guide
recommends (without its symbolic shape inference where that fails on the graph).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from zoolab.deploy.onnx_export import keep_callers_flush_mode
from zoolab.errors import ZoolabError

__all__ = ["quantize_int8"]

log = logging.getLogger(__name__)


class _Batches:
    """ONNX Runtime's calibration-reader protocol over a list of input arrays."""

    def __init__(self, name: str, batches: list[np.ndarray]) -> None:
        self._items = iter([{name: b} for b in batches])

    def get_next(self):
        return next(self._items, None)

    def rewind(self):  # some calibrators read twice
        pass


def quantize_int8(model: bytes, calibration: Iterable[torch.Tensor]) -> bytes:
    """The int8 (QDQ, per-channel) copy of the fp32 ONNX ``model``, calibrated on ``calibration`` batches."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = [x.detach().cpu().float().numpy() for x in calibration]
    if not batches:
        raise ZoolabError("no calibration images for int8 quantisation", where="latency.calibration_images",
                          fix="set task.module.latency.calibration_images to a positive number")
    CalibrationDataReader.register(_Batches)
    with tempfile.TemporaryDirectory(prefix="zoolab_quant_") as tmp:
        fp32, prepared, int8 = (Path(tmp) / name for name in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
        fp32.write_bytes(model)
        try:
            # when its symbolic shape inference is incomplete, ONNX Runtime saves a debug copy of the graph
            # (sym_shape_infer_temp.onnx and its weights) into the working directory: keep it in tmp
            with contextlib.chdir(tmp):
                quant_pre_process(str(fp32), str(prepared))
        except Exception as exc:  # its symbolic shape inference fails on some graphs (ConvNeXt V2's GRN)
            log.info("int8 pre-processing with symbolic shapes failed (%s: %s); retrying without",
                     type(exc).__name__, exc)
            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        with keep_callers_flush_mode():  # calibration runs its own ONNX Runtime session
            quantize_static(str(prepared), str(int8), _Batches("input", batches), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return int8.read_bytes()
