"""Re-identification data: train / val / test sets for the hand protocol and for Market-1501.

``protocol="single_gallery"`` (identity folders, e.g. 11k Hands): ``<root>/train/<identity>/*.jpg`` and
``<root>/test/<identity>/*.jpg``.

- test: every test image, scored as the mean (and ``_std``) over ``num_splits`` seeded splits
  (``split_seed``) with one gallery image per identity and the rest as queries (CLIP-FH's protocol, but
  seeded). Test identities with a single image can be neither query nor gallery: they are dropped with
  a warning (``zoolab.metrics.reid.single_gallery_splits`` would ignore them anyway).
- val: ``val_identities`` of the TRAINING identities (a fraction if < 1, a count if >= 1), drawn with
  ``split_seed`` among identities with >= 2 images and removed from training, scored with the same
  single-gallery protocol over ``min(num_splits, 3)`` splits (enough for model selection, cheaper).
  Validation is never test data (CLIP-FH selected models on test split 0, quirk #11); ``setup`` checks
  that no file is in both.

``protocol="market1501"``: ``<root>/bounding_box_train``, ``<root>/query``, ``<root>/bounding_box_test``.

- test: the official query x gallery, junk (pid -1) dropped, distractors (pid 0) kept in the gallery,
  same-pid same-camera gallery entries removed per query (``zoolab.metrics.reid.rank_metrics``).
- val: held-out training pids (drawn among pids seen by >= 2 cameras with more images than cameras);
  per pid the first image (by file name) of each camera is a query and its other images are gallery,
  scored with the same camera rule; queries left without a cross-camera positive are skipped.

CLIP-FH quirk numbers (#9, #11, #13, ...) refer to the numbered list in docs/reid.md.

Training labels are contiguous ``0..C-1`` over the remaining training identities in sorted order
(folder names, or pids by value); ``class_names`` holds their names (pids as strings). Training batches
are P x K identity-balanced (``RandomIdentitySampler``, seeded from ``torch.initial_seed()``, i.e. the
run's seed) or plainly shuffled when ``num_instances=0`` (CLIP-FH quirk #13). ``train_normalize`` is only
recorded here for the task (CLIP-FH quirk #9); normalisation happens in the backbone.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from zoolab.callbacks.seeded_loader import eval_loader_kwargs, train_loader
from zoolab.data.pk_sampler import RandomIdentitySampler
from zoolab.data.reid_datasets import (QueryGalleryEvalSet, ReidImageDataset, SingleGalleryEvalSet,
                                       check_augment)
from zoolab.data.reid_layouts import (ReidSample, draw_held_out, read_identity_folders, read_market_dir)
from zoolab.errors import ZoolabError

__all__ = ["PROTOCOLS", "RandomIdentitySampler", "ReidDataModule"]

log = logging.getLogger(__name__)
VAL_SPLITS = 3
LAYOUTS = {
    "single_gallery": ("train", "test"),
    "market1501": ("bounding_box_train", "query", "bounding_box_test"),
}
PROTOCOLS = tuple(LAYOUTS)
_LAYOUT_TEXT = {
    "single_gallery": "<root>/train/<identity>/*.jpg and <root>/test/<identity>/*.jpg",
    "market1501": "<root>/bounding_box_train, <root>/query and <root>/bounding_box_test holding "
                  "Market-1501 files named like 0002_c1s1_000451_03.jpg",
}


class ReidDataModule(L.LightningDataModule):
    """Train / val / test re-ID sets and loaders (see the module docstring for the protocols)."""

    def __init__(
        self,
        root: str | Path | None,
        protocol: str = "single_gallery",
        root_env: str = "REID_ROOT",
        image_size: list[int] = [224, 224],  # noqa: B006 - read-only, mirrors the YAML default
        batch_size: int = 32,
        num_instances: int = 4,
        num_splits: int = 10,
        split_seed: int = 0,
        val_identities: float = 0.2,
        train_normalize: bool = True,
        augment: dict | None = None,
        num_workers: int = 2,
        eval_batch_size: int = 64,
    ) -> None:
        super().__init__()
        if protocol not in LAYOUTS:
            raise ZoolabError(f"unknown re-ID protocol '{protocol}'", where="dataset.protocol",
                              fix=f"use one of {', '.join(PROTOCOLS)}")
        size = [int(v) for v in (image_size if not isinstance(image_size, int) else [image_size] * 2)]
        if len(size) != 2 or min(size) < 1:
            raise ZoolabError(f"image_size must be [H, W], got {list(image_size)}",
                              where="dataset.image_size", fix="e.g. image_size=[256,128]")
        bad_k = num_instances and (batch_size < num_instances or batch_size % num_instances)
        if num_instances < 0 or bad_k:
            raise ZoolabError(
                f"batch_size ({batch_size}) must be a multiple of num_instances ({num_instances})",
                where="dataset.batch_size / dataset.num_instances",
                fix="e.g. batch_size=64 num_instances=4, or num_instances=0 for plain shuffling")
        if num_splits < 1:
            raise ZoolabError(f"num_splits must be >= 1, got {num_splits}", where="dataset.num_splits",
                              fix="e.g. num_splits=10")
        self.root = root
        self.protocol = protocol
        self.root_env = root_env
        self.image_size = tuple(size)
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.num_splits = num_splits
        self.split_seed = split_seed
        self.val_identities = val_identities
        self.train_normalize = train_normalize
        self.augment = check_augment(augment)
        self.num_workers = num_workers
        self.eval_batch_size = eval_batch_size
        self._datasets: dict[str, ReidImageDataset] = {}
        self._class_names: list[str] = []

    # ----------------------------------------------------------------- setup
    def _resolve_root(self) -> Path:
        root = self.root if self.root not in (None, "") else os.environ.get(self.root_env or "", None) or None
        folders = LAYOUTS[self.protocol]
        if root is None or not all((Path(root).expanduser() / f).is_dir() for f in folders):
            found = f"dataset.root={root!r}" if root is not None else "no dataset.root"
            env = f"${self.root_env} is {'set' if os.environ.get(self.root_env or '') else 'not set'}"
            raise ZoolabError(
                f"re-ID data not found ({found}, {env}); protocol '{self.protocol}' expects "
                f"{_LAYOUT_TEXT[self.protocol]}",
                where="dataset.root" + (f" / ${self.root_env}" if self.root_env else ""),
                fix=(f"set {self.root_env}=/path/to/data or " if self.root_env else "set ")
                + "dataset.root=/path/to/data, or add +smoke=cpu to run on the synthetic data")
        return Path(root).expanduser()

    def setup(self, stage: str | None = None) -> None:
        """Read the layout, hold out validation identities and build the datasets (once)."""
        if self._datasets:
            return
        root = self._resolve_root()
        build = self._identity_folder_sets if self.protocol == "single_gallery" else self._market_sets
        train_samples, names, val, test = build(root)
        self._class_names = names
        label_of = {pid: label for label, pid in enumerate(sorted({s.pid for s in train_samples}))}
        self._datasets["train"] = ReidImageDataset(train_samples, self.image_size,
                                                   labels=[label_of[s.pid] for s in train_samples],
                                                   augment=self.augment)
        if val is not None:
            overlap = {s.path.resolve() for s in val.samples} & {s.path.resolve() for s in test.samples}
            if overlap:
                raise ZoolabError(f"{len(overlap)} validation image(s) are also test images, e.g. "
                                  f"{sorted(overlap)[0]}", where=str(root),
                                  fix="keep the train and test folders apart (no shared files or links)")
            self._datasets["val"] = val
        self._datasets["test"] = test
        log.info("re-ID %s: %d training images of %d identities, %s, test %d images", self.protocol,
                 len(train_samples), len(names), f"val {len(val)} images" if val is not None else "no val",
                 len(test))

    def _identity_folder_sets(self, root: Path):
        train, test = read_identity_folders(root / "train"), read_identity_folders(root / "test")
        names = list(train)
        shared = sorted(set(names) & set(test))
        if shared:
            log.warning("identity folder names %s appear in both train/ and test/: make sure they are "
                        "different people", shared[:5])
        held = draw_held_out(names, [n for n in names if len(train[n]) >= 2], self.val_identities,
                             self.split_seed, "dataset.val_identities")
        kept = [n for n in names if n not in held]
        train_samples = [ReidSample(p, i, 0) for i, n in enumerate(kept) for p in train[n]]
        val = None
        if held:
            val_samples = [ReidSample(p, i, 0) for i, n in enumerate(held) for p in train[n]]
            val = SingleGalleryEvalSet(val_samples, self.image_size, min(self.num_splits, VAL_SPLITS),
                                       self.split_seed)
        singletons = [n for n in test if len(test[n]) < 2]
        if singletons:
            log.warning("%d test identities have a single image and cannot take part in single-gallery "
                        "splits; dropped: %s", len(singletons), singletons[:10])
        usable = [n for n in test if len(test[n]) >= 2]
        if not usable:
            raise ZoolabError(f"no test identity in {root / 'test'} has 2 or more images",
                              where=str(root / "test"), fix="give each test identity 2 or more images")
        test_samples = [ReidSample(p, i, 0) for i, n in enumerate(usable) for p in test[n]]
        test_set = SingleGalleryEvalSet(test_samples, self.image_size, self.num_splits, self.split_seed)
        return train_samples, kept, val, test_set

    def _market_sets(self, root: Path):
        train = read_market_dir(root / "bounding_box_train", keep_distractors=False)
        by_pid: dict[int, list[ReidSample]] = {}
        for sample in train:
            by_pid.setdefault(sample.pid, []).append(sample)
        pids = sorted(by_pid)
        eligible = [p for p in pids if len(by_pid[p]) > len({s.camid for s in by_pid[p]}) >= 2]
        held = set(draw_held_out(pids, eligible, self.val_identities, self.split_seed,
                                 "dataset.val_identities"))
        kept = [p for p in pids if p not in held]
        val = None
        if held:
            query, gallery = [], []
            for pid in sorted(held):
                seen = set()
                for sample in by_pid[pid]:
                    (gallery if sample.camid in seen else query).append(sample)
                    seen.add(sample.camid)
            val = QueryGalleryEvalSet(query, gallery, self.image_size)
        test = QueryGalleryEvalSet(read_market_dir(root / "query", keep_distractors=False),
                                   read_market_dir(root / "bounding_box_test", keep_distractors=True),
                                   self.image_size)
        train_samples = [s for p in kept for s in by_pid[p]]
        return train_samples, [str(p) for p in kept], val, test

    # ------------------------------------------------------------ accessors
    @property
    def class_names(self) -> list[str]:
        """Training identity names in label order (folder names, or Market pids as strings)."""
        self.setup()
        return list(self._class_names)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def eval_splits(self) -> list[str]:
        """Held-out splits in evaluation order: ``["val", "test"]`` (``["test"]`` when val_identities=0)."""
        self.setup()
        return [s for s in ("val", "test") if s in self._datasets]

    def dataset(self, split: str) -> ReidImageDataset:
        self.setup()
        if split not in self._datasets:
            raise ZoolabError(f"no '{split}' split in this re-ID dataset", where="dataset",
                              fix=f"use one of {', '.join(self._datasets)}")
        return self._datasets[split]

    # ------------------------------------------------------------- loaders
    def _dataloader(self, dataset, batch_size: int, **kwargs) -> DataLoader:
        return DataLoader(dataset, batch_size=batch_size, **eval_loader_kwargs(self.num_workers), **kwargs)

    def loader(self, split: str) -> DataLoader:
        """Items of ``split`` in dataset order (no shuffling, ``eval_batch_size``), for feature extraction."""
        return self._dataloader(self.dataset(split), self.eval_batch_size, shuffle=False)

    def train_dataloader(self) -> DataLoader:
        train = self.dataset("train")
        if self.num_instances == 0:
            # drop_last: a last batch of one image would break BatchNorm in the inversion MLP / BNNeck
            return train_loader(train, self.num_workers, shuffle=True, batch_size=self.batch_size, drop_last=True)
        sampler = RandomIdentitySampler(train.labels, self.batch_size, self.num_instances,
                                        seed=torch.initial_seed() % 2 ** 32)
        return train_loader(train, self.num_workers, sampler=sampler, batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader | list:
        return self.loader("val") if "val" in self.eval_splits else []

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")
