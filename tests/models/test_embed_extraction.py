"""Embedding extraction end to end on a tiny image tree with a tiny random-init DINOv3 ViT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from zoolab.data.embedding_cache import load_cache
from zoolab.errors import ZoolabError
from zoolab.runfolder import RunRecord
from zoolab.tasks import embed
from zoolab.families.embed import EmbedFamily
from zoolab.run_outputs import RunOutputs

CLASSES = ["cat", "dog"]
# DINOv3 ViT-S/16 at 32 px with 2 blocks: 384-d, 1 CLS + 4 register tokens + 4 patch tokens
VIT = dict(name="vit_small_patch16_dinov3", model_kwargs={"img_size": 32, "depth": 2})


@pytest.fixture(autouse=True)
def _cpu_only(monkeypatch):
    """Compare against timm on CPU (on a GPU, TF32 convolutions differ from CPU at ~1e-3)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture(scope="module")
def image_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for k, cls in enumerate(CLASSES):
        (root / cls).mkdir()
        for i in range(5):
            pixels = rng.integers(0, 255, (32, 32, 3)) // (k + 1)
            Image.fromarray(pixels.astype(np.uint8)).save(root / cls / f"img_{i}.jpg")
    # cat images in two named groups, dog/img_0-2 in one group, dog/img_3-4 not listed (own groups)
    rows = ["image,group", "cat/img_0.jpg,g_a", "cat/img_1.jpg,g_a", "./cat/img_2.jpg,g_b",
            "cat/img_3.jpg,g_b", "cat/img_4.jpg,g_b", "dog/img_0.jpg,g_c", "dog/img_1.jpg,g_c",
            "dog/img_2.jpg,g_c", "elk/x.jpg,g_z"]
    (root / "groups.csv").write_text("\n".join(rows) + "\n")
    return root


def _cfg(root: Path, out_dir: Path, pooling: str = "cls", chunk_size: int = 50, batch_size: int = 4,
         **backbone):
    bb = dict(_target_="zoolab.backbones.timm_backbone.TimmBackbone", pretrained=False, weights=None,
              input_size=32, normalize=True, global_pool=None, **VIT)
    bb.update(backbone)
    return OmegaConf.create(dict(
        seed=42,
        backbone=bb,
        dataset=dict(root=str(root), groups_csv=None, out_dir=str(out_dir), batch_size=batch_size,
                     num_workers=0, classes=None),
        task=dict(name="embed", family="zoolab.families.embed.EmbedFamily", pooling=pooling,
                  chunk_size=chunk_size),
    ))


def _run(cfg, run_dir: Path) -> dict:
    """The embed family's evaluation step as the pipeline runs it; returns embed_metrics.json."""
    EmbedFamily(cfg).evaluate(None, None, None, RunOutputs(run_dir, RunRecord(run_dir)))
    return json.loads((run_dir / "embed_metrics.json").read_text())


def _backbone_output(global_pool: str, root: Path) -> torch.Tensor:
    """What TimmBackbone itself returns with timm's pooling, for the same seed and images."""
    from zoolab.backbones.timm_backbone import TimmBackbone
    from zoolab.data.transforms import build_transform

    torch.manual_seed(42)
    model = TimmBackbone(VIT["name"], input_size=32, global_pool=global_pool,
                         model_kwargs=VIT["model_kwargs"])
    model.eval()
    transform = build_transform(32)
    paths = sorted(p for cls in CLASSES for p in (root / cls).glob("*.jpg"))
    images = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])
    with torch.inference_mode():
        return model(images)


@pytest.mark.parametrize("pooling,factor", [("cls", 1), ("mean", 1), ("both", 2)])
def test_extracts_a_cache(image_root, tmp_path, pooling, factor):
    metrics = _run(_cfg(image_root, tmp_path / "out", pooling), tmp_path / "run")
    path = Path(metrics["cache_path"])
    assert path.parent == tmp_path / "out" and path.name.startswith("vit_small_patch16_dinov3-")
    cache = load_cache(path)
    assert cache.dim == 384 * factor and len(cache) == 10 and metrics["dim"] == cache.dim
    assert cache.class_names == CLASSES and cache.labels.tolist() == [0] * 5 + [1] * 5
    assert cache.image_ids == [f"{c}/img_{i}.jpg" for c in CLASSES for i in range(5)]
    # named groups map to ids in name order; images missing from groups.csv get their own ids
    assert cache.groups.tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 3, 4]
    assert cache.meta["group_names"] == ["g_a", "g_b", "g_c"]
    assert cache.meta["pooling"] == cache.meta["pooling_used"] == pooling
    assert cache.meta["weights"] == "random-init(seed=42)" and cache.meta["synthetic"] is False
    assert metrics["reused"] is False and metrics["num_images"] == 10
    assert json.loads((tmp_path / "run" / "embed_metrics.json").read_text()) == metrics
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["cache_path"] == str(path) and {"load", "extract"} <= set(run["seconds"])
    assert not list((tmp_path / "out").glob("*.partial"))


