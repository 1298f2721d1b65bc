"""Embedding extraction: run a frozen timm encoder once over an image tree and cache the vectors.

``python -m zoolab +exp=embed_dinov3_vitl16 dataset.root=/path/to/images`` reads ``<root>/<class>/*.jpg``
(optional ``groups.csv`` with columns ``image,group``, image paths relative to the root) and writes
``<out_dir>/<backbone name>-<key>.safetensors`` in the embedding-cache format
(``zoolab.data.embedding_cache``). The key hashes everything that changes the vectors: backbone name,
weights file sha256 (or the random-init seed), pooling, input size, normalisation (flag, mean, std),
timm kwargs, and a fingerprint of the image list, labels and groups. An existing file is reused.

Pooling (from ``model.forward_features`` tokens, as upstream DINOv3 linear evaluation does; see the
docs/embedding_classifiers.md): ``cls`` = the CLS token, ``mean`` = mean of the patch tokens (CLS and
register tokens excluded, ``model.num_prefix_tokens``), ``both`` = concat(CLS, mean). Models without
tokens (CNNs), or without a CLS token when one is asked for, fall back to the model's own pooled
output, recorded as ``pooling_used: model``.

Resumable: every ``task.chunk_size`` batches are written to ``<final>.partial/chunk_XXXXX.safetensors``;
a rerun skips the chunks already there, then assembles the cache and deletes the partial folder.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch
from omegaconf import DictConfig

from zoolab.data.embedding_cache import cache_key
from zoolab.errors import ZoolabError
from zoolab.runfolder import read_json, write_json_atomic

__all__ = ["POOLINGS", "pool_tokens", "image_root", "class_names_of", "groups_csv_path", "read_groups",
           "key_settings", "fingerprint", "extract", "check_stats", "sanitise"]

log = logging.getLogger(__name__)
POOLINGS = ("cls", "mean", "both")
_VERSION = 1


# --- pooling -------------------------------------------------------------------------------------------

def pool_tokens(model: torch.nn.Module, features: torch.Tensor, pooling: str) -> tuple[torch.Tensor, str]:
    """Pool ``model.forward_features`` output; return (vectors, pooling actually used)."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    has_cls = getattr(model, "cls_token", None) is not None
    prefix = int(getattr(model, "num_prefix_tokens", 1 if has_cls else 0))
    tokens = features.ndim == 3 and getattr(model, "attn_pool", None) is None and features.shape[1] > prefix
    if not tokens or (pooling != "mean" and not has_cls):
        return model.forward_head(features, pre_logits=True), "model"
    fc_norm = getattr(model, "fc_norm", None)  # timm applies it after pooling (Identity for DINOv3 and CLIP)
    fc_norm = torch.nn.Identity() if fc_norm is None else fc_norm
    cls, mean = fc_norm(features[:, 0]), fc_norm(features[:, prefix:].mean(dim=1))
    return {"cls": cls, "mean": mean, "both": torch.cat([cls, mean], dim=1)}[pooling], pooling


@torch.inference_mode()
def _embed_batch(backbone, images: torch.Tensor, pooling: str, device: torch.device):
    """(pooled float32 CPU vectors, pooling used) for one batch of 0-255 images."""
    features = backbone.model.forward_features(backbone.preprocess(images.to(device)))
    vectors, used = pool_tokens(backbone.model, features, pooling)
    return vectors.float().cpu(), used


# --- the image tree and its groups ---------------------------------------------------------------------

def image_root(dataset: DictConfig) -> Path:
    node = dataset.get("root")
    if isinstance(node, DictConfig) and "_target_" in node:  # a synthetic generator returning a path
        from hydra.utils import instantiate

        node = instantiate(node)
    root = Path(str(node)).expanduser() if node else None
    if root is None or not root.is_dir():
        raise ZoolabError(
            f"image root '{node}' does not exist (expected an image tree <root>/<class>/*.jpg)",
            where="dataset.root",
            fix="set EMBED_IMAGES_ROOT=/path/to/images or dataset.root=/path/to/images, "
            "or add +smoke=cpu to embed the synthetic images",
        )
    return root


