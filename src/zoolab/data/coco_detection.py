"""COCO-format detection data (SARDet-100K layout): parsing with MMDetection's filters, splits, loaders.

Layout: ``<root>/Annotations/{train,val,test}.json`` (COCO instances, bbox only) and
``<root>/JPEGImages/{train,val,test}/``. Classes are matched to the JSON's categories **by name**, so the
label index always follows ``classes`` whatever ids the file uses.

Annotation filtering follows MMDetection's ``CocoDataset.parse_data_info``: annotations flagged
``ignore``, with no overlap with the image, ``area <= 0``, ``w < 1`` or ``h < 1`` are dropped; ``iscrowd``
ones are kept out of the training targets (they stay in the JSON that evaluation reads); annotations of
categories outside ``classes`` are skipped with one warning. Boxes partly outside the image are clipped.
The training split also applies MMDetection's ``filter_empty_gt`` and ``min_size`` image filters; unlike
MMDetection, "empty" means no box survived the filters above (MMDetection keeps an image whose only
annotations are crowd or degenerate ones).

Images are returned at their original size as float32 CHW in [0, 1]; the detector resizes them and maps
its boxes back, so evaluation happens in the JSON's pixel coordinates.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections import Counter, defaultdict
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from zoolab.callbacks.seeded_loader import eval_loader_kwargs, train_loader
from zoolab.data.image_folder import load_rgb
from zoolab.errors import ZoolabError

__all__ = [
    "CocoDetectionSplit",
    "CocoDetectionDataModule",
    "collate_detection",
    "parse_coco_detection",
    "ImageRecord",
    "SPLITS",
]

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
DEFAULT_ROOT = Path("data/SARDet_100K")
LAYOUT = "<root>/Annotations/{train,val,test}.json and <root>/JPEGImages/{train,val,test}/*.jpg"


@dataclasses.dataclass(frozen=True)
class ImageRecord:
    """One image and its kept training targets (xyxy boxes in pixels, 0-based labels)."""

    image_id: int
    path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray


def _read_json(annotation_file: Path) -> dict:
    try:
        with open(annotation_file) as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise ZoolabError(
            f"cannot read COCO annotations {annotation_file}: {exc}",
            where=str(annotation_file),
            fix="restore the file from the dataset download",
        ) from exc
    missing = [key for key in ("images", "annotations", "categories") if key not in data]
    if missing:
        raise ZoolabError(
            f"{annotation_file} is not a COCO instances file: it lacks {missing}",
            where=str(annotation_file),
            fix="point dataset.root at a COCO-format dataset",
        )
    return data


def _category_ids_by_name(categories: list[dict], classes: list[str], annotation_file: Path) -> list[int]:
    """Label index -> JSON category id, matched by name (never by assumed id order)."""
    ids_by_name: dict[str, list[int]] = defaultdict(list)
    for category in categories:
        ids_by_name[category["name"]].append(int(category["id"]))
    found = [f"{c['name']} (id {c['id']})" for c in categories]
    missing = [name for name in classes if name not in ids_by_name]
    if missing:
        raise ZoolabError(
            f"classes {missing} are not categories of {annotation_file}; "
            f"it has: {', '.join(found) or 'none'}",
            where="dataset.classes",
            fix="spell dataset.classes as the JSON's category names",
        )
    duplicated = [name for name in classes if len(ids_by_name[name]) > 1]
    if duplicated:
        raise ZoolabError(
            f"category names {duplicated} appear more than once in {annotation_file}: {', '.join(found)}",
            where=str(annotation_file),
            fix="give every category a unique name",
        )
    return [ids_by_name[name][0] for name in classes]


def _keep_box(ann: dict, width: int, height: int, skipped: Counter) -> list[float] | None:
    """Apply MMDetection's per-annotation filters; return the clipped xyxy box or None."""
    x, y, w, h = (float(v) for v in ann["bbox"])
    overlap_w = max(0.0, min(x + w, width) - max(x, 0.0))
    overlap_h = max(0.0, min(y + h, height) - max(y, 0.0))
    reason = None
    if ann.get("ignore", False):
        reason = "ignore"
    elif overlap_w * overlap_h == 0:
        reason = "outside the image"
    elif float(ann.get("area", w * h)) <= 0 or w < 1 or h < 1:
        reason = "degenerate (area <= 0, w < 1 or h < 1)"
    elif ann.get("iscrowd", 0):
        reason = "iscrowd"
    if reason:
        skipped[reason] += 1
        return None
    return [max(x, 0.0), max(y, 0.0), min(x + w, float(width)), min(y + h, float(height))]


