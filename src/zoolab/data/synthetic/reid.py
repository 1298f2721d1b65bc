"""Synthetic hand re-ID data in the real on-disk layouts (identity folders, or Market-1501 names).

Each identity is a hand seen from the back: a palm ellipse with four finger capsules and a thumb. Its
own random generator fixes the finger lengths, widths and spread, the palm proportions, the skin tone,
and a marking pattern (a few moles and vein-like lines at fixed places on the hand). Each image of the
identity varies the pose (rotation +-20 degrees, scale, translation, a little finger movement), the
background colour, brightness and contrast, blur and sensor noise. Skin tones overlap between
identities and the background changes per image, so colour alone does not identify a hand: the model
has to pick up shape and markings. Images are drawn at twice the size and downsampled (anti-aliasing).

Layouts (``protocol``):

- ``single_gallery``: ``train/<identity>/*.jpg`` and ``test/<identity>/*.jpg`` (identities disjoint).
- ``market1501``: ``bounding_box_train/``, ``query/``, ``bounding_box_test/`` with names
  ``PPPP_cCs1_FFFFFF_00.jpg``. Every identity is seen by 2-3 of 6 cameras (each camera adds its own
  colour cast); per test identity the first image of each camera is a query, the rest are gallery; the
  gallery also holds ``0000`` distractors (hands of people outside the dataset) and ``-1`` junk files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from zoolab.data.synthetic._tree import cached_tree

__all__ = ["generate_reid_dataset", "render_hand", "sample_identity"]

NUM_CAMERAS = 6


def sample_identity(rng: np.random.Generator) -> dict:
    """The fixed traits of one hand, in units of the canvas's shorter side (palm centre at 0, 0)."""
    tone = rng.uniform(0, 1)
    skin = np.array([235 - 90 * tone, 190 - 105 * tone, 160 - 95 * tone]) + rng.normal(0, 6, 3)
    mark_hue = rng.uniform(0, 2 * np.pi)  # markings in an identity colour (henna, tattoo ink, paint)
    mark = 110 + 90 * np.cos(mark_hue + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])) * rng.uniform(0.5, 1)
    spread = rng.uniform(0.6, 1.4)
    return {
        "skin": np.clip(skin, 40, 255),
        "palm": (rng.uniform(0.16, 0.22), rng.uniform(0.18, 0.24)),            # half width, half height
        "finger_angles": np.array([-27, -9, 9, 27]) * spread + rng.normal(0, 4, 4),  # degrees from up
        "finger_lengths": rng.uniform(0.14, 0.32, 4),
        "finger_widths": rng.uniform(0.045, 0.08, 4),
        "thumb": (rng.choice([-1, 1]) * rng.uniform(50, 85), rng.uniform(0.12, 0.24),  # angle, length,
                  rng.uniform(0.06, 0.09)),                                             # width
        "moles": [(rng.uniform(-0.65, 0.65), rng.uniform(-0.65, 0.65), rng.uniform(0.025, 0.05))
                  for _ in range(rng.integers(2, 5))],
        "veins": [(rng.uniform(-0.8, 0.8, 2), rng.uniform(-0.8, 0.8, 2)) for _ in range(rng.integers(1, 3))],
        "mark_colour": np.clip(mark, 0, 255),
    }


def _capsule(base: np.ndarray, angle_deg: float, length: float, width: float) -> np.ndarray:
    """Polygon of a finger: a bar from ``base`` along the angle, ending in a half-disc of radius width/2."""
    direction = np.array([np.sin(np.radians(angle_deg)), -np.cos(np.radians(angle_deg))])
    normal = np.array([-direction[1], direction[0]])
    tip = base + direction * (length - width / 2)
    cap = [tip + (normal * np.cos(t) + direction * np.sin(t)) * width / 2 for t in np.linspace(0, np.pi, 9)]
    return np.array([base - normal * width / 2, *cap[::-1], base + normal * width / 2])


