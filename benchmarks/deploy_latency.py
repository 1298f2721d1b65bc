"""CPU deployment variants of the cherry classifiers, through zoolab's own command line.

For each experiment it trains the model on the embedded synthetic cherry images (``+smoke=cpu``: random
init, 64 px training, a learnable set) with ``task.module.latency.variants`` set, so the run itself times
every variant at batch 1, 224 px and a fixed thread count, and scores it against eager fp32 on the
validation images (accuracy, F1, pit recall, agreement). The script then prints, per model, each
variant's p50/p90 and its p50 ratio to eager fp32 (< 1 is faster), the accuracy change and agreement,
and the best variant (fastest within 0.5 accuracy points and >= 99 % agreement), with the CPU model.

    python benchmarks/deploy_latency.py                                    # ResNet50 only
    python benchmarks/deploy_latency.py --exps cherry_resnet50_aug,cherry_resnet18_aug_unnorm,\
cherry_mobilenetv3_large,cherry_efficientnet_b0,cherry_convnextv2_tiny
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from zoolab.metrics.latency import cpu_model_name

ALL = "eager,channels_last,compile,ort_fp32,ort_int8,bf16"


def run_experiment(exp: str, args: argparse.Namespace, folder: Path) -> dict:
    run_dir = folder / exp
    command = [sys.executable, "-m", "zoolab", f"+exp={exp}", "+smoke=cpu", f"trainer.max_epochs={args.epochs}",
               f"task.module.latency.variants=[{args.variants}]", f"task.module.latency.threads={args.threads}",
               f"task.module.latency.runs={args.runs}", f"task.module.latency.warmup={args.warmup}",
               f"task.module.latency.input_size={args.size}", "keep_last_ckpt=false", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env)
    if proc.returncode != 0:
        print(f"{exp}: failed (exit {proc.returncode})\n{proc.stderr[-1500:]}")
        return {}
    return json.loads((run_dir / "deployment.json").read_text())


def print_table(exp: str, deployment: dict) -> None:
    rows = deployment["variants"]
    eager = rows["eager"]
    print(f"\n{exp}   (val accuracy fp32 {eager.get('accuracy', float('nan')):.3f})")
    print(f"  {'variant':<14}{'p50 ms':>9}{'p90 ms':>9}{'p50/fp32':>10}{'acc Δ pts':>11}{'agree':>8}")
    for name, row in rows.items():
        if "error" in row:
            print(f"  {name:<14}  unavailable: {row['error'][:80]}")
            continue
        print(f"  {name:<14}{row['latency_ms_p50']:9.2f}{row['latency_ms_p90']:9.2f}"
              f"{row['latency_ms_p50'] / eager['latency_ms_p50']:10.2f}{100 * row.get('accuracy_delta', 0):11.2f}"
              f"{row.get('agreement', float('nan')):8.3f}")
    best = rows[deployment["best_variant"]]
    print(f"  best: {deployment['best_variant']}  p50 {best['latency_ms_p50']:.2f} ms = "
          f"{best['latency_ms_p50'] / eager['latency_ms_p50']:.2f}x fp32, accuracy change "
          f"{100 * best.get('accuracy_delta', 0):+.2f} pts, agreement {best.get('agreement', float('nan')):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exps", default="cherry_resnet50_aug")
    parser.add_argument("--variants", default=ALL)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    print(f"CPU: {cpu_model_name()}, {os.cpu_count()} logical cores; {args.threads} threads, batch 1, "
          f"{args.size}x{args.size}; {args.runs} timed runs after {args.warmup} warm-up")
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        for exp in args.exps.split(","):
            deployment = run_experiment(exp, args, Path(tmp))
            if deployment:
                print_table(exp, deployment)
                rows = deployment["variants"]
                best = rows[deployment["best_variant"]]
                summary.append((exp, rows["eager"]["latency_ms_p50"], deployment["best_variant"],
                                best["latency_ms_p50"] / rows["eager"]["latency_ms_p50"],
                                100 * best.get("accuracy_delta", 0), best.get("agreement", float("nan"))))
    print(f"\n{'experiment':<30}{'fp32 p50':>10}{'best':>15}{'ratio':>8}{'acc Δ':>8}{'agree':>8}")
    for exp, p50, best, ratio, delta, agree in summary:
        print(f"{exp:<30}{p50:10.2f}{best:>15}{ratio:8.2f}{delta:8.2f}{agree:8.3f}")


if __name__ == "__main__":
    main()
