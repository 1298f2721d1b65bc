"""ONNX export of an inference module (``torch.onnx`` with the dynamo exporter) and its parity check.

The graph takes ``input`` and returns ``output``; its batch dimension is dynamic and, where the model
allows it, so are height and width (a model whose shapes torch.export cannot keep symbolic, such as
ConvNeXt V2, is exported at the example's spatial size). The opset is the installed ``onnx``'s newest
that the exporter converts to and ONNX Runtime has kernels for.
Parity is the largest absolute difference between ONNX Runtime's and PyTorch's outputs on the given
inputs; :func:`export_onnx` refuses a graph whose difference exceeds ``tolerance`` times the larger of 1
and the largest |output| (fp32 rounding grows with the outputs' scale: a model fed raw 0-255 pixels can
have logits far above 1).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from zoolab.errors import ZoolabError
from zoolab.metrics.latency import flush_denormal_enabled

__all__ = ["OnnxExport", "export_onnx", "ort_session", "max_abs_difference", "runtime_versions", "onnx_opset"]

log = logging.getLogger(__name__)
PARITY_TOLERANCE = 1e-4


@dataclass
class OnnxExport:
    """An exported graph (serialised ``ModelProto``) and what the run records about it."""

    model: bytes
    opset: int
    dynamic_spatial: bool
    input_shape: list[int]
    parity_max_abs: float
    exporter: str = "torch.export"
    output_scale: float = 1.0

    def record(self) -> dict:
        return {"opset": self.opset, "exporter": self.exporter, "dynamic_spatial": self.dynamic_spatial,
                "example_input": self.input_shape, "parity_max_abs": self.parity_max_abs,
                "output_max_abs": self.output_scale, **runtime_versions()}


def runtime_versions() -> dict:
    import onnx
    import onnxruntime

    return {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "torch": torch.__version__}


@functools.lru_cache(maxsize=1)
def onnx_opset() -> int:
    """The newest default-domain opset of the installed onnx that the exporter converts to and ONNX
    Runtime runs in full.

    ONNX Runtime can load a graph of a newer opset than it has kernels for (1.32 loads opset 28 but has
    no int8 ``DequantizeLinear``-28), so each opset from the newest down is tried on a one-node
    quantise/dequantise graph (int8 activations, int32 biases), the ops int8 models are made of."""
    import onnx
    from onnx import TensorProto, helper

    newest = int(onnx.defs.onnx_opset_version())
    try:  # the exporter writes an older opset and converts; past this version it converts incompletely
        from onnxscript.version_converter._version_converter import SUPPORTED_MAX_ONNX_OPSET

        newest = min(newest, int(SUPPORTED_MAX_ONNX_OPSET))
    except ImportError:
        pass
    for opset in range(newest, 12, -1):
        graph = helper.make_graph(
            [helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["dq"]),
             helper.make_node("DequantizeLinear", ["bias", "scale"], ["b"]),  # int32 biases
             helper.make_node("Add", ["dq", "b"], ["y"])], "probe",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
            [helper.make_tensor("scale", TensorProto.FLOAT, [], [0.5]),
             helper.make_tensor("zero", TensorProto.INT8, [], [0]),
             helper.make_tensor("bias", TensorProto.INT32, [2], [1, 2])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        try:
            ort_session(model.SerializeToString()).run(None, {"x": np.ones(2, dtype=np.float32)})
            return opset
        except Exception:
            continue
    return newest


@contextlib.contextmanager
def keep_callers_flush_mode():
    """Put back the calling thread's flush-to-zero mode after ONNX Runtime sets up its environment."""
    caller_flushes = flush_denormal_enabled()
    try:
        yield
    finally:
        torch.set_flush_denormal(caller_flushes)


