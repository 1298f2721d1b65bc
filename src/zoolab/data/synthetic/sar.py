"""Synthetic SAR detection scenes in the SARDet-100K COCO layout.

Each image is a dark, textured sea/land background with bright targets whose *shape* tells the class:
ship (elongated ellipse at any angle), aircraft (fuselage + swept wings + tail), car (small solid
rectangle), tank (square hull with a turret and a barrel), bridge (long thin bar with bright pylons) and
harbor (large L- or U-shaped quay). Multiplicative gamma speckle (a few looks) makes the texture SAR-like.
Boxes come from the rendered pixels of each object, so they are tight. A small detector learns the
classes in a few CPU minutes.

Written layout (what :class:`zoolab.data.coco_detection.CocoDetectionDataModule` reads):
``<root>/Annotations/{split}.json`` and ``<root>/JPEGImages/{split}/*.jpg`` (greyscale JPEGs). Category
ids are deliberately not the class order (``classes[i]`` gets id ``n - i``), so by-name mapping is
exercised; validation and test splits contain some images with no objects.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from zoolab.data.synthetic._tree import cached_tree
from zoolab.errors import ZoolabError

__all__ = ["generate_sar_dataset", "render_scene", "SAR_CLASSES"]

SAR_CLASSES = ("ship", "aircraft", "car", "tank", "bridge", "harbor")
EMPTY_FRACTION = 0.15  # share of val/test images with no objects
LOOKS = 4.0            # speckle: gamma(shape=L, scale=1/L), mean 1
VERSION = 2


def _rotate(points: np.ndarray, angle: float, centre: tuple[float, float]) -> list[tuple[float, float]]:
    c, s = math.cos(angle), math.sin(angle)
    rotated = points @ np.array([[c, s], [-s, c]]) + np.asarray(centre)
    return [tuple(p) for p in rotated]


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


def _draw_ship(draw, rng, s, centre):
    length, width = rng.uniform(26, 46) * s, rng.uniform(7, 10) * s
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    hull = np.stack([length / 2 * np.cos(t), width / 2 * np.sin(t)], axis=1)
    draw.polygon(_rotate(hull, rng.uniform(0, np.pi), centre), fill=255)


def _draw_aircraft(draw, rng, s, centre):
    length = rng.uniform(24, 38) * s
    span, body = length * rng.uniform(0.85, 1.0), max(2.0, 0.14 * length)
    angle = rng.uniform(0, 2 * np.pi)
    parts = [
        _rect(-length / 2, -body / 2, length / 2, body / 2),                       # fuselage
        np.array([[0.15 * length, 0], [-0.1 * length, span / 2], [-0.22 * length, span / 2],
                  [-0.12 * length, 0], [-0.22 * length, -span / 2], [-0.1 * length, -span / 2]]),  # wings
        _rect(-length / 2, -span / 5, -length / 2 + 2.5 * body / 2, span / 5),     # tail plane
    ]
    for part in parts:
        draw.polygon(_rotate(part, angle, centre), fill=255)


def _draw_car(draw, rng, s, centre):
    length, width = rng.uniform(14, 20) * s, rng.uniform(10, 12) * s
    angle = rng.choice([0.0, np.pi / 2])
    draw.polygon(_rotate(_rect(-length / 2, -width / 2, length / 2, width / 2), angle, centre), fill=255)


def _draw_tank(draw, rng, s, centre):
    side, barrel = rng.uniform(12, 16) * s, rng.uniform(9, 13) * s
    angle = rng.choice([0.0, np.pi / 2, np.pi, 3 * np.pi / 2])
    draw.polygon(_rotate(_rect(-side / 2, -side / 2, side / 2, side / 2), angle, centre), fill=150)
    draw.polygon(_rotate(_rect(-side / 4, -side / 4, side / 4, side / 4), angle, centre), fill=255)  # turret
    w = max(1.5, 0.12 * side)
    draw.polygon(_rotate(_rect(0, -w / 2, side / 2 + barrel, w / 2), angle, centre), fill=255)


def _draw_bridge(draw, rng, s, centre):
    length, width = rng.uniform(40, 52) * s, rng.uniform(3, 4.5) * s
    angle = rng.uniform(np.pi / 9, 4 * np.pi / 9) + rng.integers(0, 2) * np.pi / 2  # never axis-aligned
    draw.polygon(_rotate(_rect(-length / 2, -width / 2, length / 2, width / 2), angle, centre), fill=210)
    for end in (-length / 2, length / 2):
        pylon = _rect(end - width, -width, end + width, width)
        draw.polygon(_rotate(pylon, angle, centre), fill=255)


def _draw_harbor(draw, rng, s, centre):
    extent, arm = rng.uniform(40, 58) * s, rng.uniform(5, 8) * s
    h = extent / 2
    arms = [_rect(-h, h - arm, h, h), _rect(-h, -h, -h + arm, h)]  # an L
    if rng.random() < 0.5:
        arms.append(_rect(h - arm, -h, h, h))                      # a U
    angle = rng.choice([0.0, np.pi / 2, np.pi, 3 * np.pi / 2])
    for part in arms:
        draw.polygon(_rotate(part, angle, centre), fill=255)


DRAWERS = {"ship": _draw_ship, "aircraft": _draw_aircraft, "car": _draw_car, "tank": _draw_tank,
           "bridge": _draw_bridge, "harbor": _draw_harbor}
# Largest extent of each shape at any angle, in px at image_size 128 (keeps objects inside the image).
MAX_EXTENT = {"ship": 48, "aircraft": 44, "car": 24, "tank": 44, "bridge": 64, "harbor": 60}


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Dark sea with a smooth brighter patch of land: mean reflectivity 0.05-0.19."""
    coarse = rng.uniform(0.0, 1.0, size=(4, 4)).astype(np.float32)
    smooth = np.asarray(Image.fromarray(coarse, mode="F").resize((size, size), Image.BICUBIC))
    return rng.uniform(0.05, 0.09) + rng.uniform(0.0, 0.1) * np.clip(smooth, 0, 1)


