"""Tests for zoolab.backbones.open_clip_backbone (OpenClipBackbone) and zoolab.adapters.clip (VisualBlocks).

Tiny CLIP configurations (model_cfg overrides) everywhere except one test that builds the real ViT-B-16
and RN50 architectures (random init) to check widths and the 2-D positional-embedding resizing.
"""

from __future__ import annotations

import math

import pytest
import torch

from zoolab.adapters.clip import VisualBlocks
from zoolab.backbones.open_clip_backbone import OpenClipBackbone, build_clip_model, resize_grid_pos_embed
from zoolab.errors import ZoolabError

TINY_VIT = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "width": 64, "layers": 2, "head_width": 32,
                                            "patch_size": 16},
            "text_cfg": {"width": 64, "layers": 2, "heads": 2}}
TINY_RN = {"embed_dim": 32,
           "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16, "head_width": 16},
           "text_cfg": {"width": 64, "layers": 2, "heads": 2}}
TEMPLATE = "A photo of a X person."


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_vit(image_size=(32, 32), seed=0, **kwargs) -> OpenClipBackbone:
    torch.manual_seed(seed)
    return OpenClipBackbone("ViT-B-16", image_size=list(image_size), model_cfg=TINY_VIT, **kwargs)


def tiny_rn(image_size=(64, 64), seed=0) -> OpenClipBackbone:
    torch.manual_seed(seed)
    return OpenClipBackbone("RN50", image_size=list(image_size), model_cfg=TINY_RN)


@pytest.fixture(scope="module")
def vit() -> OpenClipBackbone:
    return tiny_vit().eval()