def class_names_of(root: Path, classes) -> list[str]:
    if classes:
        return [str(c) for c in classes]
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise ZoolabError(f"no class folders under {root}", where="dataset.root",
                          fix="lay the images out as <root>/<class>/*.jpg")
    return names


def groups_csv_path(root: Path, value) -> Path | None:
    if value:
        path = Path(str(value)).expanduser()
        if not path.is_file():
            raise ZoolabError(
                f"groups file '{value}' does not exist", where="dataset.groups_csv",
                fix="point dataset.groups_csv at a CSV with columns image,group, or set it to null",
            )
        return path
    default = root / "groups.csv"
    return default if default.is_file() else None


def read_groups(path: Path | None, image_ids: list[str]) -> tuple[list[int], list[str] | None]:
    """Group id per image (images missing from the CSV get their own group) and, when the CSV's group
    values are not integers, the group names in id order."""
    table: dict[str, str] = {}
    if path is not None:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            if not {"image", "group"} <= set(reader.fieldnames or []):
                raise ZoolabError(f"{path} has columns {reader.fieldnames}, expected image,group",
                                  where="dataset.groups_csv", fix="write a header line 'image,group'")
            for row in reader:
                table[Path(row["image"].strip()).as_posix().removeprefix("./")] = row["group"].strip()
        unknown = len(set(table) - set(image_ids))
        if unknown:
            log.warning("%d entries of %s name no image under the root; ignored", unknown, path)
    values = [table[i] for i in image_ids if i in table]
    if all(re.fullmatch(r"-?\d+", v) for v in values):
        mapping, names = {v: int(v) for v in values}, None
    else:
        names = sorted(set(values))
        mapping = {v: i for i, v in enumerate(names)}
    next_id = max(mapping.values(), default=-1) + 1
    groups = []
    for image_id in image_ids:
        if image_id in table:
            groups.append(mapping[table[image_id]])
        else:
            groups.append(next_id)
            next_id += 1
    return groups, names


# --- the cache key -------------------------------------------------------------------------------------

def _sha256_file(path: Path, memo_dir: Path) -> str:
    """sha256 of a weights file in 1 MB chunks, memoised by (path, size, mtime) in ``memo_dir``."""
    stat = path.stat()
    memo_path = memo_dir / "weights_sha256.json"
    memo = read_json(memo_path) or {}
    token = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    if token not in memo:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(2**20), b""):
                digest.update(block)
        memo[token] = digest.hexdigest()
        write_json_atomic(memo_path, memo)
    return memo[token]


def _norm_stats(name: str, model_kwargs: dict) -> tuple[list[float], list[float]]:
    """The mean/std TimmBackbone will use, read from timm's pretrained cfg without building the model."""
    import timm
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    overlay = dict(model_kwargs.get("pretrained_cfg_overlay") or {})
    mean = overlay.get("mean") or (cfg.mean if cfg else timm.data.IMAGENET_DEFAULT_MEAN)
    std = overlay.get("std") or (cfg.std if cfg else timm.data.IMAGENET_DEFAULT_STD)
    return [round(float(v), 8) for v in mean], [round(float(v), 8) for v in std]


def key_settings(cfg: DictConfig, out_dir: Path, data_fingerprint: str) -> dict:
    from omegaconf import OmegaConf

    from zoolab.backbones.timm_backbone import _check_model_name, resolve_local_weights

    bb = cfg.backbone
    _check_model_name(bb.name)
    node = bb.get("model_kwargs")
    if OmegaConf.is_config(node):
        model_kwargs = OmegaConf.to_container(node, resolve=True)
    else:
        model_kwargs = dict(node or {})
    if bb.get("pretrained"):
        weights = _sha256_file(Path(resolve_local_weights(bb.name, bb.get("weights"))), out_dir)
    else:
        weights = f"random-init(seed={cfg.get('seed', 0)})"
    mean, std = _norm_stats(bb.name, model_kwargs)
    return dict(
        backbone=bb.name, weights=weights, pooling=cfg.task.get("pooling", "cls"),
        input_size=int(bb.input_size), normalize=bool(bb.get("normalize", True)), mean=mean, std=std,
        global_pool=bb.get("global_pool"),
        model_kwargs=model_kwargs, data=data_fingerprint, version=_VERSION,
    )


