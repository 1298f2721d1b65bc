"""Reading re-ID datasets from disk: identity folders, Market-1501 file names, held-out identities.

Two layouts:

- identity folders (hand datasets such as 11k Hands): ``<split>/<identity>/*.jpg``, no cameras;
- Market-1501: flat folders of ``PPPP_cCsS_FFFFFF_NN.jpg`` (pid, camera, sequence, frame, box index).
  pid -1 is junk (dropped everywhere), pid 0 a distractor (kept only where ``keep_distractors``, i.e.
  in the gallery, as a negative). Cameras are returned 0-based (``c1`` -> 0), as torchreid does.

The held-out draw turns a fraction or count of training identities into a validation set, seeded.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from zoolab.data.image_folder import IMAGE_EXTENSIONS
from zoolab.errors import ZoolabError
from zoolab.metrics.reid import JUNK_PID

__all__ = [
    "ReidSample",
    "draw_held_out",
    "parse_market_name",
    "read_identity_folders",
    "read_market_dir",
]

MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)")
DISTRACTOR_PID = 0  # Market-1501 "0000": background boxes, kept in the gallery as negatives


class ReidSample(NamedTuple):
    path: Path
    pid: int
    camid: int


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def read_identity_folders(split_dir: Path) -> dict[str, list[Path]]:
    """``{identity folder name: sorted image paths}`` for ``<split_dir>/<identity>/*``, names sorted."""
    folders = sorted(p for p in split_dir.iterdir() if p.is_dir())
    if not folders:
        raise ZoolabError(f"no identity folders in {split_dir}", where=str(split_dir),
                          fix=f"put images at {split_dir}/<identity>/*.jpg")
    identities = {}
    for folder in folders:
        images = _images_in(folder)
        if not images:
            raise ZoolabError(
                f"identity folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})",
                where=str(folder), fix="add the identity's images or remove the empty folder")
        identities[folder.name] = images
    return identities


def parse_market_name(name: str) -> tuple[int, int]:
    """``(pid, 0-based camera)`` from a Market-1501 file name such as ``0002_c1s1_000451_03.jpg``."""
    match = MARKET_NAME.match(name)
    if match is None or int(match.group(2)) < 1:
        raise ZoolabError(
            f"'{name}' is not a Market-1501 file name (expected PPPP_cCsS_FFFFFF_NN.jpg, camera C >= 1)",
            where=name, fix="rename or remove the file, or use protocol=single_gallery for identity folders")
    return int(match.group(1)), int(match.group(2)) - 1


def read_market_dir(folder: Path, keep_distractors: bool) -> list[ReidSample]:
    """Samples of one Market-1501 folder, sorted by file name, junk (pid -1) dropped."""
    samples = []
    for path in _images_in(folder):
        pid, camid = parse_market_name(path.name)
        if pid == JUNK_PID or (pid == DISTRACTOR_PID and not keep_distractors):
            continue
        samples.append(ReidSample(path, pid, camid))
    if not samples:
        raise ZoolabError(f"no usable Market-1501 images in {folder}", where=str(folder),
                          fix="check that the folder holds the dataset's .jpg files")
    return samples


def draw_held_out(identities: list, eligible: list, amount: float, seed: int, where: str) -> list:
    """A seeded draw of ``amount`` identities from ``eligible`` (a fraction of all ``identities`` when
    ``amount < 1``, at least 2 so that ranking means something; a count when ``>= 1``), returned in the
    order of ``identities``. 0 draws none."""
    if amount < 0:
        raise ZoolabError(f"{where} must be >= 0, got {amount}", where=where,
                          fix="use a fraction (0.2) or a count (10) of training identities, or 0 for none")
    if amount == 0:
        return []
    count = max(2, int(round(amount * len(identities)))) if amount < 1 else int(amount)
    if count < 2 or count > len(eligible) or count >= len(identities):
        raise ZoolabError(
            f"{where}={amount} asks for {count} validation identities; at least 2 are needed, at most "
            f"{min(len(eligible), len(identities) - 1)} can be held out ({len(eligible)} of "
            f"{len(identities)} training identities have enough images for a query and a gallery entry)",
            where=where, fix="choose a different fraction/count, or 0 to skip validation")
    rng = np.random.default_rng(seed)
    chosen = {eligible[i] for i in rng.choice(len(eligible), count, replace=False)}
    return [identity for identity in identities if identity in chosen]
