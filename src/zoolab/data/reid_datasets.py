"""Re-ID image datasets: training items with optional augmentation, and evaluation sets that describe their split.

Items are ``(image, label, camid, index)``: ``image`` a uint8 CHW tensor, read with PIL, converted to RGB
and resized (bicubic) to ``image_size`` (H, W); ``label`` the contiguous class index for training and
the pid for evaluation; ``camid`` 0-based (0 when the layout has no cameras); ``index`` the position in
the dataset, so features can be put back in dataset order. Normalisation belongs to the backbone.

Training augmentation (``augment`` dict, all off when None, as in CLIP-FH): ``hflip`` (probability of a
horizontal flip), ``pad`` (zero-pad by this many pixels, then randomly crop back to the input size),
``random_erasing`` (probability of replacing a random rectangle, 2-40 % of the area, aspect 0.3-3.3,
with uniform noise; Zhong et al. 2020). These are the Market recipe of CLIP-ReID / PromptSG.

Evaluation sets describe their split as plain data (``describe()``: the protocol, pids, camera ids and
the protocol's settings); they compute nothing. ``zoolab.evaluators.reid.reid_evaluator(description)``
builds the evaluator that ranks features of the split:

- ``SingleGalleryEvalSet``: the hand protocol (``protocol: single_gallery``), ``num_splits`` seeded
  single-gallery splits (``seed``); no cameras.
- ``QueryGalleryEvalSet``: fixed query and gallery (``protocol: query_gallery``, Market-1501), queries
  first; ``num_queries`` / ``num_gallery`` and camera ids for the same-camera rule.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms import RandomErasing

from zoolab.data.reid_layouts import ReidSample
from zoolab.errors import ZoolabError

__all__ = [
    "AUGMENT_KEYS",
    "QueryGalleryEvalSet",
    "ReidImageDataset",
    "SingleGalleryEvalSet",
    "augment_image",
    "check_augment",
    "load_image",
]

AUGMENT_KEYS = ("hflip", "pad", "random_erasing")
ERASE_SCALE, ERASE_RATIO = (0.02, 0.4), (0.3, 3.3)


def check_augment(augment: dict | None) -> dict:
    """Validated copy of the ``augment`` dict; unknown keys and out-of-range values are errors."""
    augment = dict(augment or {})
    unknown = sorted(set(augment) - set(AUGMENT_KEYS))
    if unknown:
        raise ZoolabError(f"unknown re-ID augmentation key(s) {unknown}", where="dataset.augment",
                          fix=f"use only {', '.join(AUGMENT_KEYS)} (or augment=null for none)")
    for key in ("hflip", "random_erasing"):
        if key in augment and not 0.0 <= float(augment[key]) <= 1.0:
            raise ZoolabError(f"dataset.augment.{key} is a probability, got {augment[key]}",
                              where=f"dataset.augment.{key}", fix="use a value in [0, 1]")
    if "pad" in augment and (int(augment["pad"]) != augment["pad"] or augment["pad"] < 0):
        raise ZoolabError(f"dataset.augment.pad must be a whole number of pixels >= 0, got {augment['pad']}",
                          where="dataset.augment.pad", fix="e.g. pad: 10")
    return augment


def load_image(path, image_size: tuple[int, int]) -> torch.Tensor:
    """uint8 CHW tensor of the image at ``path``, RGB, resized (bicubic) to ``image_size`` = (H, W)."""
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise ZoolabError(f"cannot read image {path}: {exc}", where=str(path),
                          fix="replace or delete the file") from exc
    height, width = image_size
    rgb = rgb.resize((width, height), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1).contiguous()


def augment_image(image: torch.Tensor, augment: dict) -> torch.Tensor:
    """Apply the training augmentation to a uint8 CHW tensor (torch RNG, so DataLoader seeding applies)."""
    if torch.rand(()) < augment.get("hflip", 0.0):
        image = image.flip(-1)
    pad = int(augment.get("pad", 0))
    if pad:
        height, width = image.shape[-2:]
        padded = torch.nn.functional.pad(image, (pad, pad, pad, pad))
        top, left = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,)))
        image = padded[:, top:top + height, left:left + width]
    if torch.rand(()) < augment.get("random_erasing", 0.0):
        top, left, h, w, _ = RandomErasing.get_params(image, scale=ERASE_SCALE, ratio=ERASE_RATIO, value=[0])
        if (h, w) != tuple(image.shape[-2:]):  # the whole image means "no rectangle fitted in 10 tries"
            image = image.clone()
            image[:, top:top + h, left:left + w] = torch.randint(0, 256, (image.shape[0], h, w),
                                                                 dtype=image.dtype)
    return image.contiguous()


class ReidImageDataset(Dataset):
    """Samples -> ``(image, label, camid, index)``; ``labels`` default to the samples' pids."""

    def __init__(self, samples: list[ReidSample], image_size: tuple[int, int], labels=None,
                 augment: dict | None = None) -> None:
        self.samples = list(samples)
        self.image_size = tuple(image_size)
        self.labels = np.asarray([s.pid for s in self.samples] if labels is None else labels, dtype=np.int64)
        self.augment = check_augment(augment)

    @property
    def pids(self) -> np.ndarray:
        return np.asarray([s.pid for s in self.samples], dtype=np.int64)

    @property
    def camids(self) -> np.ndarray:
        return np.asarray([s.camid for s in self.samples], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int, int]:
        sample = self.samples[index]
        image = load_image(sample.path, self.image_size)
        if self.augment:
            image = augment_image(image, self.augment)
        return image, int(self.labels[index]), int(sample.camid), int(index)


class SingleGalleryEvalSet(ReidImageDataset):
    """Hand protocol: ``num_splits`` seeded splits with one gallery image per identity (metrics averaged).

    Every identity must have >= 2 images (the datamodule drops singletons with a warning)."""

    def __init__(self, samples: list[ReidSample], image_size: tuple[int, int], num_splits: int,
                 seed: int) -> None:
        super().__init__(samples, image_size)
        self.num_splits = int(num_splits)
        self.seed = int(seed)

    def describe(self) -> dict:
        """The split as data for its evaluator: ``protocol``, ``pids`` (dataset order), ``num_splits``, ``seed``."""
        return {"protocol": "single_gallery", "pids": self.pids, "num_splits": self.num_splits, "seed": self.seed}


class QueryGalleryEvalSet(ReidImageDataset):
    """Fixed query + gallery (queries first, then the gallery), Market rule: same pid + camera removed."""

    def __init__(self, query: list[ReidSample], gallery: list[ReidSample],
                 image_size: tuple[int, int]) -> None:
        super().__init__([*query, *gallery], image_size)
        self.num_queries = len(query)
        self.num_gallery = len(gallery)

    def describe(self) -> dict:
        """The split as data for its evaluator: ``protocol``, ``pids`` and ``camids`` (dataset order, queries
        first), ``num_queries``, ``num_gallery``."""
        return {"protocol": "query_gallery", "pids": self.pids, "camids": self.camids,
                "num_queries": self.num_queries, "num_gallery": self.num_gallery}