def ort_session(model: bytes, threads: int | None = None):
    """An ONNX Runtime CPU session: full graph optimisation, ``threads`` intra-op threads that do not spin
    while idle, one inter-op thread, and denormals treated as zero (subnormal activations are as slow in
    ORT as in PyTorch).

    Creating the first session also switches flush-to-zero on for the calling thread, which would
    silently change PyTorch's arithmetic there; the caller's mode is put back afterwards."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.inter_op_num_threads = 1
    if threads:
        options.intra_op_num_threads = int(threads)
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    # idle intra-op threads would otherwise spin after each call and take the cores from whatever runs next:
    # timed in rotation with eager PyTorch, spinning doubled eager's batch-1 time (ResNet-18: 37 -> 76 ms)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    with keep_callers_flush_mode():
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _run_session(session, x: torch.Tensor) -> np.ndarray:
    return session.run(None, {session.get_inputs()[0].name: x.detach().cpu().numpy()})[0]


def max_abs_difference(model: nn.Module, session, inputs: list[torch.Tensor]) -> tuple[float, float]:
    """Largest |ONNX Runtime - PyTorch| over the outputs of ``inputs``, and the largest |PyTorch output|."""
    worst, scale = 0.0, 0.0
    with torch.inference_mode():
        for x in inputs:
            expected = model(x).float().cpu().numpy()
            worst = max(worst, float(np.abs(_run_session(session, x) - expected).max()))
            scale = max(scale, float(np.abs(expected).max()))
    return worst, scale


def _graph_opset(graph: bytes) -> int:
    import onnx

    model = onnx.load_model_from_string(graph)
    return next(int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _export(model: nn.Module, example: torch.Tensor, opset: int, spatial: bool) -> bytes:
    from torch.export import Dim

    dims = {0: Dim("batch", min=1, max=4096)}
    if spatial:
        dims.update({2: Dim("height", min=16, max=4096), 3: Dim("width", min=16, max=4096)})
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its progress
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset, verbose=False,
                                    input_names=["input"], output_names=["output"], dynamic_shapes=(dims,))
    return program.model_proto.SerializeToString()


def _export_traced(model: nn.Module, example: torch.Tensor, opset: int) -> bytes:
    """The TorchScript-tracing exporter, for models torch.export cannot capture (data-dependent shapes,
    such as a text encoder's end-of-text position); its newest opset may be older than ``opset``."""
    buffer = io.BytesIO()
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused attention kernel has no ONNX translation
    try:
        with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            torch.onnx.export(model, (example,), buffer, dynamo=False, opset_version=min(opset, 20),
                              input_names=["input"], output_names=["output"], dynamic_axes={"input": {0: "batch"}})
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return buffer.getvalue()


def _export_any(model: nn.Module, example: torch.Tensor, opset: int,
                try_spatial: bool = True) -> tuple[bytes, bool, str]:
    """Try dynamic batch + height + width (unless ``try_spatial`` is off), then dynamic batch, then the
    tracing exporter."""
    attempts = []
    if example.dim() == 4 and try_spatial:
        attempts.append(("torch.export, dynamic height/width", lambda: _export(model, example, opset, True), True))
    attempts += [("torch.export", lambda: _export(model, example, opset, False), False),
                 ("TorchScript tracing", lambda: _export_traced(model, example, opset), False)]
    errors = []
    for name, attempt, spatial in attempts:
        try:
            return attempt(), spatial, name
        except Exception as exc:
            errors.append(f"{name}: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:160]}")
            log.info("ONNX export (%s) failed: %s", name, errors[-1])
    raise ZoolabError(f"ONNX export of {type(model).__name__} failed ({'; '.join(errors)})", where="export_onnx",
                      fix="check that the model runs under torch.export.export or torch.jit.trace")


def _works_at_another_size(model: nn.Module, graph: bytes, example: torch.Tensor, tolerance: float) -> bool:
    """Whether a graph with symbolic height/width matches PyTorch 32 px off the example's size. The
    exporter can write symbolic sizes for a model whose shapes are fixed (a flatten into a linear layer);
    such a graph only fails once it meets another size."""
    h, w = example.shape[-2:]
    probe = F.interpolate(example.float(), size=(h + 32, w + 32), mode="bilinear", align_corners=False)
    try:
        parity, scale = max_abs_difference(model, ort_session(graph, threads=1), [probe])
    except Exception as exc:   # PyTorch or ONNX Runtime refusing the size is the answer, not an error
        log.info("ONNX export: graph or model fails at %s: %s", [h + 32, w + 32], str(exc).splitlines()[0][:160])
        return False
    return parity <= tolerance * max(1.0, scale)


def export_onnx(model: nn.Module, example: torch.Tensor, check_inputs: list[torch.Tensor] | None = None,
                tolerance: float = PARITY_TOLERANCE, threads: int | None = None) -> OnnxExport:
    """Export ``model`` (eval mode, CPU) at ``example``'s shape and check it on ``check_inputs`` (default:
    the example and a batch of two). Image models get dynamic height/width when torch.export allows."""
    model = model.cpu().eval()
    example = example.cpu()
    graph, spatial, exporter = _export_any(model, example, onnx_opset())
    if spatial and not _works_at_another_size(model, graph, example, tolerance):
        log.info("ONNX export: the size-dynamic graph fails at another image size; exporting at %s",
                 list(example.shape[-2:]))
        graph, spatial, exporter = _export_any(model, example, onnx_opset(), try_spatial=False)
    opset = _graph_opset(graph)
    session = ort_session(graph, threads)
    if check_inputs is None:
        check_inputs = [example, torch.cat([example, example.flip(-1)])]
    if not spatial:
        check_inputs = [x for x in check_inputs if x.shape[1:] == example.shape[1:]] or [example]
    parity, scale = max_abs_difference(model, session, check_inputs)
    if not parity <= tolerance * max(1.0, scale):
        raise ZoolabError(f"the ONNX graph differs from PyTorch by up to {parity:.3g} for outputs up to {scale:.3g} "
                          f"(tolerance {tolerance:g} x max(1, {scale:.3g}))",
                          where="export_onnx parity check",
                          fix="look for ops the exporter translates approximately; the graph was not written")
    log.info("ONNX export (%s): opset %d, max |onnx - torch| %.2e", exporter, opset, parity)
    return OnnxExport(graph, opset, spatial, list(example.shape), parity, exporter, scale)