def parse_coco_detection(
    annotation_file: Path, image_dir: Path, classes: list[str]
) -> tuple[list[ImageRecord], list[int]]:
    """Read a COCO instances file into per-image records (JSON image order) and the label -> category id map.

    Every image of the JSON is returned, including those left with no boxes; image-level filters
    (``filter_empty_gt``, ``min_size``) are the split's business.
    """
    data = _read_json(annotation_file)
    category_ids = _category_ids_by_name(data["categories"], list(classes), annotation_file)
    label_of = {cat_id: label for label, cat_id in enumerate(category_ids)}
    anns_by_image: dict[int, list[dict]] = defaultdict(list)
    for ann in data["annotations"]:
        anns_by_image[int(ann["image_id"])].append(ann)

    skipped: Counter = Counter()
    records = []
    for info in data["images"]:
        image_id, width, height = int(info["id"]), int(info["width"]), int(info["height"])
        boxes, labels = [], []
        for ann in anns_by_image.get(image_id, []):
            if int(ann["category_id"]) not in label_of:
                skipped["category not in dataset.classes"] += 1
                continue
            box = _keep_box(ann, width, height, skipped)
            if box is not None:
                boxes.append(box)
                labels.append(label_of[int(ann["category_id"])])
        records.append(ImageRecord(
            image_id=image_id,
            path=image_dir / info["file_name"],
            width=width,
            height=height,
            boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            labels=np.asarray(labels, dtype=np.int64),
        ))
    unknown = skipped.pop("category not in dataset.classes", 0)
    if unknown:
        log.warning("%s: skipped %d annotations whose category is not in dataset.classes %s",
                    annotation_file, unknown, list(classes))
    if skipped:
        log.info("%s: annotations kept out of the targets: %s", annotation_file, dict(skipped))
    return records, category_ids


def _check_files_exist(records: list[ImageRecord], split: str) -> None:
    missing = [str(r.path) for r in records if not os.path.isfile(r.path)]
    if missing:
        listed = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ZoolabError(
            f"{len(missing)} image file(s) of the {split} split are missing: {listed}",
            where=str(Path(missing[0]).parent),
            fix=f"restore the images (expected layout: {LAYOUT}), "
            f"or fix file_name in Annotations/{split}.json",
        )


def _check_not_empty(records: list[ImageRecord], parsed: list[ImageRecord], split: str, annotation_file: Path,
                     min_size: int) -> None:
    """A split with no image left would only surface later as torch's ``num_samples=0``."""
    if records:
        return
    if split != "train" or not parsed:
        raise ZoolabError(f"{annotation_file} lists no images", where=str(annotation_file),
                          fix=f"restore the file from the dataset download (expected layout: {LAYOUT})")
    with_boxes = sum(1 for r in parsed if len(r.boxes))
    too_small = sum(1 for r in parsed if min(r.width, r.height) < min_size)
    small = f", and {too_small} are below dataset.min_size={min_size} px" if too_small else ""
    raise ZoolabError(
        f"no training image is left in {annotation_file}: of its {len(parsed)} images, {with_boxes} have a box "
        f"of dataset.classes that passes the annotation filters{small}",
        where=str(annotation_file),
        fix="annotate the training images with boxes of dataset.classes (categories are matched by name), "
        "or check dataset.classes and dataset.min_size",
    )


def _load_image(path: Path) -> torch.Tensor:
    array = np.asarray(load_rgb(path))  # SAR greyscale -> 3 identical channels
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


class CocoDetectionSplit(Dataset):
    """One split: items are ``(image float32 [3,H,W] in [0,1], dict(boxes, labels, image_id))``.

    Args:
        annotation_file: the split's COCO JSON (also what evaluation reads).
        image_dir: folder the JSON's ``file_name`` entries are relative to.
        classes: class names in label order.
        split: ``train`` enables ``hflip``, ``filter_empty_gt`` and ``min_size``.
        hflip: probability of a horizontal flip (train only).
        filter_empty_gt: drop training images with no kept box.
        min_size: drop training images whose shorter side is below this.
        max_images: keep only the first N images (after filtering), for quick runs.
    """

    def __init__(
        self,
        annotation_file: Path,
        image_dir: Path,
        classes: list[str],
        split: str,
        hflip: float = 0.0,
        filter_empty_gt: bool = True,
        min_size: int = 16,
        max_images: int | None = None,
    ) -> None:
        self.annotation_file = Path(annotation_file)
        self.image_dir = Path(image_dir)
        self.class_names = list(classes)
        self.split = split
        self.hflip = float(hflip) if split == "train" else 0.0
        records, self.category_ids = parse_coco_detection(self.annotation_file, self.image_dir,
                                                          self.class_names)
        parsed = records
        if split == "train":
            if filter_empty_gt:
                records = [r for r in records if len(r.boxes)]
            records = [r for r in records if min(r.width, r.height) >= min_size]
        _check_not_empty(records, parsed, split, self.annotation_file, min_size)
        if max_images is not None:
            records = records[: int(max_images)]
        _check_files_exist(records, split)
        self.records = records
        self.image_ids = [r.image_id for r in records]
        log.info("%s split: %d of %d images, %d boxes", split, len(records), len(parsed),
                 sum(len(r.boxes) for r in records))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        record = self.records[index]
        image = _load_image(record.path)
        height, width = image.shape[-2:]
        if (width, height) != (record.width, record.height):
            log.warning("%s is %dx%d but %s says %dx%d; boxes follow the JSON", record.path, width, height,
                        self.annotation_file.name, record.width, record.height)
        boxes = torch.from_numpy(record.boxes.copy())
        if self.hflip and torch.rand(()).item() < self.hflip:
            image = image.flip(-1)
            boxes = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)
        labels = torch.from_numpy(record.labels.copy())
        target = {"boxes": boxes, "labels": labels, "image_id": record.image_id}
        return image, target


