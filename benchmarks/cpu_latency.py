"""CPU batch-1 latency of timm classifiers: plain eval vs channels_last vs torch.compile, in one process.

For each model it prints p50/p90 of every variant, the p50 ratio to plain eval (< 1 is faster) and
an equality check (max |variant - plain| / max |plain| on one input), with the CPU model and the
thread count. Models are built with random weights (``pretrained=False``) and a 2-class head.

    python benchmarks/cpu_latency.py --models resnet18 --runs 10
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch import nn

from zoolab.metrics.latency import count_denormal, cpu_model_name, enable_flush_denormal, measure_latency

KNOWN_MODELS = ("resnet18,resnet50,mobilenetv3_large_100,efficientnet_b0,efficientnet_b2,"
                "convnextv2_tiny,vit_small_patch14_dinov2")
VARIANTS = {"eval": {}, "channels_last": {"channels_last": True}, "compile": {"compile": True}}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,resnet50,mobilenetv3_large_100",
                        help=f"comma-separated timm names, e.g. {KNOWN_MODELS}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--size", type=int, default=224)
    return parser


def build_model(name: str, size: int) -> nn.Module:
    import timm

    # ViTs have a fixed position-embedding grid (DINOv2 defaults to 518), so size it to the input.
    extra = {"img_size": size} if name.startswith("vit_") else {}
    return timm.create_model(name, pretrained=False, num_classes=2, **extra).eval()


def variant_error(model: nn.Module, variant: str, size: int) -> float:
    """max |variant(x) - model(x)| / max |model(x)| on one random input."""
    x = torch.rand(1, 3, size, size)
    other = copy.deepcopy(model)
    if variant == "channels_last":
        other = other.to(memory_format=torch.channels_last)
        x_other = x.contiguous(memory_format=torch.channels_last)
    else:
        x_other = x
    if variant == "compile":
        other = torch.compile(other)
    with torch.inference_mode():
        reference, output = model(x), other(x_other)
    return float((output - reference).abs().max() / reference.abs().max().clamp_min(1e-12))


def benchmark_model(name: str, args: argparse.Namespace) -> None:
    model = build_model(name, args.size)
    print(f"\n{name}  ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M params, "
          f"{count_denormal(model)} subnormal weights)")
    print(f"  {'variant':<14} {'p50 ms':>8} {'p90 ms':>8} {'p50/plain':>10} {'max rel diff':>13}")
    plain_p50 = float("nan")
    for variant, options in VARIANTS.items():
        try:
            result = measure_latency(model, (1, 3, args.size, args.size), threads=args.threads,
                                     warmup=args.warmup, runs=args.runs, **options)
            error = 0.0 if variant == "eval" else variant_error(model, variant, args.size)
        except Exception as exc:  # torch.compile needs a working C++ toolchain; report, don't abort
            print(f"  {variant:<14} {'n/a':>8} {'n/a':>8} {'n/a':>10} {'n/a':>13}  ({type(exc).__name__})")
            continue
        p50, p90 = result["latency_ms_p50"], result["latency_ms_p90"]
        if variant == "eval":
            plain_p50 = p50
        print(f"  {variant:<14} {p50:8.2f} {p90:8.2f} {p50 / plain_p50:10.2f} {error:13.1e}")


def main(argv: list[str] | None = None) -> None:
    flushed = enable_flush_denormal()  # first torch call: OpenMP workers inherit FTZ/DAZ only from here
    args = get_args_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_model_name()} | threads: {args.threads} | batch 1 | {args.size}x{args.size} | "
          f"warmup {args.warmup}, runs {args.runs} | flush_denormal: {flushed} | torch {torch.__version__}")
    for name in args.models.split(","):
        benchmark_model(name.strip(), args)


if __name__ == "__main__":
    main()
