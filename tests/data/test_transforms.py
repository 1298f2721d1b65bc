"""Tests for zoolab.data.transforms: profile outputs, determinism and the motion-blur kernel."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from zoolab.data.transforms import AUGMENT_PROFILES, MotionBlur, build_transform
from zoolab.errors import ZoolabError

SIZE = 32


@pytest.fixture
def photo() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (45, 60, 3), dtype=np.uint8))


def _checkerboard(size: int = 32, square: int = 4) -> torch.Tensor:
    yy, xx = np.mgrid[0:size, 0:size]
    board = ((yy // square + xx // square) % 2 * 255).astype(np.uint8)
    return torch.from_numpy(board)[None].repeat(3, 1, 1)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("profile", AUGMENT_PROFILES)
def test_every_profile_returns_uint8_chw_of_the_requested_size(photo, profile, train):
    torch.manual_seed(0)
    random.seed(0)
    out = build_transform(SIZE, profile, train=train)(photo)
    assert isinstance(out, torch.Tensor)
    assert out.dtype == torch.uint8 and out.shape == (3, SIZE, SIZE)


def test_profiles_are_the_documented_three():
    assert AUGMENT_PROFILES == ("none", "standard", "enhanced")
    with pytest.raises(ZoolabError, match="fancy"):
        build_transform(SIZE, "fancy")


def test_none_train_pipeline_is_deterministic(photo):
    transform = build_transform(SIZE, "none", train=True)
    first = transform(photo)
    for seed in range(3):
        torch.manual_seed(seed)
        random.seed(seed)
        assert torch.equal(transform(photo), first)
    assert torch.equal(first, build_transform(SIZE, "enhanced", train=False)(photo))


def test_standard_train_pipeline_is_random(photo):
    transform = build_transform(SIZE, "standard", train=True)
    torch.manual_seed(0)
    outs = [transform(photo) for _ in range(3)]
    assert not all(torch.equal(outs[0], o) for o in outs[1:])


@pytest.mark.parametrize("size", [3, 5, 7, 9])
def test_line_kernel_sums_to_one_and_is_point_symmetric(size):
    rng = random.Random(size)
    for angle in [0.0, 45.0, 90.0, 135.0, 180.0] + [rng.uniform(0, 180) for _ in range(50)]:
        kernel = MotionBlur.line_kernel(size, angle)
        assert kernel.shape == (size, size)
        assert torch.isclose(kernel.sum(), torch.tensor(1.0), atol=1e-6)
        assert (kernel >= 0).all()
        c = size // 2
        assert kernel[c, c] > 0, "the line passes through the centre"
        assert (kernel > 0).sum() >= size // 2 + 1, "a line through the kernel, not a dot"
        assert torch.equal(kernel, torch.flip(kernel, dims=(0, 1))), f"asymmetric at size={size}, angle={angle}"


def test_line_kernel_is_point_symmetric_at_tie_angles():
    kernel = MotionBlur.line_kernel(7, 60.0)
    assert torch.equal(kernel, torch.flip(kernel, dims=(0, 1)))


@pytest.mark.parametrize("seed", range(5))
def test_motion_blur_changes_a_checkerboard_but_keeps_its_mean(seed):
    board = _checkerboard()
    random.seed(seed)
    out = MotionBlur(p=1.0)(board)
    assert out.dtype == torch.uint8 and out.shape == board.shape
    assert (out != board).float().mean() > 0.3
    assert abs(out.float().mean().item() - board.float().mean().item()) < 3.0
    random.seed(seed)
    assert torch.equal(MotionBlur(p=1.0)(board[None]), out[None]), "batched input blurs the same way"


def test_motion_blur_with_p_zero_is_the_identity():
    board = _checkerboard()
    blur = MotionBlur(p=0.0)
    for seed in range(10):
        random.seed(seed)
        assert blur(board) is board
