"""ImageFolder datasets (``<root>/<split>/<class>/*.jpg``) with the class order taken from config.

Unlike ``torchvision.datasets.ImageFolder`` the class list is explicit, so a missing or extra class
folder is an error instead of a silent relabelling, and unreadable images are reported by path.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from zoolab.data.transforms import build_transform
from zoolab.errors import ZoolabError

__all__ = ["ImageFolderSplit", "ImageFolderDataModule", "IMAGE_EXTENSIONS"]

log = logging.getLogger(__name__)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


class ImageFolderSplit(Dataset):
    """One split of an ImageFolder tree; items are (uint8 CHW tensor, class index)."""

    def __init__(self, split_dir: Path, classes: list[str], transform, relabel: dict[str, str] | None = None):
        self.split_dir = split_dir
        self.classes = list(classes)
        self.transform = transform
        relabel = dict(relabel or {})
        folders = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
        expected = set(classes) | set(relabel)
        extra = [f for f in folders if f not in expected]
        if extra:
            raise ZoolabError(
                f"class folders {extra} in {split_dir} are not in dataset.classes {self.classes}",
                where=str(split_dir),
                fix="add them to dataset.classes, map them with dataset.relabel, or move them out of the tree",
            )
        missing = [c for c in classes if c not in folders and c not in relabel.values()]
        if missing:
            raise ZoolabError(
                f"class folders {missing} are missing from {split_dir} (dataset.classes: {self.classes})",
                where=str(split_dir),
                fix="add the folders, or remove those classes from dataset.classes",
            )
        self.samples: list[tuple[Path, int]] = []
        for folder in folders:
            target = relabel.get(folder, folder)
            if target not in self.classes:
                raise ZoolabError(
                    f"dataset.relabel maps '{folder}' to '{target}', which is not in dataset.classes",
                    where="dataset.relabel",
                    fix=f"map to one of {self.classes}",
                )
            index = self.classes.index(target)
            self.samples += [(path, index) for path in _list_images(split_dir / folder)]
        if not self.samples:
            raise ZoolabError(
                f"no images found under {split_dir}",
                where=str(split_dir),
                fix=f"put images at {split_dir}/<class>/*.jpg for classes {self.classes}",
            )

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]

    def verify(self) -> None:
        """Open every image header once; raise one error listing the unreadable files."""
        bad = []
        for path, _ in self.samples:
            try:
                with Image.open(path) as img:
                    img.verify()
            except (OSError, UnidentifiedImageError, SyntaxError) as exc:
                bad.append(f"{path} ({type(exc).__name__})")
        if bad:
            listed = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise ZoolabError(
                f"{len(bad)} image file(s) cannot be read: {listed}",
                where=str(self.split_dir),
                fix="replace or delete the corrupt files (dataset.verify=false skips this check, but "
                "training will still stop at the first unreadable image)",
            )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        try:
            with Image.open(path) as img:
                image = img.convert("RGB")
        except (OSError, UnidentifiedImageError) as exc:
            raise ZoolabError(f"cannot read image {path}: {exc}", where=str(path), fix="replace or delete it") from exc
        return self.transform(image), label


class ImageFolderDataModule(L.LightningDataModule):
    """Train/val/test loaders over an ImageFolder tree.

    Args:
        root: folder holding ``train/``, ``val/`` and optionally ``test/``.
        classes: class folder names in label order (the positive class of a threshold analysis included).
        image_size: square side after resizing.
        augment: training augmentation profile (see ``zoolab.data.transforms``).
        relabel: map extra folder names onto classes, e.g. ``{cherry_maybe: cherry_pit}`` for a binary view.
        root_env: the environment variable users set for this dataset (named in the error message).
    """

    def __init__(
        self,
        root: str | None,
        classes: list[str],
        image_size: int = 224,
        augment: str = "none",
        batch_size: int = 32,
        num_workers: int = 2,
        verify: bool = True,
        relabel: dict[str, str] | None = None,
        splits: tuple[str, ...] = ("train", "val", "test"),
        root_env: str = "",
    ) -> None:
        super().__init__()
        self.root = Path(root).expanduser() if root else None
        self.class_names = list(classes)
        self.image_size = image_size
        self.augment = augment
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.verify = verify
        self.relabel = dict(relabel or {})
        self.split_names = tuple(splits)
        self.root_env = root_env
        self.datasets: dict[str, ImageFolderSplit] = {}
        build_transform(image_size, augment)  # fail on a bad profile before anything else happens

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _check_root(self) -> Path:
        if self.root is None or not (self.root / "train").is_dir() or not (self.root / "val").is_dir():
            env = f"{self.root_env}=/path/to/data or " if self.root_env else ""
            raise ZoolabError(
                f"dataset root '{self.root}' does not exist or lacks train/ and val/ folders "
                f"(expected <root>/<split>/<class>/*.jpg with classes {self.class_names})",
                where="dataset.root",
                fix=f"set {env}dataset.root=/path/to/data, or add +smoke=cpu to use the embedded synthetic data",
            )
        return self.root

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        root = self._check_root()
        for split in self.split_names:
            if not (root / split).is_dir():
                if split in ("train", "val"):
                    self._check_root()
                log.warning("no %s/ split under %s: it will not be evaluated", split, root)
                continue
            transform = build_transform(self.image_size, self.augment, train=split == "train")
            dataset = ImageFolderSplit(root / split, self.class_names, transform, self.relabel)
            if self.verify:
                dataset.verify()
            self.datasets[split] = dataset

    @property
    def eval_splits(self) -> list[str]:
        return [s for s in self.datasets if s != "train"]

    def loader(self, split: str, shuffle: bool = False) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test" if "test" in self.datasets else "val")