def _images(batch: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 255


# ------------------------------------------------------------------------------------- architecture
def test_real_vit_b16_and_rn50_widths_and_2d_pos_embed_resize():
    vit = OpenClipBackbone("ViT-B-16", image_size=[224, 128], quick_gelu=True)
    assert (vit.embed_dim, vit.token_dim) == (512, 512)
    assert vit.visual.positional_embedding.shape == (14 * 8 + 1, 768)
    assert vit.visual.grid_size == (14, 8) and vit.visual.image_size == (224, 128)
    assert vit.text.text_projection.shape == (512, 512)

    rn = OpenClipBackbone("RN50", image_size=[64, 64], quick_gelu=True).eval()
    assert (rn.embed_dim, rn.token_dim) == (1024, 512)
    assert rn.visual.attnpool.positional_embedding.shape == (2 * 2 + 1, 2048)
    with torch.no_grad():
        global_feature, tokens = rn.encode_image(_images(1, 64, 64))
    assert global_feature.shape == (1, 1024) and tokens.shape == (1, 4, 1024)
    # RN50 at 224x128: the 7x7 grid becomes 7x4 (+ the mean-token row).
    resized = resize_grid_pos_embed(rn.visual.attnpool.positional_embedding.detach(), (2, 2), (7, 4))
    assert resized.shape == (29, 2048)


def test_pos_embed_resize_keeps_prefix_row_is_2d_and_identity_at_native_size():
    torch.manual_seed(0)
    pos = torch.randn(1 + 4 * 4, 8)
    assert resize_grid_pos_embed(pos, (4, 4), (4, 4)) is pos
    resized = resize_grid_pos_embed(pos, (4, 4), (4, 2))
    assert resized.shape == (1 + 8, 8)
    assert torch.equal(resized[0], pos[0])
    # A grid whose value depends only on the row keeps each row's value when only the width changes:
    # a 1-D interpolation of the flattened grid (CLIP-FH quirk #15) would mix rows.
    rows = torch.arange(4.0).repeat_interleave(4)[:, None].expand(-1, 8)
    by_row = torch.cat([torch.full((1, 8), -5.0), rows])
    out = resize_grid_pos_embed(by_row, (4, 4), (4, 2))
    assert torch.allclose(out[1:, 0], torch.arange(4.0).repeat_interleave(2), atol=1e-5)
    with pytest.raises(ValueError):
        resize_grid_pos_embed(pos, (3, 3), (4, 2))


def test_tiny_vit_resize_updates_grid_and_keeps_class_row():
    native, resized = tiny_vit((32, 32)), tiny_vit((64, 32))
    assert resized.visual.grid_size == (4, 2) and resized.visual.image_size == (64, 32)
    assert resized.visual.positional_embedding.shape == (9, 64)
    assert torch.equal(resized.visual.positional_embedding[0], native.visual.positional_embedding[0])
    assert resized.visual.positional_embedding.requires_grad
    with torch.no_grad():
        global_feature, tokens = resized.eval().encode_image(_images(2, 64, 32))
    assert global_feature.shape == (2, 32) and tokens.shape == (2, 8, 32)


def test_vit_tokens_are_patch_tokens_through_ln_post_and_proj(vit):
    x = _images(2, 32, 32)
    with torch.no_grad():
        global_feature, tokens = vit.encode_image(x)
        visual = vit.visual
        hidden = visual.transformer(visual._embeds(vit.preprocess(x)))
        expected = visual.ln_post(hidden) @ visual.proj
    assert torch.allclose(global_feature, expected[:, 0], atol=1e-5)
    assert torch.allclose(tokens, expected[:, 1:], atol=1e-5)


def test_rn50_tokens_live_in_the_attention_pool_output_space():
    rn = tiny_rn().eval()
    pool = rn.visual.attnpool
    with torch.no_grad():  # uniform attention: the pool output is the mean of all value vectors
        for proj in (pool.q_proj, pool.k_proj):
            proj.weight.zero_()
            proj.bias.zero_()
        x = _images(2, 64, 64)
        global_feature, tokens = rn.encode_image(x)
        v = rn.visual
        fmap = v.layer4(v.layer3(v.layer2(v.layer1(v.stem(rn.preprocess(x))))))
        mean_token = fmap.flatten(2).mean(dim=2) + pool.positional_embedding[0]
        mean_value = pool.c_proj(pool.v_proj(mean_token))
    assert tokens.shape == (2, 4, 32)
    expected = (mean_value + tokens.sum(dim=1)) / 5
    assert torch.allclose(global_feature, expected, atol=1e-5)


def test_quick_gelu_flag_switches_both_towers():
    from open_clip.transformer import QuickGELU

    assert not isinstance(tiny_vit().visual.transformer.resblocks[0].mlp.gelu, QuickGELU)
    quick = tiny_vit(quick_gelu=True)
    assert isinstance(quick.visual.transformer.resblocks[0].mlp.gelu, QuickGELU)
    assert isinstance(quick.text.transformer.resblocks[0].mlp.gelu, QuickGELU)


def test_normalize_applies_clip_mean_std_on_0_255_input(vit):
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    x = _images(1, 32, 32)
    mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    assert torch.allclose(vit.preprocess(x), (x / 255 - mean) / std, atol=1e-5)
    raw = tiny_vit(normalize=False)
    assert torch.equal(raw.preprocess(x), x)


# ----------------------------------------------------------------------------------------------- text
def test_text_tower_frozen_and_kept_in_eval_mode():
    b = tiny_vit()
    assert not any(p.requires_grad for p in b.text.parameters())
    assert all(p.requires_grad for p in b.visual.parameters())
    b.train()
    assert b.visual.training and not b.text.training
    assert not any(m.training for m in b.text.modules())


def test_encode_text_equals_open_clip_full_77_token_computation():
    torch.manual_seed(0)
    clip = build_clip_model("ViT-B-16", TINY_VIT).eval()
    b = tiny_vit()
    assert torch.equal(b.text.token_embedding.weight, clip.token_embedding.weight)
    texts = [TEMPLATE, "A photo of a person.", "a much longer sentence about the dorsal side of a right hand"]
    ids = b.tokenize(texts)
    assert ids.shape == (3, 77) and ids[0, :9].tolist() == [49406, 320, 1125, 539, 320, 343, 2533, 269, 49407]
    with torch.no_grad():
        full = clip.encode_text(ids)  # all 77 positions, open_clip's own code
    truncated = b.encode_text(texts)  # only up to the last EOT position
    assert torch.allclose(truncated, full, atol=1e-5)


def test_pseudo_token_with_the_real_placeholder_embedding_reproduces_encode_text(vit):
    assert vit.placeholder_position(TEMPLATE) == 5
    real = vit.text.token_embedding.weight[343].detach().expand(3, -1)
    with torch.no_grad():
        injected = vit.encode_text_with_pseudo_token(TEMPLATE, real)
        plain = vit.encode_text([TEMPLATE] * 3)
    assert torch.equal(injected, plain)


def test_pseudo_token_changes_output_and_receives_gradient(vit):
    pseudo = torch.randn(2, vit.token_dim, requires_grad=True)
    out = vit.encode_text_with_pseudo_token(TEMPLATE, pseudo)
    assert out.shape == (2, 32)
    assert (out[0] - out[1]).abs().max() > 1e-4
    out.pow(2).sum().backward()
    assert pseudo.grad is not None and pseudo.grad.abs().sum(dim=1).min() > 0
    assert all(p.grad is None for p in vit.text.parameters())


def test_placeholder_must_be_one_token_occurring_once(vit):
    pseudo = torch.zeros(1, vit.token_dim)
    with pytest.raises(ZoolabError, match="exactly one"):
        vit.encode_text_with_pseudo_token("A photo of a zoolabification person.", pseudo,
                                          placeholder="zoolabification")
    with pytest.raises(ZoolabError, match="0 times"):
        vit.encode_text_with_pseudo_token("A photo of a person.", pseudo)
    with pytest.raises(ZoolabError, match="2 times"):
        vit.encode_text_with_pseudo_token("X and X.", pseudo)


# ------------------------------------------------------------------------------------ weights, errors
def test_local_weights_file_is_loaded(tmp_path):
    torch.manual_seed(1)
    source = build_clip_model("ViT-B-16", TINY_VIT)
    path = tmp_path / "tiny_clip.pt"
    torch.save(source.state_dict(), path)
    b = tiny_vit(seed=2, pretrained=True, weights=str(path))
    assert torch.equal(b.text.token_embedding.weight, source.token_embedding.weight)
    assert torch.equal(b.visual.proj, source.visual.proj)
    assert torch.equal(b.visual.transformer.resblocks[1].mlp.c_fc.weight,
                       source.visual.transformer.resblocks[1].mlp.c_fc.weight)


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")
def test_torchscript_archive_is_loaded_like_openai_pt_files(tmp_path):
    """OpenAI's ViT-B-16.pt / RN50.pt are TorchScript, which weights_only loading refuses on torch >= 2.6."""
    torch.manual_seed(1)
    source = build_clip_model("ViT-B-16", TINY_VIT)
    path = tmp_path / "tiny_clip_torchscript.pt"
    torch.jit.save(torch.jit.script(source), str(path))
    b = tiny_vit(seed=2, pretrained=True, weights=str(path))
    assert torch.equal(b.visual.proj, source.visual.proj)
    assert torch.equal(b.text.token_embedding.weight, source.token_embedding.weight)


def test_weights_are_required_local_and_never_downloaded(tmp_path):
    with pytest.raises(ZoolabError, match="local weights files only"):
        OpenClipBackbone("ViT-B-16", pretrained=True, weights=None, model_cfg=TINY_VIT, image_size=[32, 32])
    with pytest.raises(ZoolabError, match="does not exist"):
        OpenClipBackbone("ViT-B-16", pretrained=True, weights=str(tmp_path / "missing.pt"),
                         model_cfg=TINY_VIT, image_size=[32, 32])


def test_bad_name_and_image_size_are_clear_errors():
    with pytest.raises(ZoolabError, match="unknown open_clip model"):
        OpenClipBackbone("ViT-B-61", model_cfg=TINY_VIT)
    with pytest.raises(ZoolabError, match="multiple"):
        OpenClipBackbone("ViT-B-16", model_cfg=TINY_VIT, image_size=[40, 32])


def test_model_cfg_does_not_touch_open_clip_registry():
    import open_clip

    tiny_vit()
    assert open_clip.get_model_config("ViT-B-16")["vision_cfg"]["width"] == 768
    assert open_clip.get_model_config("ViT-B-16")["embed_dim"] == 512


# ---------------------------------------------------------------------------------------- VisualBlocks
def _trainable(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_visual_blocks_trainable_counts_on_tiny_vit():
    w, embed, grid = 64, 32, 2 * 2
    block = 12 * w * w + 13 * w  # attn in/out proj, 2 LayerNorms, 4x MLP
    head = 2 * w + w * embed  # ln_post + proj
    stem = 3 * w * 16 * 16 + w + (grid + 1) * w + 2 * w  # conv1, class token, pos-emb, ln_pre

    expected = {0: 0, 2: 2 * block + head, None: stem + 2 * block + head}
    for n, count in expected.items():
        b = tiny_vit()
        adapter = VisualBlocks(unfreeze_last=n, lr=1e-5)
        adapter.apply(b)
        assert _trainable(b) == count, n
        assert _trainable(b.text) == 0
        groups = adapter.param_groups(b, 1e-3)
        assert sum(p.numel() for g in groups for p in g["params"]) == count
        assert all(g["lr"] == 1e-5 for g in groups)

    b = VisualBlocks(unfreeze_last=1).apply(tiny_vit())
    assert _trainable(b) == block + head
    assert not b.visual.transformer.resblocks[0].attn.in_proj_weight.requires_grad
    assert "lr" not in VisualBlocks(unfreeze_last=1).param_groups(b, 1e-3)[0]
    with pytest.raises(ZoolabError, match="only 2 blocks"):
        VisualBlocks(unfreeze_last=3).apply(tiny_vit())


def test_visual_blocks_on_resnet_unfreezes_last_stages_and_attnpool():
    b = VisualBlocks(unfreeze_last=1).apply(tiny_rn())
    trainable = {n.split(".")[1] for n, p in b.named_parameters() if p.requires_grad}
    assert trainable == {"layer4", "attnpool"}
    b = VisualBlocks(unfreeze_last=2).apply(tiny_rn())
    trainable = {n.split(".")[1] for n, p in b.named_parameters() if p.requires_grad}
    assert trainable == {"layer3", "layer4", "attnpool"}
    assert math.isclose(_trainable(b.text), 0)
