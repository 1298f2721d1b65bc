"""CPU inference latency and denormal (subnormal) float hygiene.

Subnormal floats (0 < |x| < ``torch.finfo(dtype).tiny``) can make CPU convolutions and matmuls
many times slower on CPUs that handle them with microcode assists (pytorch#19651, #63853, #58220).
Weight decay on parameters with near-zero gradient drives weights there. The defence is twofold:
zero subnormal weights at export (``flush_denormal_``, checked by ``count_denormal``) and enable
flush-to-zero / denormals-are-zero as the first torch call of an inference process
(``enable_flush_denormal``). Latency practice follows the PyTorch CPU performance tuning guide:
eval + inference mode, explicit thread count, warm-up, then p50/p90 over timed runs with
``time.perf_counter``.
"""

from __future__ import annotations

import copy
import platform
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = [
    "count_denormal",
    "cpu_model_name",
    "enable_flush_denormal",
    "flush_denormal_",
    "flush_denormal_enabled",
    "measure_latency",
    "time_callable",
    "time_interleaved",
]

# Same-width integer view and mantissa width: a float is subnormal iff its exponent field is zero
# and its mantissa is not, i.e. 0 < (bits without sign) < 2**mantissa_bits.
_BIT_LAYOUT: dict[torch.dtype, tuple[torch.dtype, int, int]] = {
    torch.float64: (torch.int64, 52, 0x7FFF_FFFF_FFFF_FFFF),
    torch.float32: (torch.int32, 23, 0x7FFF_FFFF),
    torch.float16: (torch.int16, 10, 0x7FFF),
    torch.bfloat16: (torch.int16, 7, 0x7FFF),
}


def enable_flush_denormal() -> bool:
    """Turn on flush-to-zero and denormals-are-zero for CPU float math; return whether it took effect.

    The mode lives in a per-thread CPU register (MXCSR on x86, FPCR on ARM), so it affects only the
    calling thread. OpenMP worker threads are created by the first parallel op and copy the mode
    they see then; call this before any other torch op in the process, or workers that already
    exist keep computing subnormals. Returns False on CPUs without support (pre-SSE3 x86).
    """
    return bool(torch.set_flush_denormal(True))


def flush_denormal_enabled() -> bool:
    """Return whether flush-denormal mode is active on the calling thread.

    PyTorch has no getter, so this probes it: a subnormal product becomes 0 only under FTZ/DAZ.
    A one-element op never leaves the calling thread.
    """
    probe = torch.tensor([1e-39], dtype=torch.float32) * 2.0
    return bool(probe.view(torch.int32).item() == 0)


def _float_tensors(module_or_state_dict: nn.Module | Mapping[str, torch.Tensor]) -> Iterator[torch.Tensor]:
    if isinstance(module_or_state_dict, nn.Module):
        tensors = [*module_or_state_dict.parameters(), *module_or_state_dict.buffers()]
    elif isinstance(module_or_state_dict, Mapping):
        tensors = [v for v in module_or_state_dict.values() if isinstance(v, torch.Tensor)]
    else:
        raise ValueError(f"expected an nn.Module or a state dict, got {type(module_or_state_dict).__name__}")
    seen: set[tuple] = set()
    for tensor in tensors:
        if not tensor.is_floating_point() or tensor.is_meta or tensor.numel() == 0:
            continue
        # Tied weights appear under several state-dict keys; count each view once.
        key = (tensor.data_ptr(), tuple(tensor.shape), tensor.stride(), tensor.dtype, tensor.device)
        if key not in seen:
            seen.add(key)
            yield tensor


def _subnormal_mask(tensor: torch.Tensor) -> torch.Tensor:
    # Read the bits: under denormals-are-zero a float comparison sees every subnormal as 0, so
    # `(t != 0) & (t.abs() < tiny)` would report none right after enable_flush_denormal().
    layout = _BIT_LAYOUT.get(tensor.dtype)
    if layout is None:  # float8 etc.: their subnormals are normal once widened to float32
        wide = tensor.detach().float()
        return (wide != 0) & (wide.abs() < torch.finfo(tensor.dtype).tiny)
    int_dtype, mantissa_bits, magnitude_mask = layout
    magnitude = tensor.detach().view(int_dtype) & magnitude_mask
    return (magnitude > 0) & (magnitude < (1 << mantissa_bits))


def count_denormal(module_or_state_dict: nn.Module | Mapping[str, torch.Tensor]) -> int:
    """Number of subnormal values across all floating parameters and buffers (or state-dict tensors)."""
    return sum(int(_subnormal_mask(t).sum()) for t in _float_tensors(module_or_state_dict))


def flush_denormal_(module_or_state_dict: nn.Module | Mapping[str, torch.Tensor]) -> int:
    """Set every subnormal parameter, buffer or state-dict value to zero in place; return how many."""
    zeroed = 0
    with torch.no_grad():
        for tensor in _float_tensors(module_or_state_dict):
            mask = _subnormal_mask(tensor)
            count = int(mask.sum())
            if count:
                tensor.masked_fill_(mask, 0.0)
                zeroed += count
    return zeroed


