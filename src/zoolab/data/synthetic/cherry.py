"""Synthetic cherry images in ImageFolder layout: clean cherries, cherries with a pit, and faint pits.

Each image is a dark-red cherry on a grey conveyor with lighting gradient, sensor noise and JPEG
compression. A pit is a pale, dark-rimmed ellipse inside the cherry; a "maybe" pit is the same shape at
low contrast and partly hidden, so a three-class model has a genuinely ambiguous middle class. A small
CNN separates clean from pit well above chance in a few CPU minutes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from zoolab.data.synthetic._tree import cached_tree

__all__ = ["generate_cherry_dataset", "render_cherry"]

PIT_STRENGTH = {"cherry_clean": 0.0, "cherry_pit": 1.0, "cherry_maybe": 0.35}


def render_cherry(rng: np.random.Generator, size: int, pit_strength: float) -> Image.Image:
    yy, xx = np.mgrid[0:size, 0:size] / size
    light = rng.uniform(-0.15, 0.15, size=2)
    base = rng.uniform(95, 150) * (1 + light[0] * (xx - 0.5) + light[1] * (yy - 0.5))
    canvas = np.repeat(base[..., None], 3, axis=2)
    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)

    cx, cy = size * rng.uniform(0.42, 0.58, size=2)
    rx, ry = size * rng.uniform(0.28, 0.36), size * rng.uniform(0.26, 0.34)
    red = (int(rng.uniform(110, 170)), int(rng.uniform(5, 35)), int(rng.uniform(20, 50)))
    draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=red)
    hx, hy = cx - rx * 0.35, cy - ry * 0.4  # specular highlight
    draw.ellipse([hx - rx * 0.12, hy - ry * 0.08, hx + rx * 0.12, hy + ry * 0.08], fill=(220, 120, 130))

    if pit_strength > 0:
        angle = rng.uniform(0, 2 * np.pi)
        dist = rng.uniform(0.0, 0.35)
        px, py = cx + np.cos(angle) * rx * dist, cy + np.sin(angle) * ry * dist
        pr = size * rng.uniform(0.07, 0.10)
        pit = np.array([225, 195, 150])
        rim = np.array([70, 40, 20])
        fill = tuple(int(v) for v in np.array(red) + pit_strength * (pit - np.array(red)))
        edge = tuple(int(v) for v in np.array(red) + pit_strength * (rim - np.array(red)))
        draw.ellipse([px - pr, py - pr * 0.75, px + pr, py + pr * 0.75], fill=fill, outline=edge,
                     width=max(1, size // 48))

    img = img.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.3, 1.0)))
    pixels = np.asarray(img, dtype=np.float32) + rng.normal(0, 6, size=(size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def generate_cherry_dataset(
    classes: list[str] = ("cherry_clean", "cherry_pit"),
    counts: dict[str, int] | None = None,
    image_size: int = 96,
    seed: int = 0,
    cache_dir: str | None = None,
    subdir: str | None = None,
) -> str:
    """Write (or reuse) a synthetic cherry ImageFolder tree and return its root.

    Args:
        classes: any of ``cherry_clean``, ``cherry_pit``, ``cherry_maybe``.
        counts: images per class per split, default ``{train: 120, val: 50, test: 50}``.
        image_size: side of the written JPEGs (the loader resizes to the model's input size).
        seed: generator seed; the folder name is a hash of all arguments, so a change never reuses data.
        cache_dir: where trees are cached (default ``$ZOOLAB_CACHE`` or ``~/.cache/zoolab``).
        subdir: return ``<root>/<subdir>`` instead, e.g. ``train`` for an unsplit ``<class>/*.jpg`` tree.
    """
    counts = dict(counts or {"train": 120, "val": 50, "test": 50})
    unknown = [c for c in classes if c not in PIT_STRENGTH]
    if unknown:
        raise ValueError(f"synthetic cherry classes must be among {list(PIT_STRENGTH)}, got {unknown}")
    spec = dict(classes=list(classes), counts=counts, image_size=image_size, seed=seed, version=1)

    def write(tmp: Path) -> None:
        rng = np.random.default_rng(seed)
        for split, n in counts.items():
            for cls in classes:
                folder = tmp / split / cls
                folder.mkdir(parents=True)
                for i in range(n):
                    img = render_cherry(rng, image_size, PIT_STRENGTH[cls])
                    img.save(folder / f"{split}_{cls}_{i:05d}.jpg", quality=int(rng.integers(80, 96)))

    root = cached_tree("cherry", spec, cache_dir, write)
    return str(root / subdir) if subdir else str(root)