def _free(box: tuple[int, int, int, int], taken: list[tuple[int, int, int, int]], gap: int) -> bool:
    return all(box[2] + gap <= t[0] or t[2] + gap <= box[0] or box[3] + gap <= t[1] or t[3] + gap <= box[1]
               for t in taken)


def render_scene(rng: np.random.Generator, size: int, classes: list[str], n_objects: int
                 ) -> tuple[Image.Image, list[tuple[str, tuple[int, int, int, int]]]]:
    """Render one speckled scene; returns the greyscale image and ``(class, xyxy box)`` per object."""
    scale = size / 128
    reflectivity = _background(rng, size)
    objects: list[tuple[str, tuple[int, int, int, int]]] = []
    for _ in range(n_objects):
        name = str(rng.choice(classes))
        margin = MAX_EXTENT[name] * scale / 2 + 1
        for _attempt in range(20):
            centre = tuple(rng.uniform(margin, size - margin, size=2))
            mask = Image.new("L", (size, size), 0)
            DRAWERS[name](ImageDraw.Draw(mask), rng, scale, centre)
            pixels = np.asarray(mask)
            ys, xs = np.nonzero(pixels)
            box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            if _free(box, [b for _, b in objects], gap=2):
                soft = np.asarray(mask.filter(ImageFilter.GaussianBlur(radius=0.6 * scale)), dtype=np.float32)
                reflectivity = np.maximum(reflectivity, soft / 255 * rng.uniform(0.55, 0.9))
                objects.append((name, box))
                break
    speckle = rng.gamma(LOOKS, 1.0 / LOOKS, size=reflectivity.shape)
    image = Image.fromarray(np.clip(255 * reflectivity * speckle, 0, 255).astype(np.uint8), mode="L")
    return image, objects


def _write_split(root: Path, split: str, count: int, size: int, classes: list[str],
                 category_ids: dict[str, int], rng: np.random.Generator,
                 objects_per_image: tuple[int, int]) -> None:
    image_dir = root / "JPEGImages" / split
    image_dir.mkdir(parents=True)
    images, annotations = [], []
    lo, hi = objects_per_image
    for i in range(count):
        empty = split != "train" and rng.random() < EMPTY_FRACTION
        n_objects = 0 if empty else int(rng.integers(lo, hi + 1))
        image, objects = render_scene(rng, size, classes, n_objects)
        file_name = f"{split}_{i:05d}.jpg"
        image.save(image_dir / file_name, quality=90)
        image_id = i + 1
        images.append({"id": image_id, "file_name": file_name, "width": size, "height": size})
        for name, (x0, y0, x1, y1) in objects:
            w, h = x1 - x0, y1 - y0
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": category_ids[name], "bbox": [x0, y0, w, h], "area": w * h,
                                "iscrowd": 0})
    by_id = sorted(category_ids.items(), key=lambda item: item[1])
    categories = [{"id": cid, "name": name} for name, cid in by_id]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (root / "Annotations").mkdir(exist_ok=True)
    (root / "Annotations" / f"{split}.json").write_text(json.dumps(coco))


def generate_sar_dataset(
    classes: list[str] = SAR_CLASSES,
    counts: dict[str, int] | None = None,
    image_size: int = 128,
    seed: int = 0,
    cache_dir: str | None = None,
    objects_per_image: tuple[int, int] = (1, 4),
) -> Path:
    """Write (or reuse) a synthetic SAR detection dataset and return its root.

    Args:
        classes: any of ``ship, aircraft, car, tank, bridge, harbor``; category ids are ``n - i``.
        counts: images per split, default ``{train: 64, val: 24, test: 24}``.
        image_size: side of the square JPEGs; object sizes scale with it (box sides ~12-60 px at 128).
        seed: generator seed; the folder name is a hash of all arguments, so a change never reuses data.
        cache_dir: where datasets are cached (default ``$ZOOLAB_CACHE`` or ``~/.cache/zoolab``).
        objects_per_image: inclusive range of objects per non-empty image.
    """
    classes = [str(c) for c in classes]
    counts = {str(k): int(v) for k, v in dict(counts or {"train": 64, "val": 24, "test": 24}).items()}
    lo, hi = (int(v) for v in objects_per_image)
    unknown = [c for c in classes if c not in SAR_CLASSES]
    if unknown or not classes:
        raise ZoolabError(f"synthetic SAR classes must be among {list(SAR_CLASSES)}, got {classes}",
                          where="dataset.classes", fix="remove the unknown classes")
    if not 0 <= lo <= hi or image_size < 64:
        raise ZoolabError(f"objects_per_image={objects_per_image} / image_size={image_size} are invalid",
                          where="dataset.root", fix="use 0 <= lo <= hi and image_size >= 64")
    spec = dict(classes=classes, counts=counts, image_size=int(image_size), seed=int(seed),
                objects_per_image=[lo, hi], version=VERSION)

    def write(tmp: Path) -> None:
        category_ids = {name: len(classes) - i for i, name in enumerate(classes)}
        rng = np.random.default_rng(seed)
        for split, count in counts.items():
            _write_split(tmp, split, count, int(image_size), classes, category_ids, rng, (lo, hi))

    return cached_tree("sar", spec, cache_dir, write)
