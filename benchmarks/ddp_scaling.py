"""DDP through zoolab's command line: the same smoke experiment trained in 1 process and in N processes
(``trainer=ddp_cpu``, gloo; ``--gpu``: ``trainer=ddp`` on the machine's GPUs), timed from each run's own
``run.json`` (``seconds.fit``: the Lightning fit, without start-up and evaluation).

With N processes every rank sees 1/N of each epoch, so a perfect scale-out takes 1/N of the 1-process
fit time; the ratio printed is ``fit(N) / fit(1)`` and ``speed-up = fit(1) / fit(N)``. On a CPU the
processes share the machine's cores (each gets ``cores / N`` threads), so the CPU number measures the
DDP overhead (gradient all-reduce, process start, sharding), not a gain; the GPU run is the one to read
for scaling. Both runs also report test accuracy: they train on different batch compositions, so the
numbers are close but not equal (a 1-process evaluation of the DDP checkpoint is equal: tests/cli/test_ddp.py).

    python benchmarks/ddp_scaling.py --processes 2 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(args: list[str], run_dir: Path, threads: int) -> tuple[dict, dict, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "zoolab", *args, f"hydra.run.dir={run_dir}"], env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"run failed ({run_dir}):\n{proc.stderr[-3000:]}")
    record = json.loads((run_dir / "run.json").read_text())
    metrics = json.loads((run_dir / "smoke_metrics.json").read_text())
    return record, metrics, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp", default="cherry_resnet18_aug_unnorm")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--gpu", action="store_true", help="trainer=ddp on GPUs instead of gloo on the CPU")
    parser.add_argument("--extra", nargs="*", default=["dataset.root.counts={train:120,val:20,test:40}"],
                        help="more overrides for both runs")
    opts = parser.parse_args()

    cores = os.cpu_count() or 1
    common = [f"+exp={opts.exp}", "+smoke=cpu", f"trainer.max_epochs={opts.epochs}", *opts.extra]
    if opts.gpu:
        single = [*common, "trainer=gpu", "trainer.accelerator=gpu"]
        multi = [*common, "trainer=ddp", "trainer.accelerator=gpu", f"trainer.devices={opts.processes}"]
        threads = (cores, cores)
    else:
        single = [*common, "trainer=cpu"]
        multi = [*common, "trainer=ddp_cpu", f"trainer.devices={opts.processes}"]
        threads = (cores, max(1, cores // opts.processes))
    with tempfile.TemporaryDirectory(prefix="zoolab-ddp-") as tmp:
        one = run(single, Path(tmp) / "one", threads[0])
        many = run(multi, Path(tmp) / "many", threads[1])
    print(f"experiment {opts.exp} | {opts.epochs} epochs | {cores} cores | "
          f"{'GPU' if opts.gpu else 'CPU gloo'} | threads per process {threads[0]} vs {threads[1]}")
    print(f"{'':14}{'processes':>10}{'fit s':>9}{'wall s':>9}{'accuracy':>10}")
    for label, (record, metrics, wall), n in (("single", one, 1), ("ddp", many, opts.processes)):
        assert record["device"]["processes"] == n, record["device"]
        print(f"{label:14}{n:>10}{record['seconds']['fit']:>9.1f}{wall:>9.1f}{metrics['accuracy']:>10.4f}")
    ratio = many[0]["seconds"]["fit"] / one[0]["seconds"]["fit"]
    print(f"ratio fit(ddp)/fit(single): {ratio:.3f}  (speed-up {1 / ratio:.2f}x; ideal {1 / opts.processes:.3f})")


if __name__ == "__main__":
    main()