def fingerprint(samples: list[tuple[str, int, int]], groups: list[int]) -> str:
    return cache_key(samples=samples, groups=groups)


# --- resumable extraction ------------------------------------------------------------------------------

def _save_chunk(path: Path, vectors: torch.Tensor, start: int, used: str) -> None:
    from safetensors.torch import save_file

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        metadata = {"start": str(start), "pooling_used": used}
        save_file({"embeddings": vectors.contiguous()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_chunk(path: Path, start: int, rows: int) -> tuple[torch.Tensor, str] | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta, vectors = fh.metadata() or {}, fh.get_tensor("embeddings")
    except Exception:
        return None
    if meta.get("start") != str(start) or vectors.shape[0] != rows:
        return None
    return vectors, meta.get("pooling_used", "")


def _partial_dir(final: Path, plan: dict) -> Path:
    """``<final>.partial/``, emptied when it was made with another batch plan."""
    partial = final.with_name(final.name + ".partial")
    if partial.is_dir() and read_json(partial / "plan.json") != plan:
        log.info("partial folder %s was made with another batch plan; starting over", partial)
        shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    write_json_atomic(partial / "plan.json", plan)
    return partial


def extract(backbone, dataset, final: Path, batch_size: int, num_workers: int, chunk_size: int,
             pooling: str) -> tuple[torch.Tensor, str]:
    from torch.utils.data import DataLoader, Subset
    from tqdm.auto import tqdm

    n = len(dataset)
    per_chunk = batch_size * chunk_size
    partial = _partial_dir(final, dict(num_images=n, batch_size=batch_size, chunk_size=chunk_size))
    spans = [(start, min(n, start + per_chunk)) for start in range(0, n, per_chunk)]
    done: dict[int, tuple[torch.Tensor, str]] = {}
    for j, (start, stop) in enumerate(spans):
        chunk = partial / f"chunk_{j:05d}.safetensors"
        loaded = _load_chunk(chunk, start, stop - start) if chunk.is_file() else None
        if loaded is not None:
            done[j] = loaded
    missing = [j for j in range(len(spans)) if j not in done]
    if done:
        log.info("resuming: %d of %d chunks already in %s", len(done), len(spans), partial)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backbone.to(device).eval()
    indices = [i for j in missing for i in range(*spans[j])]
    loader = DataLoader(Subset(dataset, indices), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers)
    batches = iter(loader)
    total = math.ceil(n / batch_size)
    with tqdm(total=total, initial=total - math.ceil(len(indices) / batch_size), unit="batch",
              desc=f"embed {final.name}", dynamic_ncols=True) as bar:
        for j in missing:
            start, stop = spans[j]
            parts, used = [], ""
            for _ in range(math.ceil((stop - start) / batch_size)):
                images, _ = next(batches)
                vectors, used = _embed_batch(backbone, images, pooling, device)
                parts.append(vectors)
                bar.update(1)
            done[j] = (torch.cat(parts), used)
            _save_chunk(partial / f"chunk_{j:05d}.safetensors", done[j][0], start, used)
    used = {u for _, u in done.values()}
    if len(used) != 1:
        raise RuntimeError(f"chunks in {partial} disagree on the pooling used: {sorted(used)}")
    return torch.cat([done[j][0] for j in range(len(spans))]), used.pop()


# --- checks ----------------------------------------------------------------------------------------------

def sanitise(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def check_stats(backbone, settings: dict) -> None:
    mean = (backbone.mean.flatten() / 255.0).tolist()
    std = (backbone.std.flatten() / 255.0).tolist()
    if not (torch.allclose(torch.tensor(mean), torch.tensor(settings["mean"]), atol=1e-6)
            and torch.allclose(torch.tensor(std), torch.tensor(settings["std"]), atol=1e-6)):
        raise RuntimeError(f"the built backbone normalises with mean {mean} / std {std}, but the cache key "
                           f"was computed with {settings['mean']} / {settings['std']}")