def test_pooling_matches_timm(image_root, tmp_path):
    """cls = timm's global_pool='token', mean = timm's DINOv3 'avg' (patch tokens, registers excluded)."""
    cls = load_cache(Path(_run(_cfg(image_root, tmp_path, "cls"), tmp_path / "r1")["cache_path"]))
    both = load_cache(Path(_run(_cfg(image_root, tmp_path, "both"), tmp_path / "r2")["cache_path"]))
    token, avg = _backbone_output("token", image_root), _backbone_output("avg", image_root)
    assert torch.allclose(cls.embeddings, token, atol=1e-5)
    assert torch.allclose(both.embeddings, torch.cat([token, avg], dim=1), atol=1e-5)


def test_second_call_reuses_the_cache(image_root, tmp_path, monkeypatch):
    first = _run(_cfg(image_root, tmp_path / "out"), tmp_path / "run1")
    stamp = Path(first["cache_path"]).stat().st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("a cached setting must not be recomputed")

    monkeypatch.setattr(embed, "_embed_batch", fail)
    second = _run(_cfg(image_root, tmp_path / "out"), tmp_path / "run2")
    assert second["reused"] is True and second["cache_path"] == first["cache_path"]
    assert (second["num_images"], second["dim"]) == (10, 384)
    assert Path(first["cache_path"]).stat().st_mtime_ns == stamp


def test_changed_settings_make_new_files(image_root, tmp_path):
    out = tmp_path / "out"
    paths = {
        "cls": _run(_cfg(image_root, out, "cls"), tmp_path / "a")["cache_path"],
        "mean": _run(_cfg(image_root, out, "mean"), tmp_path / "b")["cache_path"],
        "unnormalised": _run(_cfg(image_root, out, "cls", normalize=False), tmp_path / "c")["cache_path"],
    }
    cfg = _cfg(image_root, out, "cls")
    cfg.seed = 7  # other random-init weights
    paths["seed"] = _run(cfg, tmp_path / "d")["cache_path"]
    assert len(set(paths.values())) == 4 and len(list(out.glob("*.safetensors"))) == 4


