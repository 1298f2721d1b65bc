"""Tests for zoolab.metrics.latency: subnormal counting and flushing, and the latency harness."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from zoolab.metrics.latency import count_denormal, cpu_model_name, flush_denormal_, measure_latency

LATENCY_KEYS = {
    "latency_ms_p50", "latency_ms_p90", "latency_ms_mean", "latency_threads", "latency_batch",
    "latency_input_size", "latency_runs", "cpu_model", "channels_last", "compiled",
    "denormal_weights", "flush_denormal",
}


@pytest.fixture(autouse=True)
def _subnormals_representable():
    """These tests build subnormal numbers, which flush-to-zero mode (left on by a caller) would erase."""
    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(False)


def _linear_with_subnormals() -> nn.Linear:
    layer = nn.Linear(4, 3)
    layer.register_buffer("running", torch.ones(5))
    with torch.no_grad():
        layer.weight.fill_(0.5)
        layer.weight[0, 0] = 1e-40
        layer.weight[1, 2] = -1e-40
        layer.weight[2, 3] = 2e-38  # tiny but normal (finfo.tiny = 1.18e-38)
        layer.weight[2, 1] = 0.0
        layer.running[3] = 1e-41
    return layer


def test_count_denormal_module_and_state_dict() -> None:
    layer = _linear_with_subnormals()
    assert count_denormal(layer) == 3
    assert count_denormal(layer.state_dict()) == 3
    assert count_denormal(nn.Linear(4, 3)) == 0


def test_count_denormal_half_precision_and_tied_keys() -> None:
    half = torch.tensor([1e-6, 1e-3, 0.0], dtype=torch.float16)  # fp16 tiny = 6.1e-5
    brain = torch.tensor([1e-40, 1.0], dtype=torch.bfloat16)  # bf16 shares fp32's exponent range
    assert count_denormal({"h": half, "b": brain, "steps": torch.tensor([1])}) == 2
    tied = torch.tensor([1e-40, 1.0])
    assert count_denormal({"embed.weight": tied, "head.weight": tied}) == 1


def test_flush_denormal_zeroes_only_subnormals() -> None:
    layer = _linear_with_subnormals()
    before = layer.weight.detach().clone()
    assert flush_denormal_(layer) == 3
    assert count_denormal(layer) == 0
    assert layer.weight[0, 0].item() == 0.0 and layer.weight[1, 2].item() == 0.0
    assert layer.running[3].item() == 0.0
    assert layer.weight[2, 3].item() == pytest.approx(2e-38, rel=1e-6)
    assert (layer.weight != before).sum().item() == 2
    assert flush_denormal_(layer) == 0


def test_counting_survives_flush_denormal_mode() -> None:
    # Under denormals-are-zero a float comparison sees 1e-40 as 0; counting must read the bits.
    # Run in a child process so the mode never leaks into other tests.
    script = textwrap.dedent("""
        import torch
        from zoolab.metrics.latency import count_denormal, enable_flush_denormal, flush_denormal_enabled
        assert not flush_denormal_enabled()
        if not enable_flush_denormal():
            print("unsupported"); raise SystemExit
        assert flush_denormal_enabled()
        bits = torch.tensor([71362, 1065353216, 0], dtype=torch.int32)  # 1e-40, 1.0, 0.0
        print(count_denormal({"w": bits.view(torch.float32)}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    if out.stdout.strip() == "unsupported":
        pytest.skip("CPU has no flush-denormal support")
    assert out.stdout.strip() == "1"


def _tiny_convnet() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 2))


def test_measure_latency_reports_and_leaves_model_untouched() -> None:
    model = _tiny_convnet().train()
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] = 1e-40
    threads_before = torch.get_num_threads()

    result = measure_latency(model, input_shape=(2, 3, 32, 24), threads=1, warmup=2, runs=5,
                             channels_last=True)

    assert set(result) == LATENCY_KEYS
    assert 0 < result["latency_ms_p50"] <= result["latency_ms_p90"]
    assert result["latency_ms_mean"] > 0
    assert result["latency_threads"] == 1
    assert result["latency_batch"] == 2
    assert result["latency_input_size"] == [32, 24]
    assert result["latency_runs"] == 5
    assert result["channels_last"] is True and result["compiled"] is False
    assert result["denormal_weights"] == 1
    assert isinstance(result["flush_denormal"], bool)
    assert result["cpu_model"] == cpu_model_name() != ""

    assert torch.get_num_threads() == threads_before
    weight = model[0].weight
    assert weight.is_contiguous() and not weight.is_contiguous(memory_format=torch.channels_last)
    assert model.training
    assert weight[0, 0, 0, 0].view(torch.int32).item() != 0  # the caller's subnormal is not flushed


def test_measure_latency_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="runs"):
        measure_latency(_tiny_convnet(), input_shape=(1, 3, 8, 8), runs=0)
    with pytest.raises(ValueError, match="channels_last"):
        measure_latency(nn.Linear(8, 2), input_shape=(1, 8), channels_last=True)
