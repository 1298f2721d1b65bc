"""The run-folder contract, checked the same way for every family: one smoke run each through the CLI,
then the files users and tooling rely on (``run.json`` fields, ``resolved_config.yaml``, Hydra's own
files, the metrics file with the family's metric keys, checkpoints and training curves where something
is trained, the family's pictures).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.cli.test_reid_cli import FAST as REID_FAST, TINY_VIT
from tests.conftest import FAST, REPO, run_cli

RUN_JSON_FIELDS = ("exp", "exp_id", "task", "status", "error", "seed", "config_hash", "git_commit", "git_dirty",
                   "overrides", "started", "ended", "seconds", "params", "smoke", "attempts", "reported", "report")
DETECTION = ["dataset.root.counts={train:8,val:4,test:4}"]


@dataclass
class Family:
    exp: str
    metric_keys: tuple[str, ...]
    overrides: list[str] = field(default_factory=list)
    metrics_file: str = "smoke_metrics.json"
    trained: bool = True
    has_model: bool = True
    plots: tuple[str, ...] = ()
    needs: str | None = None  # a family whose run's best checkpoint this one evaluates
    resumable: bool = True  # keeps last.ckpt (small heads of large sweeps retrain instead)


FAMILIES = {
    "image_classifier": Family("cherry_resnet18_aug_unnorm", ("accuracy", "f1", "precision", "recall", "per_class",
                                                              "confusion_matrix", "threshold"),
                               FAST, plots=("confusion_matrix_val.png", "confusion_matrix_test.png")),
    # The contract is about files, so the costly families run small: ResNet-18 stages, a tiny CLIP ViT.
    "two_stage": Family("cherry_resnet50_two_stage", ("accuracy", "f1", "precision", "recall", "per_class",
                                                      "confusion_matrix"), [*FAST, "backbone=resnet18"]),
    "embedding_extraction": Family("embed_dinov3_vits16", ("num_images", "dim"), metrics_file="embed_metrics.json",
                                   trained=False, has_model=False),
    "embedding_classifier": Family("clf_dinov3_vits16_mlp256", ("macro_f1_fg", "weighted_f1_fg", "macro_precision_fg",
                                                                "macro_recall_fg", "accuracy", "ece"),
                                   resumable=False),
    "detection": Family("sardet_linear_probe", ("coco/bbox_mAP", "coco/bbox_mAP_50", "coco/bbox_mAP_75",
                                                "coco/bbox_mAP_s", "coco/bbox_mAP_m", "coco/bbox_mAP_l"), DETECTION),
    "reid": Family("promptsg_vitb16_v1", ("rank1", "rank5", "rank10", "mAP"), [*TINY_VIT, *REID_FAST]),
    "zero_shot": Family("clip_zeroshot_vitb16", ("rank1", "rank5", "rank10", "mAP"), trained=False),
    "visualisation": Family("sardet_vis_linear_probe", (), DETECTION, metrics_file=None, trained=False,
                            needs="detection"),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cache_dir):
    """Runs each family once, on demand, in one module-wide folder (visualisation reuses detection's run)."""
    root = tmp_path_factory.mktemp("contract")
    done: dict[str, tuple[Path, object]] = {}

    def run(name: str):
        if name not in done:
            family = FAMILIES[name]
            args = [f"+exp={family.exp}", "+smoke=cpu", *family.overrides, f"hydra.run.dir={root / name}"]
            if family.needs:
                args.append(f"ckpt={run(family.needs)[0] / 'checkpoints' / 'best.ckpt'}")
            done[name] = (root / name, run_cli(args, REPO))
        return done[name]

    return run


def _finite_numbers(value) -> bool:
    if isinstance(value, dict):
        return all(_finite_numbers(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite_numbers(v) for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return math.isfinite(value)
    return True


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_leaves_the_run_folder_of_the_contract(runs, name):
    family = FAMILIES[name]
    run_dir, proc = runs(name)
    assert proc.returncode == 0, proc.stderr[-3000:]

    record = json.loads((run_dir / "run.json").read_text())
    missing = [k for k in RUN_JSON_FIELDS if k not in record]
    assert not missing, f"run.json lacks {missing}"
    assert record["status"] == "ok" and record["error"] is None
    assert record["exp"] == family.exp and record["smoke"] is True and record["attempts"] == 1
    assert record["ended"] >= record["started"]
    assert record["seconds"] and all(v >= 0 for v in record["seconds"].values())
    assert isinstance(record["git_commit"], str) and len(record["git_commit"]) == 40
    assert any(o.startswith("+exp=") or o.startswith("exp=") for o in record["overrides"])

    if family.has_model:
        assert set(record["device"]) >= {"accelerator", "name", "processes"}
        params = record["params"]
        assert params["total"] >= params["trainable"] >= 0
        assert params["per_component"] and sum(c["total"] for c in params["per_component"].values()) == params["total"]

    resolved = yaml.safe_load((run_dir / "resolved_config.yaml").read_text())
    assert resolved["exp"] == family.exp and resolved["smoke"]
    for hydra_file in ("config.yaml", "overrides.yaml", "hydra.yaml"):
        assert (run_dir / ".hydra" / hydra_file).is_file()

    if family.metrics_file:
        metrics = json.loads((run_dir / family.metrics_file).read_text())
        assert set(family.metric_keys) <= set(metrics), set(family.metric_keys) - set(metrics)
        assert _finite_numbers(metrics)
        assert [p.name for p in run_dir.glob("*_metrics.json")] == [family.metrics_file]

    if family.trained:
        for ckpt in ("best.ckpt", "model.safetensors"):
            assert (run_dir / "checkpoints" / ckpt).is_file(), ckpt
        assert (run_dir / "checkpoints" / "last.ckpt").is_file() == family.resumable
        assert (run_dir / record["best_checkpoint"]).is_file()
        assert (run_dir / "metrics.csv").read_text().count("\n") > 1
        assert (run_dir / "plots" / "training_curves.png").stat().st_size > 1000
    for plot in family.plots:
        assert (run_dir / "plots" / plot).stat().st_size > 1000
    assert not list(run_dir.rglob("*.tmp*")), "a temporary file was left behind"


def test_visualisation_paints_the_images_of_its_checkpoint(runs):
    run_dir, proc = runs("visualisation")
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((run_dir / "run.json").read_text())
    assert Path(record["evaluated_checkpoint"]).name == "best.ckpt"
    painted = record["visualizations"]
    assert painted and all(p.startswith("visualizations/") for p in painted)
    assert all((run_dir / p).stat().st_size > 1000 for p in painted)
    assert sorted(str(p.relative_to(run_dir)) for p in run_dir.glob("visualizations/*/*.png")) == sorted(painted)
