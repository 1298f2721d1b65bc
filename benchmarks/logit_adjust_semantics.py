"""Which inference-time logit adjustment the classifier report's numbers need: the second-generation
and minimal sweeps run in both semantics (``subtract``: Menon et al.'s post-hoc rule, zoolab's default;
``add``: the original code's, ``task.module.inference_adjust=add`` / ``+stack=report_logit_adjust``), and
per sweep and semantics the mean macro F1 (fg) of each logit_* profile, its change against the sweep's
reference profile (``full``; ``baseline_minimal`` under ``+stack=minimal``) beside the report's change,
whether the signs agree, and |logit_both - reference|.

    python benchmarks/logit_adjust_semantics.py SECOND_GEN_SUBTRACT SECOND_GEN_ADD MINIMAL_SUBTRACT MINIMAL_ADD
    python benchmarks/logit_adjust_semantics.py --run OUT    # runs the four sweeps into OUT first
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from statistics import mean

from zoolab.results.aggregate import find_runs, load_run

EXPS = ("clf_dinov3_vits16_mlp256,clf_dinov3_vits16_mlp384,clf_dinov3_vitb16_mlp512,clf_dinov3_vitb16_mlp768,"
        "clf_dinov3_vitl16_mlp768_384,clf_dinov3_vitl16_mlp1024_512")
SWEEPS = {
    "second_gen": ("full", "profile=full,logit_both,logit_infer,logit_train", []),
    "minimal": ("baseline_minimal", "profile=baseline_minimal,logit_train,logit_both,logit_infer", ["+stack=minimal"]),
}
PROFILES = ("logit_train", "logit_infer", "logit_both")


def run_sweeps(out: Path) -> list[Path]:
    folders = []
    for sweep, (_, profiles, extra) in SWEEPS.items():
        for semantics in ("subtract", "add"):
            folder = out / f"{sweep}_{semantics}"
            subprocess.run([sys.executable, "-m", "zoolab", "-m", f"+exp={EXPS}", "dataset=synthetic_embeddings",
                            profiles, *extra, f"task.module.inference_adjust={semantics}",
                            f"hydra.sweep.dir={folder}"], check=False, stdin=subprocess.DEVNULL)
            folders.append(folder)
    return folders


def profile_means(folder: Path, sweep: str, split: str = "test") -> tuple[dict[str, float], dict[str, float]]:
    """Mean macro_f1_fg per profile over the folder's ok runs, and the report's average per profile."""
    ours: dict[str, list[float]] = {}
    reported: dict[str, float] = {}
    for run_dir in find_runs(folder):
        row = load_run(run_dir, folder)
        profile = row["report"].get("profile")
        value = (row["metrics"].get(split) or {}).get("macro_f1_fg")
        if row["status"] != "ok" or profile is None or value is None:
            continue
        ours.setdefault(profile, []).append(float(value))
        avg = (row["report"].get("reported_avg") or {}).get(sweep) or {}
        if "macro_f1_fg" in avg:
            reported[profile] = float(avg["macro_f1_fg"])
    return {p: mean(v) for p, v in ours.items()}, reported


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--run", type=Path, help="run the four sweeps into this folder first")
    options = parser.parse_args()
    folders = run_sweeps(options.run) if options.run else options.folders
    if len(folders) != 4:
        parser.error("give four sweep folders (second-gen subtract, add; minimal subtract, add) or --run OUT")
    print("| sweep | semantics | profile | ours | Δ ours vs ref | Δ report vs ref | same sign |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    summary = []
    for folder, (sweep, semantics) in zip(folders, [(s, m) for s in SWEEPS for m in ("subtract", "add")]):
        reference = SWEEPS[sweep][0]
        ours, reported = profile_means(folder, sweep)
        if reference not in ours:
            print(f"| {sweep} | {semantics} | (no ok {reference} runs in {folder}) |")
            continue
        agree = 0
        for profile in PROFILES:
            if profile not in ours:
                continue
            delta = ours[profile] - ours[reference]
            rep = reported[profile] - reported[reference] if {profile, reference} <= set(reported) else None
            same = rep is not None and (delta > 0) == (rep > 0)
            agree += same
            print(f"| {sweep} | {semantics} | {profile} | {ours[profile]:.3f} | {delta:+.3f} | "
                  f"{'-' if rep is None else f'{rep:+.3f}'} | {'yes' if same else 'no'} |")
        both_gap = abs(ours.get("logit_both", float("nan")) - ours[reference])
        summary.append(f"{sweep}/{semantics}: {agree} of {len(PROFILES)} signs agree with the report; "
                       f"|logit_both - {reference}| = {both_gap:.3f} (report: "
                       f"{abs(reported.get('logit_both', float('nan')) - reported.get(reference, float('nan'))):.3f})")
    print()
    print("\n".join(summary))


if __name__ == "__main__":
    main()