def cpu_model_name() -> str:
    """The CPU model from /proc/cpuinfo, else ``platform.processor()``, else ``'unknown'``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _prepare_model(model: nn.Module, channels_last: bool, compile: bool) -> nn.Module:
    runner = copy.deepcopy(model).cpu().eval()
    if channels_last:
        runner = runner.to(memory_format=torch.channels_last)
    return torch.compile(runner) if compile else runner


def _time_calls(runner, x, warmup: int, runs: int) -> np.ndarray:
    timings = np.empty(runs, dtype=np.float64)
    with torch.inference_mode():
        for _ in range(warmup):
            runner(x)
        for i in range(runs):
            start = time.perf_counter()
            runner(x)
            timings[i] = time.perf_counter() - start
    return timings * 1e3


def time_callable(runner, x, threads: int | None = None, warmup: int = 10, runs: int = 50) -> dict:
    """p50/p90/mean milliseconds of ``runner(x)`` over ``runs`` calls after ``warmup`` calls, with
    ``torch.set_num_threads(threads)`` for the duration (restored afterwards). ``runner`` is any
    callable (a module, an ONNX Runtime session wrapper); it is called under ``torch.inference_mode``."""
    if warmup < 0 or runs < 1:
        raise ValueError(f"need warmup >= 0 and runs >= 1, got warmup={warmup}, runs={runs}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 or None, got {threads}")
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        timings = _time_calls(runner, x, warmup, runs)
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous_threads)
    return {"latency_ms_p50": float(np.percentile(timings, 50)),
            "latency_ms_p90": float(np.percentile(timings, 90)),
            "latency_ms_mean": float(timings.mean()),
            "latency_threads": int(used_threads)}


def time_interleaved(runners: dict, x, threads: int | None = None, warmup: int = 10, runs: int = 50) -> dict:
    """:func:`time_callable` for several runners on one input, timed in rotation: after every runner's
    warm-up, round ``i`` times one call of each runner, in an order that shifts every round. A burst of
    load from another process then hits every runner alike, so their ratios stay fair on a busy machine.
    Returns ``{name: {latency_ms_p50, latency_ms_p90, latency_ms_mean, latency_threads}}``."""
    if warmup < 0 or runs < 1:
        raise ValueError(f"need warmup >= 0 and runs >= 1, got warmup={warmup}, runs={runs}")
    names = list(runners)
    timings = {name: np.empty(runs, dtype=np.float64) for name in names}
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for name in names:
                for _ in range(warmup):
                    runners[name](x)
            for i in range(runs):
                for name in names[i % len(names):] + names[:i % len(names)]:
                    start = time.perf_counter()
                    runners[name](x)
                    timings[name][i] = time.perf_counter() - start
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous_threads)
    return {name: {"latency_ms_p50": float(np.percentile(t * 1e3, 50)),
                   "latency_ms_p90": float(np.percentile(t * 1e3, 90)),
                   "latency_ms_mean": float(t.mean() * 1e3), "latency_threads": int(used_threads)}
            for name, t in timings.items()}


def measure_latency(model: nn.Module, input_shape: tuple[int, ...] = (1, 3, 224, 224),
                    threads: int | None = None, warmup: int = 10, runs: int = 50,
                    channels_last: bool = False, compile: bool = False,
                    input_dtype: torch.dtype = torch.float32, input_scale: float = 255.0) -> dict:
    """Time CPU forward passes of a copy of ``model`` on one fixed random input.

    The caller's model is never modified: it is deep-copied, moved to CPU and put in eval mode,
    then optionally converted to channels_last and wrapped in ``torch.compile`` (compilation
    happens during warm-up). The input ``torch.rand(input_shape) * input_scale`` is built once.
    ``threads`` sets ``torch.set_num_threads`` for the measurement and restores the old value.

    ``flush_denormal`` in the result reports whether flush-denormal mode was active on the calling
    thread; this function does not switch it on (see ``enable_flush_denormal``).
    """
    if len(input_shape) < 2:
        raise ValueError(f"input_shape must end in (H, W), got {tuple(input_shape)}")
    if channels_last and len(input_shape) != 4:
        raise ValueError(f"channels_last needs a 4-D (N, C, H, W) input_shape, got {tuple(input_shape)}")
    if warmup < 0 or runs < 1:
        raise ValueError(f"need warmup >= 0 and runs >= 1, got warmup={warmup}, runs={runs}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 or None, got {threads}")
    runner = _prepare_model(model, channels_last, compile)
    x = (torch.rand(input_shape) * input_scale).to(input_dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return {
        **time_callable(runner, x, threads=threads, warmup=warmup, runs=runs),
        "latency_batch": int(input_shape[0]),
        "latency_input_size": [int(input_shape[-2]), int(input_shape[-1])],
        "latency_runs": int(runs),
        "cpu_model": cpu_model_name(),
        "channels_last": bool(channels_last),
        "compiled": bool(compile),
        "denormal_weights": count_denormal(model),
        "flush_denormal": flush_denormal_enabled(),
    }
