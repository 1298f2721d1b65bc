"""Embedding extraction (step 1 of the classifier family): a frozen encoder over an image tree into an
embedding cache (the helpers and the cache key: ``zoolab.tasks.embed``). Nothing is trained; the run
folder gets ``embed_metrics.json`` (image count, dimension, cache path, whether it was reused)."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from zoolab.data.embedding_cache import EmbeddingCache, cache_info, cache_key, save_cache
from zoolab.errors import ZoolabError
from zoolab.families.base import Family
from zoolab.tasks.embed import POOLINGS, check_stats, class_names_of, extract, fingerprint, groups_csv_path, \
    image_root, key_settings, read_groups, sanitise

__all__ = ["EmbedFamily", "extract_embeddings"]

log = logging.getLogger(__name__)


class EmbedFamily(Family):
    accepts_checkpoint = False
    exports_weights = False

    def build_datamodule(self):
        return None

    def build_task(self, datamodule):
        return None

    def fit_phases(self, task, datamodule, out):
        return iter(())

    def evaluate(self, task, trainer, datamodule, out):
        out.write_json("embed_metrics.json", extract_embeddings(self.cfg, out.record))
        return {}


def extract_embeddings(cfg: DictConfig, record) -> dict:
    """Embed ``dataset.root`` with ``backbone`` into an embedding cache (reused when it exists); returns
    what the run folder's ``embed_metrics.json`` holds."""
    from hydra.utils import instantiate

    from zoolab.data.image_folder import ImageFolderSplit
    from zoolab.data.transforms import build_transform

    began = time.perf_counter()
    pooling = cfg.task.get("pooling", "cls")
    if pooling not in POOLINGS:
        raise ZoolabError(f"task.pooling is {pooling!r}", where="task.pooling",
                          fix=f"use one of {', '.join(POOLINGS)}")
    ds = cfg.dataset
    with record.phase("load"):
        root = image_root(ds)
        classes = class_names_of(root, ds.get("classes"))
        dataset = ImageFolderSplit(root, classes, build_transform(int(cfg.backbone.input_size)))
        image_ids = [p.relative_to(root).as_posix() for p, _ in dataset.samples]
        groups_csv = groups_csv_path(root, ds.get("groups_csv"))
        groups, group_names = read_groups(groups_csv, image_ids)
        samples = [(i, label, p.stat().st_size) for i, (p, label) in zip(image_ids, dataset.samples)]
        default_dir = Path(os.environ.get("ZOOLAB_CACHE", Path.home() / ".cache" / "zoolab")) / "embeddings"
        out_dir = Path(str(ds.get("out_dir") or default_dir)).expanduser()
        settings = key_settings(cfg, out_dir, fingerprint(samples, groups))
        key = cache_key(**settings)
        final = out_dir / f"{sanitise(cfg.backbone.name)}-{key}.safetensors"

    reused = final.is_file()
    if reused:
        log.info("reusing embedding cache %s (same encoder settings and images)", final)
        info = cache_info(final)
        num_images, dim, used = info["num_images"], info["dim"], info["meta"].get("pooling_used")
    else:
        with record.phase("load"):
            # Seeded right here: the cache key names random-init weights by this seed alone.
            torch.manual_seed(int(cfg.get("seed", 0)))
            backbone = instantiate(cfg.backbone)
            check_stats(backbone, settings)
        with record.phase("extract"):
            vectors, used = extract(backbone, dataset, final, int(ds.get("batch_size", 32)),
                                    int(ds.get("num_workers", 0)), int(cfg.task.get("chunk_size", 50)),
                                    pooling)
            meta = dict(settings, encoder=cfg.backbone.name, dim=int(vectors.shape[1]), pooling_used=used,
                        key=key, root=str(root), groups_csv=str(groups_csv) if groups_csv else None,
                        synthetic=False, num_images=len(image_ids), group_names=group_names)
            save_cache(final, EmbeddingCache(vectors, torch.tensor(dataset.targets), torch.tensor(groups),
                                             image_ids, classes, meta))
            shutil.rmtree(final.with_name(final.name + ".partial"), ignore_errors=True)
            if used != pooling:
                log.warning("%s has no tokens for %s pooling; used the model's own pooled output",
                            cfg.backbone.name, pooling)
        num_images, dim = len(image_ids), int(vectors.shape[1])

    record.update(cache_path=str(final), pooling_used=used)
    return dict(num_images=num_images, dim=dim, seconds=round(time.perf_counter() - began, 3),
                cache_path=str(final), reused=reused)