def render_hand(identity: dict, rng: np.random.Generator, image_size: tuple[int, int],
                colour_cast: np.ndarray | None = None) -> Image.Image:
    """One view of ``identity``: random pose, background, lighting and noise, as an RGB image (H, W)."""
    height, width = image_size
    big_h, big_w = 2 * height, 2 * width
    side = min(big_h, big_w)
    angle = np.radians(rng.uniform(-20, 20))
    scale = side * rng.uniform(1.0, 1.25)
    centre = np.array([big_w / 2, big_h / 2 + 0.12 * side]) + rng.uniform(-0.08, 0.08, 2) * side
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])

    def to_px(points) -> list[tuple[float, float]]:
        return [tuple(p) for p in (np.atleast_2d(points) @ rotation.T * scale + centre)]

    background = rng.uniform(120, 235) + rng.uniform(-15, 15, 3)  # light, nearly neutral (as 11k Hands)
    img = Image.new("RGB", (big_w, big_h), tuple(int(v) for v in background))
    draw = ImageDraw.Draw(img)
    skin = tuple(int(v) for v in identity["skin"])
    half_w, half_h = identity["palm"]
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    draw.polygon(to_px(np.stack([np.cos(t) * half_w, np.sin(t) * half_h], 1)), fill=skin)
    jitter = rng.normal(0, 3, 4)  # fingers move a little between views
    for a, length, w in zip(identity["finger_angles"] + jitter, identity["finger_lengths"],
                            identity["finger_widths"]):
        base = np.array([np.sin(np.radians(a)) * half_w * 0.8, -half_h * 0.75])
        draw.polygon(to_px(_capsule(base, a, length + half_h * 0.25, w)), fill=skin)
    thumb_angle, thumb_length, thumb_width = identity["thumb"]
    thumb_base = np.array([np.sign(thumb_angle) * half_w * 0.7, half_h * 0.15])
    thumb = _capsule(thumb_base, thumb_angle + rng.normal(0, 4), thumb_length, thumb_width)
    draw.polygon(to_px(thumb), fill=skin)
    mark = tuple(int(v) for v in identity["mark_colour"])
    for (x0, y0), (x1, y1) in identity["veins"]:
        draw.line(to_px([[x0 * half_w, y0 * half_h], [x1 * half_w, y1 * half_h]]), fill=mark,
                  width=max(1, int(0.025 * scale)))
    for u, v, r in identity["moles"]:
        (cx, cy), = to_px([u * half_w, v * half_h])
        rad = r * scale
        draw.ellipse([cx - rad, cy - rad, cx + rad, cy + rad], fill=mark)

    img = img.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.2, 1.2))).resize((width, height),
                                                                                   Image.Resampling.BOX)
    pixels = np.asarray(img, dtype=np.float32)
    if colour_cast is not None:
        pixels = pixels * colour_cast
    mean = pixels.mean()
    pixels = (pixels - mean) * rng.uniform(0.85, 1.15) + mean * rng.uniform(0.85, 1.15)
    pixels += rng.normal(0, rng.uniform(3, 9), pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _write_identity_folders(tmp: Path, spec: dict, rng: np.random.Generator) -> None:
    low, high = spec["images_per_identity"]
    for split in ("train", "test"):
        for n in range(spec["num_identities"][split]):
            identity = sample_identity(np.random.default_rng([spec["seed"], 0 if split == "train" else 1, n]))
            folder = tmp / split / f"{split}_{n:04d}"
            folder.mkdir(parents=True)
            for i in range(int(rng.integers(low, high + 1))):
                render_hand(identity, rng, spec["image_size"]).save(folder / f"{i:03d}.jpg", quality=92)


def _write_market(tmp: Path, spec: dict, rng: np.random.Generator) -> None:
    low, high = spec["images_per_identity"]
    casts = {c: rng.uniform(0.82, 1.18, 3) for c in range(1, NUM_CAMERAS + 1)}
    folders = {name: tmp / name for name in ("bounding_box_train", "query", "bounding_box_test")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    frame = 0

    def save(img: Image.Image, folder: str, pid: int, camera: int) -> None:
        nonlocal frame
        frame += 1
        pid_text = "-1" if pid == -1 else f"{pid:04d}"
        img.save(folders[folder] / f"{pid_text}_c{camera}s1_{frame:06d}_00.jpg", quality=92)

    num_train, num_test = spec["num_identities"]["train"], spec["num_identities"]["test"]
    for n in range(num_train + num_test):
        identity = sample_identity(np.random.default_rng([spec["seed"], 2, n]))
        seen_by = rng.choice(NUM_CAMERAS, size=int(rng.integers(2, 4)), replace=False) + 1
        count = max(int(rng.integers(low, high + 1)), len(seen_by) + 1)
        cameras = [int(c) for c in seen_by] + [int(c) for c in rng.choice(seen_by, count - len(seen_by))]
        queried = set()
        for camera in cameras:
            img = render_hand(identity, rng, spec["image_size"], casts[camera])
            if n < num_train:
                save(img, "bounding_box_train", n + 1, camera)
            else:
                save(img, "bounding_box_test" if camera in queried else "query", n + 1, camera)
                queried.add(camera)
    for k in range(num_test):  # distractors: other people's hands; junk: the same, marked -1
        identity = sample_identity(np.random.default_rng([spec["seed"], 3, k]))
        camera = int(rng.integers(1, NUM_CAMERAS + 1))
        save(render_hand(identity, rng, spec["image_size"], casts[camera]), "bounding_box_test",
             0 if k % 2 == 0 else -1, camera)


def generate_reid_dataset(
    num_identities: dict | None = None,
    images_per_identity: list[int] = (4, 8),
    image_size: list[int] = (64, 64),
    seed: int = 0,
    cache_dir: str | Path | None = None,
    protocol: str = "single_gallery",
) -> Path:
    """Write (or reuse) a synthetic hand re-ID tree and return its root.

    Args:
        num_identities: ``{train: 24, test: 16}`` by default; train and test identities are different people.
        images_per_identity: ``[min, max]`` images per identity (uniform).
        image_size: ``[H, W]`` of the written JPEGs (the loader resizes to the model's input size).
        seed: generator seed; the folder name hashes all arguments, so a change never reuses old data.
        cache_dir: where trees are cached (default ``$ZOOLAB_CACHE`` or ``~/.cache/zoolab``).
        protocol: ``single_gallery`` (identity folders) or ``market1501`` (Market file names and folders).
    """
    counts = dict(num_identities or {"train": 24, "test": 16})
    if set(counts) != {"train", "test"} or min(counts.values()) < 2:
        raise ValueError(f"num_identities must be {{train: n, test: m}} with n, m >= 2, got {counts}")
    low, high = (int(v) for v in images_per_identity)
    if not 2 <= low <= high:
        raise ValueError("images_per_identity must be [min, max] with 2 <= min <= max, "
                         f"got {list(images_per_identity)}")
    if protocol not in ("single_gallery", "market1501"):
        raise ValueError(f"protocol must be 'single_gallery' or 'market1501', got {protocol!r}")
    spec = dict(num_identities={k: int(v) for k, v in counts.items()}, images_per_identity=[low, high],
                image_size=[int(v) for v in image_size], seed=int(seed), protocol=protocol, version=2)

    def write(tmp: Path) -> None:
        rng = np.random.default_rng([spec["seed"], 9])
        (_write_identity_folders if protocol == "single_gallery" else _write_market)(tmp, spec, rng)

    return cached_tree("reid", spec, cache_dir, write)
