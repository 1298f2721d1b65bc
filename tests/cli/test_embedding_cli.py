"""The embedding family through the command line: extraction smoke run, and a head with every phase."""

from __future__ import annotations

import json

from conftest import REPO, run_cli
from zoolab.data.embedding_cache import load_cache


def test_embed_smoke_writes_a_loadable_cache(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=embed_dinov3_vits16", "+smoke=cpu", f"hydra.run.dir={run_dir}"], REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((run_dir / "embed_metrics.json").read_text())
    cache = load_cache(info["cache_path"])
    assert cache.embeddings.shape == (info["num_images"], 384)
    assert set(cache.class_names) == {"cherry_clean", "cherry_pit", "cherry_maybe"}


def test_head_runs_main_hard_mining_and_crt_phases(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=clf_dinov3_vits16_mlp256", "+smoke=cpu", "profile=supcon",
                    "task.module.hard_mining_epochs=1", "task.module.crt_epochs=2", "task.module.center_weight=0.1",
                    "task.module.manifold_mixup=true", "task.module.feature_noise=0.05",
                    f"hydra.run.dir={run_dir}"], REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "ok"
    assert {"train", "hard_mining_train", "crt_train", "calibrate", "evaluate"} <= set(record["seconds"])
    assert set(record["params"]["per_component"]) == {"head", "projection", "center_loss"}
    metrics = json.loads((run_dir / "smoke_metrics.json").read_text())
    assert 0.0 <= metrics["macro_f1_fg"] <= 1.0 and 0.0 <= metrics["ece"] <= 1.0
    assert metrics["label"].endswith("_supcon_bg5")


def test_missing_cache_names_the_fix(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=clf_dinov3_vitl16_mlp1024_512", f"hydra.run.dir={run_dir}"], REPO,
                   env_extra={"EMB_ROOT": str(tmp_path / "nowhere")})
    assert proc.returncode == 1
    assert "dinov3_vitl16.safetensors" in proc.stderr and "EMB_ROOT" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(run_dir.glob("*_metrics.json"))


def test_rescoring_a_trained_head_with_another_logit_adjust_mode(tmp_path, cache_dir):
    base = ["+exp=clf_dinov3_vits16_mlp256", "+smoke=cpu", "profile=logit_infer"]
    trained = tmp_path / "trained"
    assert run_cli([*base, f"hydra.run.dir={trained}"], REPO).returncode == 0
    ckpt = f"ckpt={trained}/checkpoints/best.ckpt"
    for name, extra in (("same", []), ("add", ["task.module.inference_adjust=add"])):
        proc = run_cli([*base, ckpt, *extra, f"hydra.run.dir={tmp_path / name}"], REPO)
        assert proc.returncode == 0, proc.stderr[-3000:]
        seconds = json.loads((tmp_path / name / "run.json").read_text())["seconds"]
        assert not any(key.endswith("train") for key in seconds)  # evaluated, not retrained
    metrics = {name: json.loads((tmp_path / name / "smoke_metrics.json").read_text())
               for name in ("trained", "same", "add")}
    assert metrics["same"]["macro_f1_fg"] == metrics["trained"]["macro_f1_fg"]
    assert metrics["add"]["macro_f1_fg"] != metrics["trained"]["macro_f1_fg"]  # the other sign re-scores
