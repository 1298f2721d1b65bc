"""One classifier sweep run twice from the command line: Hydra's basic launcher (jobs one after another
in one process) and the joblib launcher (``--jobs`` worker processes; joblib gives each
``cores / jobs`` threads). Prints both wall times, their ratio and whether the two results tables agree
(every run's metrics, matched by overrides).

    python benchmarks/sweep_launchers.py                       # 1 encoder x 7 profiles x 2 smoothings
    python benchmarks/sweep_launchers.py --exps 'glob(clf_*,exclude=[clf_default_recipe,clf_*_linear])'   # the 406 runs
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROFILES = "base,center_std,effective,hardmine,gelu_ln,calib,full"
METRICS = ("accuracy", "macro_f1_fg", "ece")


def sweep(exps: str, launcher: list[str], folder: Path) -> tuple[float, dict[str, dict], int]:
    args = [sys.executable, "-m", "zoolab", "-m", f"+exp={exps}", "dataset=synthetic_embeddings",
            f"profile={PROFILES}", "loss.label_smoothing=0,0.1", *launcher, f"hydra.sweep.dir={folder}"]
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    with open(folder / "results.tsv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if r["kind"] == "run"]
    return wall, {r["overrides"]: {m: r.get(m) for m in METRICS} | {"status": r["status"]} for r in rows}, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exps", default="clf_dinov3_vits16_mlp256")
    parser.add_argument("--jobs", type=int, default=2)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        serial_s, serial, rc1 = sweep(options.exps, [], Path(tmp) / "basic")
        joblib_s, parallel, rc2 = sweep(options.exps, ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={options.jobs}"],
                                        Path(tmp) / "joblib")
    same = serial == parallel
    differing = [k for k in serial if serial[k] != parallel.get(k)]
    print(f"runs: {len(serial)} (basic, exit {rc1}) / {len(parallel)} (joblib, exit {rc2})")
    print(f"basic launcher   {serial_s:8.1f} s")
    print(f"joblib x{options.jobs}        {joblib_s:8.1f} s   ratio joblib/basic {joblib_s / serial_s:.2f}")
    print(f"results tables identical: {same}" + ("" if same else f" ({len(differing)} runs differ, e.g. {differing[:1]})"))


if __name__ == "__main__":
    main()
