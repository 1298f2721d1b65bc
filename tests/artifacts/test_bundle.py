"""``package`` and ``release bundle`` round-trip (unzip, every sha256 checks); an asset over the limit is
refused with nothing left behind."""

from __future__ import annotations

import hashlib
import json
import zipfile

from artifacts_runs import make_run as run_factory
from zoolab.artifacts.__main__ import main


def _tree(root):
    run_factory(root / "s0", "sardet_lora_r16_fc1fc2", "E0002", 0, {"val": 0.5, "test": 0.4})
    run_factory(root / "s1", "sardet_lora_r16_fc1fc2", "E0002", 1, {"val": 0.5, "test": 0.4})
    (root / "results.md").write_text("# Results\n")
    (root / "report_sardet.md").write_text("| ID |\n")
    return root


def test_package_round_trip(tmp_path):
    root = _tree(tmp_path / "runs")
    out = tmp_path / "metrics.zip"
    assert main(["package", str(root), "--out", str(out)]) == 0
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("manifest.json"))["files"]
        names = {e["path"] for e in manifest}
        assert names == {"s0/run.json", "s0/val_metrics.json", "s0/test_metrics.json", "s1/run.json",
                         "s1/val_metrics.json", "s1/test_metrics.json", "results.md", "report_sardet.md"}
        for entry in manifest:
            data = zf.read(entry["path"])
            assert len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_release_bundle_round_trip(tmp_path, capsys):
    root = _tree(tmp_path / "runs")
    out = tmp_path / "release"
    assert main(["release", "check", str(root), "--exp", "E0002"]) == 0
    assert main(["release", "bundle", str(root), "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    names = {e["path"] for e in manifest["assets"]}
    assert names == {"E0002_sardet_lora_r16_fc1fc2_ckpt.zip", "E0002_sardet_lora_r16_fc1fc2_logs.zip", "metrics.zip"}
    for entry in manifest["assets"]:
        data = (out / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]
        with zipfile.ZipFile(out / entry["path"]) as zf:
            assert zf.testzip() is None
    with zipfile.ZipFile(out / "E0002_sardet_lora_r16_fc1fc2_ckpt.zip") as zf:
        assert sorted(zf.namelist()) == ["s0/checkpoints/best.ckpt", "s1/checkpoints/best.ckpt"]


def test_release_check_names_missing_assets(tmp_path, capsys):
    root = tmp_path / "runs"
    run_factory(root / "s0", "sardet_lora_r16_fc2", "E0004", 0, {"val": 0.5}, checkpoints=False)
    assert main(["release", "check", str(root), "--exp", "E0004", "--exp", "E0005"]) == 1
    out = capsys.readouterr().out
    assert "E0004 sardet_lora_r16_fc2: ckpt" in out and "E0005 sardet_lora_r4_fc1fc2: ckpt (no ok run" in out


def test_asset_over_the_limit_is_refused_and_nothing_is_written(tmp_path, capsys):
    root = _tree(tmp_path / "runs")
    out = tmp_path / "release"
    assert main(["release", "bundle", str(root), "--out", str(out), "--limit", "100"]) == 1
    err = capsys.readouterr().err
    assert "over the release asset limit of 100 bytes" in err and "E0002_sardet_lora_r16_fc1fc2_ckpt.zip" in err
    assert "Nothing was written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]    # no bundle, no temporary folder
    assert main(["release", "check", str(root), "--exp", "E0002", "--limit", "100"]) == 1
    assert "OVER THE LIMIT" in capsys.readouterr().out


def test_a_bad_limit_is_a_usage_error(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit) as exc:
        main(["release", "check", str(tmp_path), "--limit", "lots"])
    assert exc.value.code == 2 and "not a size" in capsys.readouterr().err
