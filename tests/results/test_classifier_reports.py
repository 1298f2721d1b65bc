"""Tests for the embedding-classifier report renderers on synthetic run folders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from zoolab.results.aggregate import find_runs, load_run
from zoolab.results.reports import classifier_knobs, classifier_minimal, classifier_second_gen, classifier_sweep
from zoolab.results.reports._classifier_common import REPORT, SMOKE_NOTE, records

CONF = Path(__file__).resolve().parents[2] / "conf"


def reported_avg(profile: str) -> dict:
    return yaml.safe_load((CONF / "profile" / f"{profile}.yaml").read_text())["report"]["reported_avg"]


def label(encoder: str, mlp: str, ls: str, profile: str) -> str:
    return f"qwen_dataset_{encoder}_{mlp}_mix0p1_balnorm_{ls}_{profile}_bg5"


def make_run(folder: Path, encoder: str, mlp: str, profile: str, ls: str, macro: float | None, *,
             status: str = "ok", error: str | None = None, seed: int = 0, stack: str | None = None,
             smoke: bool = False, exp: str | None = None, reported: dict | None = None,
             seconds: dict | None = None) -> None:
    """A run folder as ``train_embedding_classifier`` leaves it (``macro=None``: no metrics file)."""
    folder.mkdir(parents=True)
    exp = exp or f"clf_{encoder}_{mlp}"
    run_label = label(encoder, mlp, ls, profile)
    overrides = [f"+exp={exp}", f"profile={profile}", f"loss.label_smoothing={'0' if ls == 'ls0' else '0.1'}",
                 f"seed={seed}"] + ([f"+stack={stack}"] if stack else []) + (["+smoke=cpu"] if smoke else [])
    report = {"model": encoder, "variant": mlp, "profile": profile, "reported_avg": reported_avg(profile),
              "label": run_label}
    info = {"exp": exp, "exp_id": f"CLF-{encoder}-{mlp}", "task": "embedding_cls", "status": status,
            "error": error, "seed": seed, "overrides": overrides, "smoke": smoke,
            "report": report if status == "ok" else {},
            "reported": reported or {"note": "no single-run figure in the report for this combination"},
            "seconds": seconds or {}}
    (folder / "run.json").write_text(json.dumps(info))
    if macro is not None:
        metrics = {"macro_f1_fg": macro, "weighted_f1_fg": macro + 0.07, "macro_precision_fg": macro - 0.03,
                   "macro_recall_fg": 0.8, "accuracy": 0.9, "ece": 0.02, "temperature": 1.1,
                   "per_class": {"a": {"f1": macro}}, "label": run_label}
        (folder / f"{'smoke' if smoke else 'test'}_metrics.json").write_text(json.dumps(metrics))


# 2 profiles x 2 LS x 2 encoders: encoder base + 0.10 for full + 0.04 for ls0p1.
FIRST_GEN = {("dinov3_vitl16", "mlp1024_512"): 0.70, ("clip_vitl14", "mlp768_384"): 0.55}


@pytest.fixture
def first_gen(tmp_path: Path) -> Path:
    i = 0
    for (encoder, mlp), base in FIRST_GEN.items():
        for profile, bonus in (("base", 0.0), ("full", 0.10)):
            for ls, ls_bonus in (("ls0", 0.0), ("ls0p1", 0.04)):
                macro = round(base + bonus + ls_bonus, 4)
                make_run(tmp_path / "sweep" / str(i), encoder, mlp, profile, ls, macro)
                i += 1
    make_run(tmp_path / "sweep" / str(i), "dinov3_vits16", "mlp384", "base", "ls0", None, status="failed",
             error="FileNotFoundError: data/embeddings/dinov3_vits16.safetensors")
    return tmp_path / "sweep"


def rows_of(root: Path) -> list[dict]:
    return [load_run(d, root) for d in find_runs(root)]


def test_records_parse_label(first_gen: Path) -> None:
    recs = {r["label"]: r for r in records(rows_of(first_gen))}
    rec = recs[label("clip_vitl14", "mlp768_384", "ls0", "full")]
    assert (rec["encoder"], rec["family"], rec["mlp"], rec["profile"], rec["ls"]) == (
        "clip_vitl14", "CLIP", "mlp768_384", "full", "ls0")
    assert rec["metrics"]["macro_f1_fg"] == pytest.approx(0.65) and rec["split"] == "test"
    failed = [r for r in recs.values() if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["profile"] == "base" and failed[0]["encoder"] == "dinov3_vits16"


def test_sweep_profile_averages_beside_report(first_gen: Path) -> None:
    text = classifier_sweep.render(rows_of(first_gen))
    # profile | count (ours, report) | macro, weighted, recall, precision (ours, report each) | failed
    assert "| base | 4 | 58 | 0.645 | 0.683 | 0.715 | 0.778 | 0.800 | 0.800 | 0.615 | 0.646 | 1 |" in text
    assert "| full | 4 | 58 | 0.745 | 0.781 | 0.815 | 0.862 | 0.800 | 0.807 | 0.715 | 0.765 | 0 |" in text
    assert text.index("| base |") < text.index("| full |")


def test_sweep_family_and_ls_averages(first_gen: Path) -> None:
    text = classifier_sweep.render(rows_of(first_gen))
    assert "| DINOv3 LVD | 4 | 0.770 | 0.745 (vs CLIP) / 0.762 (vs SAT) |" in text
    assert "| DINOv3 SAT | 0 | - | 0.662 (vs SAT) |" in text
    assert "| CLIP | 4 | 0.620 | 0.579 (vs CLIP) |" in text
    assert "| ls0 | 4 | 0.675 | 0.689 |" in text
    assert "| ls0p1 | 4 | 0.715 | 0.732 |" in text
    assert REPORT["ls_avg"] == {"ls0": 0.689, "ls0p1": 0.732}


def test_sweep_best_top10_and_counts(first_gen: Path) -> None:
    text = classifier_sweep.render(rows_of(first_gen))
    best = label("dinov3_vitl16", "mlp1024_512", "ls0p1", "full")
    assert f"| Best overall | `{best}` → 0.840 | `{REPORT['best_single']['overall'][0]}` → 0.845 |" in text
    assert f"`{label('clip_vitl14', 'mlp768_384', 'ls0p1', 'full')}` → 0.690" in text
    top = text.split("### Top-10 Overall")[1].split("###")[0]
    order = [("dinov3_vitl16", "full", "ls0p1"), ("dinov3_vitl16", "full", "ls0"),
             ("dinov3_vitl16", "base", "ls0p1"), ("dinov3_vitl16", "base", "ls0"),
             ("clip_vitl14", "full", "ls0p1"), ("clip_vitl14", "full", "ls0")]
    positions = [top.index(label(e, "mlp1024_512" if e.startswith("dinov3") else "mlp768_384", ls, p))
                 for e, p, ls in order]
    assert positions == sorted(positions)
    assert "| 1 | `" + best + "` | 0.840 (0.910) | `" + REPORT["top10"][0][0] + "` | 0.845 (0.903) |" in top
    assert "| 10 | - | - |" in top  # only 8 runs of ours; the report's ranks 9-10 still shown
    assert ("Total runs: 9 — 8 ran, 1 failed; the report has 406 (7 profiles × 2 LS × 29 combos), "
            "397 not run here.") in text


def test_sweep_lists_failed_and_excludes_them(first_gen: Path) -> None:
    text = classifier_sweep.render(rows_of(first_gen))
    failed = text.split("### Failed or unfinished runs")[1]
    assert "FAILED `clf_dinov3_vits16_mlp384 profile=base loss.label_smoothing=0`" in failed
    assert "FileNotFoundError" in failed
    assert "clf_dinov3_vits16_mlp384" not in text.split("### Failed")[0]
    assert SMOKE_NOTE not in text


def second_gen_runs(root: Path, stack: str | None = None) -> None:
    profiles = ((("baseline_minimal", 0.74), ("logit_train", 0.80)) if stack
                else (("full", 0.83), ("arcface", 0.82)))
    for profile, macro in profiles:
        make_run(root / profile / "l", "dinov3_vitl16", "mlp1024_512", profile, "ls0p1", macro + 0.02,
                 stack=stack)
        for seed, delta in ((0, -0.01), (1, 0.01)) if profile == "arcface" else ((0, 0.0),):
            make_run(root / profile / f"b{seed}", "dinov3_vitb16", "mlp768", profile, "ls0p1", macro + delta,
                     seed=seed, stack=stack)


def test_second_gen_profiles_delta_and_backbones(tmp_path: Path, first_gen: Path) -> None:
    second_gen_runs(tmp_path / "sg")
    second_gen_runs(tmp_path / "min", stack="minimal")  # must be ignored here
    text = classifier_second_gen.render(rows_of(tmp_path / "sg") + rows_of(tmp_path / "min"))
    best = label("dinov3_vitl16", "mlp1024_512", "ls0p1", "full")
    assert "Total runs: 4 — 4 ran, 0 failed; the report has 36" in text
    assert f"Best overall (macro_f1_fg): `{best}` → 0.8500 (report: 0.8508)" in text
    # profile | runs | avg_macro | report | avg_weighted | report | best_macro | report | label | failed
    assert f"| full | 2 | 0.8400 | 0.8364 | 0.9100 | 0.8976 | 0.8500 | 0.8508 | `{best}` | 0 |" in text
    assert "| arcface | 2 | 0.8300 | 0.8292 | 0.9000 | 0.8960 | 0.8400 | 0.8371 |" in text
    assert "| arcface | 0.8300 | -0.0100 | -0.0072 |" in text  # delta vs full: ours, report
    assert "| vitb16 | arcface | 0.8200 ± 0.0141 (2 seeds) |" in text  # seeds fold into one record
    assert "| vitl16 | full | 0.8500 |" in text
    assert "baseline_minimal" not in text


def test_minimal_sweep_and_default_recipe(tmp_path: Path) -> None:
    second_gen_runs(tmp_path / "min", stack="minimal")
    second_gen_runs(tmp_path / "sg")  # full/arcface without +stack=minimal: not part of this report
    recipe = yaml.safe_load((CONF / "exp" / "clf_default_recipe.yaml").read_text())["reported"]
    make_run(tmp_path / "recipe", "dinov3_vitl16", "mlp1024_512", "logit_both", "ls0p1", 0.85,
             exp="clf_default_recipe", reported=recipe)
    text = classifier_minimal.render(rows_of(tmp_path))
    assert "| baseline_minimal | 2 | 0.7500 | 0.7578 |" in text
    assert "| logit_train | 2 | 0.8100 | 0.8160 |" in text
    assert "| logit_train | 0.8100 | +0.0600 | +0.0582 |" in text
    assert "| arcface |" not in text.split("### Default recipe")[0]
    recipe_part = text.split("### Default recipe confirmation run")[1]
    assert "| macro_f1_fg | 0.8500 | 0.8399 | +0.0101 |" in recipe_part
    assert "| weighted_f1_fg | 0.9200 | 0.9031 | +0.0169 |" in recipe_part


def test_minimal_without_recipe_has_no_recipe_section(tmp_path: Path) -> None:
    second_gen_runs(tmp_path, stack="minimal")
    assert "Default recipe" not in classifier_minimal.render(rows_of(tmp_path))


def test_smoke_warning_on_top(tmp_path: Path) -> None:
    make_run(tmp_path / "s", "dinov3_vitl16", "mlp1024_512", "full", "ls0p1", 0.3, smoke=True)
    for render in (classifier_sweep.render, classifier_second_gen.render):
        text = render(rows_of(tmp_path))
        assert text.startswith(f"> **WARNING — {SMOKE_NOTE}.**")
        assert "Metrics split: smoke" in text and "0.300" in text


def test_no_runs_message(tmp_path: Path) -> None:
    assert classifier_sweep.render([]).startswith("No first-generation classifier runs")
    assert classifier_second_gen.render([]).startswith("No second-generation classifier runs")
    assert classifier_minimal.render([]).startswith("No minimal-baseline classifier runs")


def test_cli_report_hook(first_gen: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "zoolab.results", str(first_gen),
                           "--report", "classifier_sweep"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr  # one failed run: everything written, exit 1
    written = (first_gen / "report_classifier_sweep.md").read_text()
    assert "### Profile Averages" in written and "| full | 4 | 58 | 0.745 | 0.781 |" in written
    assert "### Profile Averages" in proc.stdout


def test_calibration_and_phase_timing_table(tmp_path: Path) -> None:
    from zoolab.results.reports import classifier_sweep

    for i, (profile, train, hard) in enumerate((("base", 4.0, None), ("base", 6.0, None), ("full", 5.0, 1.5))):
        seconds = {"train": train, "evaluate": 0.5, **({"hard_mining_train": hard} if hard else {})}
        make_run(tmp_path / str(i), "dinov3_vitl16", "mlp1024", profile, "ls0p1", 0.7, seed=i, seconds=seconds)
    text = classifier_sweep.render(rows_of(tmp_path))
    section = text.split("### Calibration and phase timing (ours)")[1].split("###")[0]
    table = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("| ")]
    assert table[0] == ["profile", "runs", "ECE", "temperature", "train s", "hard mining s", "evaluate s",
                        "all training s"]
    by_profile = {row[0]: row for row in table[2:]}
    assert by_profile["base"][1:] == ["2", "0.020", "1.10", "5.0", "-", "0.5", "5.0"]   # seeds folded: one group
    assert by_profile["full"][1:] == ["1", "0.020", "1.10", "5.0", "1.5", "0.5", "6.5"]


def test_knobs_sweep_deltas_against_full_and_the_linear_row(tmp_path: Path) -> None:
    runs = {("mlp1024_512", "full"): 0.83, ("mlp1024_512", "feature_aug"): 0.85, ("mlp768_384", "crt"): 0.79,
            ("mlp1024_512", "crt"): 0.81, ("linear", "full"): 0.78, ("linear", "crt"): 0.82,
            ("mlp1024_512", "arcface"): 0.99}  # arcface is a second-generation profile: not in this report
    for (mlp, profile), macro in runs.items():
        make_run(tmp_path / "knobs" / f"{mlp}-{profile}", "dinov3_vitl16", mlp, profile, "ls0p1", macro)
    make_run(tmp_path / "knobs" / "minimal", "dinov3_vitl16", "mlp1024_512", "feature_aug", "ls0p1", 0.1,
             stack="minimal")
    text = classifier_knobs.render(rows_of(tmp_path / "knobs"))
    assert "Total runs: 6 — 6 ran, 0 failed" in text and "the report has" not in text
    assert "arcface" not in text
    # full is the A of every A/B pair: its own row, then each knob's delta against the full average
    assert "| full | 2 | 0.8050 | 0.8364 |" in text  # ours beside the report's second-gen full average
    assert "| feature_aug | 0.8500 | +0.0450 | - |" in text
    assert "| crt | 0.8067 | +0.0017 | - |" in text
    # linear vs the MLPs of the same encoder and profile: linear, MLP mean, MLP best, which MLP
    assert "| dinov3_vitl16 | crt | 0.8200 | 0.8000 | 0.8100 | mlp1024_512 |" in text
    assert "| dinov3_vitl16 | full | 0.7800 | 0.8300 | 0.8300 | mlp1024_512 |" in text
    assert classifier_knobs.render([]).startswith("No newer-knob classifier runs")
