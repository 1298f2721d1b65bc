"""Deployment through the command line: latency variants in a training run (ONNX files, deployment.json,
``deploy/*`` metrics) and ``task=export`` of an existing run, for an image classifier and an embedding head."""

from __future__ import annotations

import json

import pytest

from conftest import FAST, REPO, run_cli

VARIANTS = "task.module.latency.variants=[eager,channels_last,ort_fp32,ort_int8]"


@pytest.fixture(scope="module")
def cherry_run(tmp_path_factory, cache_dir):
    run_dir = tmp_path_factory.mktemp("deploy") / "run"
    proc = run_cli(["+exp=cherry_resnet18_aug_unnorm", "+smoke=cpu", *FAST, "dataset.root.counts={train:60,val:40,test:20}",
                    VARIANTS, "task.module.latency.calibration_images=16", f"hydra.run.dir={run_dir}"], REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def test_variants_are_timed_and_scored_against_fp32(cherry_run):
    deployment = json.loads((cherry_run / "deployment.json").read_text())
    rows = deployment["variants"]
    assert list(rows) == ["eager", "channels_last", "ort_fp32", "ort_int8"]
    for name, row in rows.items():
        assert row["latency_ms_p50"] > 0 and row["latency_threads"] == 2, name
    # fp32 variants compute the same function: every prediction agrees
    for name in ("channels_last", "ort_fp32"):
        assert rows[name]["agreement"] == 1.0 and rows[name]["accuracy_delta"] == 0.0, name
    int8 = rows["ort_int8"]
    assert int8["agreement"] >= 0.9 and int8["accuracy_delta"] >= -0.1
    assert deployment["best_variant"] in rows
    metrics = json.loads((cherry_run / "smoke_metrics.json").read_text())
    assert metrics["deploy/best_variant"] == deployment["best_variant"]
    assert metrics["deploy/ort_fp32/speedup"] == pytest.approx(
        rows["eager"]["latency_ms_p50"] / rows["ort_fp32"]["latency_ms_p50"])
    assert "latency_ms_p50" in metrics  # eager fp32 keeps its usual keys


def test_run_writes_onnx_files_and_records_versions(cherry_run):
    record = json.loads((cherry_run / "run.json").read_text())["onnx"]
    assert record["parity_max_abs"] <= 1e-4 * max(1.0, record["output_max_abs"]) and record["opset"] >= 18
    assert {"onnx", "onnxruntime", "torch"} <= set(record)
    assert (cherry_run / record["file"]).stat().st_size > 0
    assert (cherry_run / record["int8_file"]).stat().st_size < (cherry_run / record["file"]).stat().st_size


def test_export_task_writes_a_checked_graph_for_an_existing_run(cherry_run, tmp_path):
    import numpy as np
    import onnxruntime as ort

    out = tmp_path / "export"
    proc = run_cli(["task=export", f"ckpt={cherry_run}/checkpoints/best.ckpt", "format=onnx",
                    f"hydra.run.dir={out}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "max |onnx - torch|" in proc.stdout
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "ok" and record["source_exp"] == "cherry_resnet18_aug_unnorm"
    assert record["onnx"]["parity_max_abs"] <= 1e-4 * max(1.0, record["onnx"]["output_max_abs"])
    session = ort.InferenceSession(str(out / "checkpoints/model.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": np.random.rand(2, 3, 32, 32).astype(np.float32) * 255})[0]
    assert logits.shape == (2, 2)


def test_export_of_an_embedding_head(tmp_path, cache_dir):
    run_dir, out = tmp_path / "run", tmp_path / "export"
    proc = run_cli(["+exp=clf_dinov3_vits16_mlp256", "+smoke=cpu", "profile=calib", f"hydra.run.dir={run_dir}"], REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_cli(["task=export", f"ckpt={run_dir}/checkpoints/best.ckpt", f"hydra.run.dir={out}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    onnx = json.loads((out / "run.json").read_text())["onnx"]
    assert onnx["parity_max_abs"] <= 1e-4 * max(1.0, onnx["output_max_abs"])


def test_export_outside_a_run_folder_names_the_fix(tmp_path):
    stray = tmp_path / "model.ckpt"
    stray.write_bytes(b"not a checkpoint")
    proc = run_cli(["task=export", f"ckpt={stray}", f"hydra.run.dir={tmp_path / 'out'}"], tmp_path)
    assert proc.returncode != 0
    assert "resolved_config.yaml" in proc.stderr and "Fix:" in proc.stderr


def test_export_of_a_detector_is_refused_with_a_reason(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    proc = run_cli(["+exp=sardet_lora_r16_fc1fc2", "+smoke=cpu", "--cfg", "job", "--resolve"], REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir / "resolved_config.yaml").write_text(proc.stdout)
    (run_dir / "checkpoints" / "best.ckpt").write_bytes(b"")
    proc = run_cli(["task=export", f"ckpt={run_dir}/checkpoints/best.ckpt", f"hydra.run.dir={tmp_path / 'out'}"],
                   tmp_path)
    assert proc.returncode != 0
    assert "no ONNX export path" in proc.stderr


def test_unknown_variant_stops_before_training(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    proc = run_cli(["+exp=cherry_resnet18_aug_unnorm", "+smoke=cpu", *FAST, "task.module.latency.variants=[eager,tensorrt]",
                    f"hydra.run.dir={run_dir}"], REPO)
    assert proc.returncode == 1
    assert "unknown latency variant(s) ['tensorrt']" in proc.stderr and "Fix:" in proc.stderr
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert not (run_dir / "checkpoints").exists()  # nothing was trained