def test_resume_computes_only_missing_chunks(image_root, tmp_path, monkeypatch):
    clean = load_cache(Path(_run(_cfg(image_root, tmp_path / "clean", chunk_size=1, batch_size=2),
                                 tmp_path / "r0")["cache_path"]))
    real = embed._embed_batch
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed mid-run")
        calls["n"] += 1
        return real(*args, **kwargs)

    cfg = _cfg(image_root, tmp_path / "out", chunk_size=1, batch_size=2)
    monkeypatch.setattr(embed, "_embed_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(cfg, tmp_path / "r1")
    partial = next((tmp_path / "out").glob("*.partial"))
    chunks = sorted(p.name for p in partial.glob("chunk_*"))
    assert chunks == ["chunk_00000.safetensors", "chunk_00001.safetensors"]
    assert not list((tmp_path / "out").glob("*.safetensors"))
    assert not (tmp_path / "r1" / "embed_metrics.json").exists()

    def counting(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    calls["n"] = 0
    monkeypatch.setattr(embed, "_embed_batch", counting)
    resumed = load_cache(Path(_run(cfg, tmp_path / "r2")["cache_path"]))
    assert calls["n"] == 3  # 5 batches of 2 images, 2 already on disk
    assert torch.allclose(resumed.embeddings, clean.embeddings, atol=1e-6)
    assert resumed.image_ids == clean.image_ids and torch.equal(resumed.groups, clean.groups)
    assert not partial.exists()


def test_partial_chunks_of_another_batch_plan_are_discarded(image_root, tmp_path, monkeypatch):
    cfg = _cfg(image_root, tmp_path / "out", chunk_size=1, batch_size=2)
    real, calls = embed._embed_batch, {"n": 0}

    def interrupted(*args, **kwargs):
        if calls["n"] == 1:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(embed, "_embed_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(cfg, tmp_path / "r1")
    monkeypatch.setattr(embed, "_embed_batch", real)
    cfg.dataset.batch_size = 3  # chunk boundaries move: start over
    cache = load_cache(Path(_run(cfg, tmp_path / "r2")["cache_path"]))
    assert len(cache) == 10


def test_cnn_falls_back_to_model_pooling(image_root, tmp_path):
    metrics = _run(_cfg(image_root, tmp_path, "cls", name="resnet18", model_kwargs={}), tmp_path / "run")
    cache = load_cache(Path(metrics["cache_path"]))
    assert cache.dim == 512 and cache.meta["pooling_used"] == "model"
    assert json.loads((tmp_path / "run" / "run.json").read_text())["pooling_used"] == "model"


def test_explicit_classes_and_groups_csv(image_root, tmp_path):
    csv = tmp_path / "groups.csv"
    csv.write_text("image,group\ncat/img_0.jpg,7\ncat/img_1.jpg,7\ndog/img_4.jpg,3\n")
    cfg = _cfg(image_root, tmp_path / "out")
    cfg.dataset.classes = ["dog", "cat"]
    cfg.dataset.groups_csv = str(csv)
    cache = load_cache(Path(_run(cfg, tmp_path / "run")["cache_path"]))
    assert cache.class_names == ["dog", "cat"] and cache.labels.tolist() == [1] * 5 + [0] * 5
    assert cache.groups.tolist() == [7, 7, 8, 9, 10, 11, 12, 13, 14, 3]  # integer ids kept, the rest fresh


def test_missing_root_names_the_override(tmp_path):
    with pytest.raises(ZoolabError) as err:
        _run(_cfg(tmp_path / "nowhere", tmp_path / "out"), tmp_path / "run")
    assert err.value.where == "dataset.root" and "+smoke=cpu" in err.value.fix
    assert not (tmp_path / "run" / "embed_metrics.json").exists()


def test_missing_groups_csv_and_bad_pooling(image_root, tmp_path):
    cfg = _cfg(image_root, tmp_path / "out")
    cfg.dataset.groups_csv = str(tmp_path / "none.csv")
    with pytest.raises(ZoolabError, match="groups file"):
        _run(cfg, tmp_path / "run")
    with pytest.raises(ZoolabError) as err:
        _run(_cfg(image_root, tmp_path / "out", pooling="max"), tmp_path / "run")
    assert err.value.where == "task.pooling"


def test_unreadable_image_names_its_path(tmp_path):
    root = tmp_path / "images"
    (root / "a").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(root / "a" / "ok.jpg")
    (root / "a" / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(ZoolabError) as err:
        _run(_cfg(root, tmp_path / "out"), tmp_path / "run")
    assert str(root / "a" / "broken.jpg") in str(err.value)
    assert not (tmp_path / "run" / "embed_metrics.json").exists()
    assert not list((tmp_path / "out").glob("*.safetensors"))


ENCODERS = {  # conf/backbone option -> (timm name, dim with num_classes=0, input size, mean)
    "dinov3_vits16": ("vit_small_patch16_dinov3.lvd1689m", 384, 256, (0.485, 0.456, 0.406)),
    "dinov3_vitb16": ("vit_base_patch16_dinov3.lvd1689m", 768, 256, (0.485, 0.456, 0.406)),
    "dinov3_vitl16": ("vit_large_patch16_dinov3.lvd1689m", 1024, 256, (0.485, 0.456, 0.406)),
    "dinov3_vitl16_sat": ("vit_large_patch16_dinov3.sat493m", 1024, 256, (0.430, 0.411, 0.296)),
    "dinov3_vit7b16_sat": ("vit_7b_patch16_dinov3.sat493m", 4096, 256, (0.430, 0.411, 0.296)),
    "clip_vitl14": ("vit_large_patch14_clip_224.openai", 1024, 224, (0.48145466, 0.4578275, 0.40821073)),
}


@pytest.mark.parametrize("option", sorted(ENCODERS))
def test_backbone_configs_match_timm(option):
    """Provenance: each encoder YAML names a timm model whose cfg gives the dim, size and mean we state."""
    import timm

    from zoolab.config import CONF_DIR

    name, dim, size, mean = ENCODERS[option]
    node = OmegaConf.load(CONF_DIR / "backbone" / f"{option}.yaml")
    assert node.name == name and timm.is_model(name) and node.input_size == size and node.normalize is True
    with torch.device("meta"):  # no memory, no weights: the 7B model builds in about a second
        model = timm.create_model(name, pretrained=False, num_classes=0, **node.model_kwargs)
    data = timm.data.resolve_model_data_config(model)
    assert model.num_features == dim and data["input_size"] == (3, size, size)
    assert data["mean"] == pytest.approx(mean) and embed._norm_stats(name, {})[0] == pytest.approx(mean)