def collate_detection(batch: list[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """Keep images of different sizes as a list (the detector's transform batches them)."""
    images, targets = zip(*batch) if batch else ((), ())
    return list(images), list(targets)


class CocoDetectionDataModule(L.LightningDataModule):
    """Train/val/test detection loaders over a SARDet-100K-style COCO tree.

    Args:
        root: dataset folder; ``None`` reads the ``root_env`` variable, then ``data/SARDet_100K``. A
            synthetic generator node passes the Path it wrote.
        classes: category names in label order (matched to the JSON by name).
        root_env: environment variable naming the root (shown in the error message).
        batch_size: training images per batch (2 per GPU in the original recipe).
        eval_batch_size: images per batch for val/test (1 in the original recipe).
        num_workers: DataLoader worker processes.
        hflip: training horizontal-flip probability.
        filter_empty_gt: drop training images without kept boxes.
        min_size: drop training images whose shorter side is below this.
        max_images: per-split caps such as ``{train: 200, val: 50}`` for quick runs.
    """

    def __init__(
        self,
        root: str | Path | None,
        classes: list[str],
        root_env: str = "SARDET_ROOT",
        batch_size: int = 2,
        eval_batch_size: int = 1,
        num_workers: int = 2,
        hflip: float = 0.5,
        filter_empty_gt: bool = True,
        min_size: int = 16,
        max_images: dict | None = None,
    ) -> None:
        super().__init__()
        self.root_setting = root
        self.class_names = list(classes)
        self.root_env = root_env
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.hflip = hflip
        self.filter_empty_gt = filter_empty_gt
        self.min_size = min_size
        self.max_images = dict(max_images or {})
        unknown = sorted(set(self.max_images) - set(SPLITS))
        if unknown:
            raise ZoolabError(f"dataset.max_images has unknown splits {unknown}", where="dataset.max_images",
                              fix=f"use keys among {list(SPLITS)}")
        self.datasets: dict[str, CocoDetectionSplit] = {}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def root(self) -> Path:
        if self.root_setting:
            return Path(self.root_setting).expanduser()
        env_value = os.environ.get(self.root_env, "") if self.root_env else ""
        return Path(env_value).expanduser() if env_value else DEFAULT_ROOT

    def _check_root(self) -> Path:
        root = self.root
        required = [root / "Annotations" / f"{split}.json" for split in ("train", "val")]
        if not all(path.is_file() for path in required):
            env = f"{self.root_env}=/path/to/SARDet_100K or " if self.root_env else ""
            raise ZoolabError(
                f"detection dataset root '{root}' does not exist or lacks Annotations/train.json and "
                f"Annotations/val.json (expected layout: {LAYOUT})",
                where="dataset.root",
                fix=f"set {env}dataset.root=/path/to/SARDet_100K, or add +smoke=cpu to use the embedded "
                "synthetic data",
            )
        return root

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        root = self._check_root()
        for split in SPLITS:
            annotation_file = root / "Annotations" / f"{split}.json"
            if not annotation_file.is_file():
                log.warning("no %s: the %s split will not be evaluated", annotation_file, split)
                continue
            self.datasets[split] = CocoDetectionSplit(
                annotation_file,
                root / "JPEGImages" / split,
                self.class_names,
                split,
                hflip=self.hflip,
                filter_empty_gt=self.filter_empty_gt,
                min_size=self.min_size,
                max_images=self.max_images.get(split),
            )

    @property
    def eval_splits(self) -> list[str]:
        return [split for split in ("val", "test") if split in self.datasets]

    def dataset(self, split: str) -> CocoDetectionSplit:
        if split not in self.datasets:
            raise ZoolabError(f"split '{split}' is not loaded (available: {list(self.datasets)})",
                              where=str(self.root / "Annotations"), fix="call setup() first or add the split")
        return self.datasets[split]

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        if shuffle:  # training: per-sample seeds (flips), so a resumed run replays it with any number of workers
            return train_loader(self.dataset(split), self.num_workers, shuffle=True, batch_size=batch_size,
                                collate_fn=collate_detection)
        return DataLoader(self.dataset(split), batch_size=batch_size, shuffle=False, collate_fn=collate_detection,
                          **eval_loader_kwargs(self.num_workers))

    def loader(self, split: str) -> DataLoader:
        """Evaluation loader: dataset order, ``eval_batch_size``, no augmentation."""
        return self._loader(split, self.eval_batch_size, shuffle=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test" if "test" in self.datasets else "val")
