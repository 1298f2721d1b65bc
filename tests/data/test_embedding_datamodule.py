"""EmbeddingDataModule refuses a cache made by another encoder than the experiment's."""

from __future__ import annotations

import logging

import pytest
import torch

from zoolab.data.embedding_cache import EmbeddingCache, save_cache
from zoolab.data.embedding_datamodule import EmbeddingDataModule
from zoolab.errors import ZoolabError

VITS = "vit_small_patch16_dinov3.lvd1689m"
VITL = "vit_large_patch16_dinov3.lvd1689m"


def _cache(tmp_path, meta: dict, dim: int = 8):
    n = 60
    labels = torch.arange(n) % 3
    cache = EmbeddingCache(torch.randn(n, dim, generator=torch.Generator().manual_seed(0)), labels,
                           torch.arange(n) // 2, [f"{i}.jpg" for i in range(n)], ["a", "b", "background"], meta)
    return str(save_cache(tmp_path / "dinov3_vits16.safetensors", cache))


def _setup(path: str, backbone: str | None) -> EmbeddingDataModule:
    dm = EmbeddingDataModule(cache=path, encoder="dinov3_vits16", backbone=backbone)
    dm.setup()
    return dm


def test_cache_of_the_experiments_encoder_loads(tmp_path):
    assert _setup(_cache(tmp_path, {"backbone": VITS}), VITS).dim == 8


def test_cache_of_another_encoder_names_file_contents_expectation_and_fix(tmp_path):
    path = _cache(tmp_path, {"backbone": VITL, "dim": 16}, dim=16)
    with pytest.raises(ZoolabError) as info:
        _setup(path, VITS)
    message = str(info.value)
    for needle in (path, f"60 16-d embeddings of '{VITL}'", f"'{VITS}' (backbone.name", "embed_dinov3_vits16"):
        assert needle in message


def test_cache_without_encoder_record_loads_with_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="zoolab.data.embedding_datamodule"):
        assert _setup(_cache(tmp_path, {}), VITS).dim == 8
    assert "does not record its encoder" in caplog.text


def test_no_expected_backbone_skips_the_check(tmp_path):
    assert _setup(_cache(tmp_path, {"backbone": VITL}), None).dim == 8


@pytest.mark.parametrize(("sampler", "expected"), [
    ("natural", [16 / 21, 4 / 21, 1 / 21]),
    ("balanced", [1 / 3, 1 / 3, 1 / 3]),
    ("sqrt", [4 / 7, 2 / 7, 1 / 7]),  # proportional to sqrt(400), sqrt(100), sqrt(25)
])
def test_samplers_draw_classes_in_their_proportions(tmp_path, sampler, expected):
    dm = _setup(_cache(tmp_path, {"backbone": VITS}), VITS)
    y = torch.cat([torch.full((n,), c) for c, n in enumerate((400, 100, 25))])
    dm.tensors["train"] = (torch.zeros(len(y), 8), y)
    torch.manual_seed(0)
    drawn = torch.cat([labels for _ in range(10) for _, labels in dm.loader("train", shuffle=True, sampler=sampler)])
    share = torch.bincount(drawn, minlength=3).float() / len(drawn)
    assert share.tolist() == pytest.approx(expected, abs=0.02)


def test_unknown_sampler_names_the_choices(tmp_path):
    with pytest.raises(ZoolabError, match="natural, balanced, sqrt"):
        EmbeddingDataModule(cache=_cache(tmp_path, {"backbone": VITS}), encoder="dinov3_vits16", sampler="uniform")
