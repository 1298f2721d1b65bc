"""Reading zoolab checkpoints: Lightning ``*.ckpt``, exported ``model.safetensors``, adapter-only files.

``ckpt=PATH`` (evaluate without training) and ``task=visualize`` load through :func:`load_checkpoint`;
every failure becomes one ZoolabError naming the file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, open_dict

from zoolab.errors import ZoolabError
from zoolab.run_outputs import ADAPTER_CONTENT

__all__ = ["checkpoint_path", "is_adapter_file", "load_checkpoint", "load_lightning_weights",
           "skip_pretrained_for_full_checkpoint"]


def checkpoint_path(cfg: DictConfig) -> Path:
    """The existing file named by ``ckpt=``."""
    path = Path(str(cfg.ckpt)).expanduser()
    if not path.is_file():
        raise ZoolabError(f"checkpoint '{cfg.ckpt}' does not exist", where="ckpt",
                          fix="point ckpt at a run folder's checkpoints/best.ckpt or checkpoints/model.safetensors")
    return path


def is_adapter_file(path: Path) -> bool:
    """Whether ``path`` holds only the trained tensors of a run (they go on top of the pretrained base)."""
    if Path(path).suffix != ".safetensors" or not Path(path).is_file():
        return False
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        return (handle.metadata() or {}).get("content") == ADAPTER_CONTENT


def skip_pretrained_for_full_checkpoint(cfg: DictConfig) -> None:
    """A full checkpoint replaces every weight, so the backbone is built without its pretrained file:
    evaluating an exported model must not demand the original weights. Adapter-only files and
    checkpoints that store only the trained tensors still need the pretrained base."""
    path = Path(str(cfg.ckpt)).expanduser() if cfg.get("ckpt") else None
    if path is None or "pretrained" not in cfg.backbone or is_adapter_file(path) or _holds_trained_only(path):
        return
    with open_dict(cfg):
        cfg.backbone.pretrained = False


def _holds_trained_only(path: Path) -> bool:
    if path.suffix != ".ckpt" or not path.is_file():
        return False
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return False
    return bool(state.get("zoolab_frozen_base"))


def load_lightning_weights(task, path: Path) -> int | None:
    """Load a Lightning checkpoint's weights into ``task``; return the checkpoint's epoch."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if hasattr(task, "restore_frozen_base"):
        task.restore_frozen_base(checkpoint)
    task.load_state_dict(checkpoint["state_dict"])
    return checkpoint.get("epoch")


def load_checkpoint(task, path: Path) -> None:
    """Load a Lightning ``*.ckpt``, an exported ``model.safetensors`` or (tasks with adapters) an
    adapter-only ``adapter.safetensors`` into ``task``."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            if is_adapter_file(path) and hasattr(task, "load_adapter_state_dict"):
                task.load_adapter_state_dict(load_file(str(path)))  # trained tensors on top of the base
            else:
                task.load_export_state_dict(load_file(str(path)))
        else:
            load_lightning_weights(task, path)
    except ZoolabError:
        raise
    except Exception as exc:  # corrupt file, wrong format, or weights of another architecture
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ZoolabError(
            f"checkpoint '{path}' cannot be loaded into this experiment's model ({type(exc).__name__}: {first[:300]})",
            where="ckpt",
            fix="pass checkpoints/best.ckpt or checkpoints/model.safetensors of a run of the same experiment "
                "(same backbone, adapter and head settings)",
        ) from None
