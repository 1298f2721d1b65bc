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

from zoolab.callbacks.seeded_loader import eval_loader_kwargs, train_loader
from zoolab.data.transforms import build_transform
from zoolab.errors import ZoolabError

__all__ = ["ImageFolderSplit", "ImageFolderDataModule", "IMAGE_EXTENSIONS", "UnreadableImageError", "load_rgb"]

log = logging.getLogger(__name__)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_JPEG_END = b"\xff\xd9"


class UnreadableImageError(ZoolabError):
    """An image file that cannot be decoded, named by path.

    A DataLoader worker's exception reaches the main process rebuilt by torch as
    ``UnreadableImageError(text)``, the text being the worker's whole traceback; the rebuilt error keeps
    only the original one-paragraph message (the traceback's last line).
    """

    def __init__(self, path: str | Path, reason: str | None = None) -> None:
        if reason is None:  # rebuilt from a single message (torch's worker re-raise, or unpickling)
            super().__init__(_message_in_worker_traceback(str(path)))
            return
        super().__init__(f"cannot read image {path}: {reason}", where=str(path), fix="replace or delete it")


def _message_in_worker_traceback(text: str) -> str:
    if not text.startswith("Caught "):
        return text
    last_line = text.rstrip().splitlines()[-1]
    return last_line.partition(": ")[2] or text


def load_rgb(path: Path) -> Image.Image:
    """Decode ``path`` as RGB, or raise UnreadableImageError naming it."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise UnreadableImageError(path, str(exc)) from exc


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _lacks_jpeg_end(path: Path) -> bool:
    """A JPEG cut short (interrupted copy) passes ``Image.verify``; its end-of-image marker is missing."""
    if path.suffix.lower() not in (".jpg", ".jpeg"):
        return False
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - 2))
        return fh.read(2) != _JPEG_END


def _read_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read (``"OSError: ..."``), or None when it can."""
    try:
        with Image.open(path) as img:
            img.verify()
        if _lacks_jpeg_end(path):
            with Image.open(path) as img:
                img.load()  # only suspicious files pay for a full decode
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


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
        self._check_no_empty_class()

    def _check_no_empty_class(self) -> None:
        counts = torch.bincount(torch.tensor(self.targets), minlength=len(self.classes)).tolist()
        empty = [c for c, n in zip(self.classes, counts) if n == 0]
        if empty:
            raise ZoolabError(
                f"class folder(s) {empty} have no images in {self.split_dir}, so those classes can be neither "
                "learnt nor evaluated",
                where=str(self.split_dir),
                fix=f"add images to {self.split_dir}/<class>/, or remove the class from dataset.classes",
            )

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]

    def verify(self) -> None:
        """Check every image once (header; a JPEG without its end marker is fully decoded); raise one error
        listing the unreadable files."""
        problems = ((path, _read_problem(path)) for path, _ in self.samples)
        bad = [f"{path} ({problem})" for path, problem in problems if problem]
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
        return self.transform(load_rgb(path)), label


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
        if shuffle:  # training: per-sample seeds, so a resumed run replays it with any number of workers
            return train_loader(self.datasets[split], self.num_workers, shuffle=True,
                                batch_size=self.batch_size, drop_last=False)
        return DataLoader(self.datasets[split], batch_size=self.batch_size, shuffle=False, drop_last=False,
                          **eval_loader_kwargs(self.num_workers))

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test" if "test" in self.datasets else "val")
