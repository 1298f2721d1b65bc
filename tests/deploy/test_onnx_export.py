"""ONNX export: parity with PyTorch, dynamic batch/height/width, the opset and the refusal of a bad graph."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from zoolab.deploy.onnx_export import export_onnx, onnx_opset, ort_session
from zoolab.deploy.quantize import quantize_int8
from zoolab.deploy.variants import best_variant, check_variants, compare_variants
from zoolab.errors import ZoolabError


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3))
    with torch.no_grad():  # non-trivial BN statistics, so folding them is exercised
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="module")
def exported():
    model = small_cnn()
    return model, export_onnx(model, torch.rand(1, 3, 32, 32) * 255)


def test_graph_matches_pytorch_at_other_batch_and_image_sizes(exported):
    model, result = exported
    assert result.parity_max_abs <= 1e-4
    assert result.dynamic_spatial and result.exporter.startswith("torch.export")
    session = ort_session(result.model, threads=1)
    x = torch.rand(3, 3, 40, 56) * 255
    onnx_out = session.run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(onnx_out, model(x).detach().numpy(), atol=1e-4, rtol=0)


def test_sessions_do_not_spin_or_keep_denormals(exported):
    """Idle spinning threads would take the cores from PyTorch when variants are timed in rotation."""
    options = ort_session(exported[1].model, threads=2).get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.set_denormal_as_zero") == "1"
    assert options.intra_op_num_threads == 2


def test_record_names_opset_and_runtime_versions(exported):
    import onnx
    import onnxruntime

    record = exported[1].record()
    assert record["opset"] == onnx_opset() <= onnx.defs.onnx_opset_version()
    assert record["onnxruntime"] == onnxruntime.__version__ and record["onnx"] == onnx.__version__
    assert onnx.load_model_from_string(exported[1].model).opset_import[0].version == record["opset"]


def test_graph_above_the_tolerance_is_refused():
    with pytest.raises(ZoolabError, match="differs from PyTorch"):
        export_onnx(small_cnn(), torch.rand(1, 3, 16, 16), tolerance=-1.0)


def test_int8_graph_runs_and_stays_close(exported):
    model, result = exported
    calibration = [torch.rand(4, 3, 32, 32) * 255 for _ in range(4)]
    int8 = quantize_int8(result.model, calibration)
    import onnx

    graph = onnx.load_model_from_string(int8).graph
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert len(int8_weights) == 2  # both convolutions' weights stored as int8
    x = torch.rand(8, 3, 32, 32) * 255
    out = ort_session(int8, threads=1).run(None, {"input": x.numpy()})[0]
    reference = model(x).detach().numpy()
    assert np.abs(out - reference).max() <= 0.2 * np.abs(reference).max()  # 8-bit activations: ~10% here
    assert (out.argmax(1) == reference.argmax(1)).mean() >= 0.75


def test_fixed_size_graph_quantises_on_images_of_another_size():
    """A model torch.export cannot make size-dynamic (flatten into a linear layer) is exported at the
    example's size; training images of another size are resized to it for calibration and scoring."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16 * 16, 2)).eval()
    example = torch.rand(1, 3, 16, 16) * 255
    batches = [(torch.rand(4, 3, 8, 8) * 255, torch.tensor([0, 1, 0, 1])) for _ in range(2)]
    comparison = compare_variants(model, example, batches, [x for x, _ in batches], ["eager", "ort_int8"],
                                  num_classes=2, threads=1, warmup=1, runs=2)
    assert comparison.onnx is not None and not comparison.onnx.dynamic_spatial
    assert "error" not in comparison.rows["ort_int8"], comparison.rows["ort_int8"]
    assert comparison.rows["ort_int8"]["latency_ms_p50"] > 0 and 0 <= comparison.rows["ort_int8"]["agreement"] <= 1


def test_int8_leaves_the_working_directory_clean(exported, tmp_path, monkeypatch):
    """ONNX Runtime's symbolic shape inference saves a debug graph into the working directory when it is
    incomplete (ConvNeXt V2); quantisation falls back and leaves nothing behind."""
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    def incomplete(*args, **kwargs):   # what the library does when inference is incomplete
        Path("sym_shape_infer_temp.onnx").write_bytes(b"debug copy")
        raise Exception("Incomplete symbolic shape inference")

    monkeypatch.setattr(SymbolicShapeInference, "infer_shapes", staticmethod(incomplete))
    monkeypatch.chdir(tmp_path)
    int8 = quantize_int8(exported[1].model, [torch.rand(2, 3, 32, 32) * 255])
    assert int8 and list(tmp_path.iterdir()) == []


def test_int8_without_calibration_images_names_the_setting(exported):
    with pytest.raises(ZoolabError, match="calibration"):
        quantize_int8(exported[1].model, [])


def test_variant_names_are_checked_and_eager_comes_first():
    assert check_variants(["ort_int8", "eager", "ort_int8"]) == ["eager", "ort_int8"]
    with pytest.raises(ZoolabError, match="unknown latency variant"):
        check_variants(["tensorrt"])


def test_best_variant_is_the_fastest_that_keeps_accuracy_and_agreement():
    rows = {"eager": {"latency_ms_p50": 10.0, "accuracy_delta": 0.0, "agreement": 1.0},
            "ort_fp32": {"latency_ms_p50": 6.0, "accuracy_delta": 0.0, "agreement": 1.0},
            "ort_int8": {"latency_ms_p50": 3.0, "accuracy_delta": -0.02, "agreement": 0.97},
            "compile": {"error": "no compiler"}}
    assert best_variant(rows, max_accuracy_drop=0.005, min_agreement=0.99) == "ort_fp32"
    assert best_variant(rows, max_accuracy_drop=0.05, min_agreement=0.95) == "ort_int8"


def test_interleaved_timing_measures_each_runner():
    import time

    from zoolab.metrics.latency import time_interleaved

    calls = {"fast": 0, "slow": 0}

    def runner(name, seconds):
        def run(x):
            calls[name] += 1
            time.sleep(seconds)
        return run

    timed = time_interleaved({"fast": runner("fast", 0.001), "slow": runner("slow", 0.01)}, None, threads=1,
                             warmup=2, runs=6)
    assert calls == {"fast": 8, "slow": 8}
    assert timed["slow"]["latency_ms_p50"] > 5 * timed["fast"]["latency_ms_p50"] > 0
    assert timed["fast"]["latency_threads"] == 1


@pytest.mark.parametrize("caller_flushes", [False, True])
def test_runtime_sessions_leave_the_callers_flush_mode_alone(caller_flushes):
    # ONNX Runtime switches flush-to-zero on for the thread that first sets it up in a process, so
    # this runs in a fresh interpreter: PyTorch arithmetic on the caller's thread must not change.
    script = textwrap.dedent(f"""
        import torch
        from torch import nn
        from zoolab.deploy.onnx_export import export_onnx, ort_session
        from zoolab.deploy.quantize import quantize_int8
        torch.set_flush_denormal({caller_flushes})
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval()
        result = export_onnx(model, torch.rand(1, 3, 16, 16))
        ort_session(result.model, threads=1)
        quantize_int8(result.model, [torch.rand(2, 3, 16, 16)])
        print("flushes", torch.tensor([1e-40]).item() == 0.0)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"flushes {caller_flushes}" in done.stdout
