"""Reading a local ``backbone.weights`` file and checking that it fits the model, with short errors.

Shared by every backbone loader (timm pooled features, timm feature maps, open_clip). Two things go wrong
with a weights file: it is not a checkpoint at all (text, an HTML error page saved as ``.safetensors``, a
truncated download), or it is the checkpoint of another architecture. Both stop with one
:class:`~zoolab.errors.ZoolabError` that names the file and ``backbone.weights``, says which of the two it
is, and lists at most :data:`SHOWN` keys per kind of mismatch (with shapes) plus the count of the rest,
instead of torch's page-long list of size mismatches or a raw deserialisation error.

``timm_pretrained_checked(path, name)`` keeps timm's own loading pipeline (checkpoint filter, input-conv
adaptation, classifier removal, and for ``features_only`` models loading before the feature wrapping) and
only replaces its file reader with :func:`read_state_dict` and puts :func:`check_fits` in front of the
final ``load_state_dict``. timm drops to ``strict=False`` whenever the classifier is removed
(``num_classes=0``, ``features_only``), which would otherwise load a checkpoint of another architecture
silently into a randomly initialised model.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import torch
from torch import nn

from zoolab.errors import ZoolabError

__all__ = ["SHOWN", "check_fits", "checked_load_state_dict", "read_state_dict", "sniff_format",
           "timm_pretrained_checked", "unreadable"]

log = logging.getLogger(__name__)

SHOWN = 3  # keys listed per kind of mismatch; the rest are counted

_NESTED_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")  # timm's order (EMA weights first)


def _fix(name: str) -> str:
    return (f"point backbone.weights at a checkpoint of '{name}' (backbone.name), or set backbone.name to "
            "the file's architecture, or use backbone.pretrained=false backbone.weights=null for random init")


def _where(where: str, path: str | Path) -> str:
    return f"{where}={path}" if where == "backbone.weights" else f"{where}, file {path}"


def unreadable(path: str | Path, name: str, reason: str, where: str = "backbone.weights") -> ZoolabError:
    """The error for a file that is not a readable checkpoint."""
    reason = " ".join(str(reason).split())
    if len(reason) > 200:
        reason = reason[:200] + "..."
    return ZoolabError(f"weights file '{path}' is not a readable checkpoint ({reason})",
                       where=_where(where, path), fix=_fix(name))


def sniff_format(path: str | Path) -> str:
    """``safetensors``, ``torch-zip`` (torch.save, TorchScript), ``torch-pickle`` (legacy torch.save) or
    ``unknown``, from the file's first bytes (not its name)."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head[:4] == b"PK\x03\x04":
        return "torch-zip"
    if len(head) > 8 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= 100_000_000:
        return "safetensors"
    if head[:1] == b"\x80" or head[:2] == b"\x8a\x0a":  # pickle protocol >= 2, legacy torch magic number
        return "torch-pickle"
    return "unknown"


def _describe_unknown(path: str | Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(40)
    if not head:
        return "the file is empty"
    text = head.decode("utf-8", errors="replace")
    if all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        return f"it is text starting {' '.join(text.split())[:30]!r}, not a .safetensors or torch.save file"
    return "it is neither a .safetensors nor a torch.save file"


def read_state_dict(path: str | Path, name: str, where: str = "backbone.weights") -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` or ``torch.save`` checkpoint (format read from the content), taken
    from a nested ``state_dict_ema``/``model_ema``/``state_dict``/``model`` entry when there is one and with
    a ``module.`` prefix removed, as timm reads them. Anything else stops with :func:`unreadable`."""
    kind = sniff_format(path)
    if kind == "unknown":
        raise unreadable(path, name, _describe_unknown(path), where)
    try:
        if kind == "safetensors":
            from safetensors.torch import load_file

            checkpoint = load_file(str(path), device="cpu")
        else:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every reader failure means the same thing to the user
        reason = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc):
            reason = "it holds pickled Python objects besides tensors, which zoolab does not unpickle"
        elif "TorchScript" in str(exc) or "constants.pkl" in str(exc):
            reason = "it is a TorchScript archive, not a state dict"
        raise unreadable(path, name, f"{kind}: {reason}", where) from None
    if isinstance(checkpoint, Mapping):
        for key in _NESTED_KEYS:
            if isinstance(checkpoint.get(key), Mapping):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, Mapping):
        raise unreadable(path, name, f"it holds a {type(checkpoint).__name__}, not a dict of tensors", where)
    tensors = {k.removeprefix("module."): v for k, v in checkpoint.items()
               if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise unreadable(path, name, "it holds no tensors", where)
    return tensors


def _shape(tensor: torch.Tensor) -> str:
    return "[" + ", ".join(str(d) for d in tensor.shape) + "]"


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def mismatch_summary(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor],
                     missing: list[str], unexpected: list[str], mismatched: list[str]) -> str:
    """At most :data:`SHOWN` keys of each kind, with shapes, and the count of the rest."""
    def count(items: list, one: str, many: str) -> str:
        return f"{len(items)} {one if len(items) == 1 else many}"

    parts = []
    if mismatched:
        parts.append(count(mismatched, "tensor differs", "tensors differ") + " in shape (file vs model): "
                     + _listed([f"{k} {_shape(given[k])} vs {_shape(expected[k])}" for k in mismatched]))
    if missing:
        parts.append(count(missing, "model tensor is", "model tensors are") + " not in the file: "
                     + _listed([f"{k} {_shape(expected[k])}" for k in missing]))
    if unexpected:
        parts.append(count(unexpected, "file tensor is", "file tensors are") + " not in the model: "
                     + _listed([f"{k} {_shape(given[k])}" for k in unexpected]))
    return "; ".join(parts)


def check_fits(model: nn.Module, state_dict: Mapping[str, torch.Tensor], path: str | Path, name: str,
               strict: bool = True, ignore_missing: Iterable[str] = (), where: str = "backbone.weights") -> None:
    """Stop with a short architecture-mismatch error unless ``state_dict`` loads into ``model``.

    ``strict``: any missing or unexpected key is an error (open_clip's loading). Otherwise (timm's, which
    has removed the classifier) shape mismatches, missing parameters and unexpected keys are; missing
    buffers and BatchNorm step counters either way (older checkpoints) are only logged.
    ``ignore_missing``: key prefixes left out on purpose (the removed classifier).
    """
    expected = model.state_dict()
    prefixes = tuple(ignore_missing)
    missing = [k for k in expected if k not in state_dict and not (prefixes and k.startswith(prefixes))]
    # BatchNorm's step counters say least about the file: list them last
    unexpected = sorted((k for k in state_dict if k not in expected), key=lambda k: k.endswith("num_batches_tracked"))
    mismatched = [k for k in expected if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)]
    if strict:
        fatal = bool(mismatched or missing or unexpected)
    else:
        parameters = {k for k, _ in model.named_parameters()}
        fatal = bool(mismatched or any(k in parameters for k in missing)
                     or any(not k.endswith("num_batches_tracked") for k in unexpected))
    if not (fatal or missing or unexpected):
        return
    summary = mismatch_summary(expected, state_dict, missing, unexpected, mismatched)
    if not fatal:
        log.warning("weights file '%s' loaded into '%s' with differences: %s", path, name, summary)
        return
    loaded = sum(1 for k in expected if k in state_dict and k not in mismatched)
    raise ZoolabError(
        f"weights file '{path}' does not fit '{name}' (architecture mismatch: {loaded} of the model's "
        f"{len(expected)} tensors match the file's {len(state_dict)}): {summary}",
        where=_where(where, path), fix=_fix(name),
    )


@contextlib.contextmanager
def checked_load_state_dict(model: nn.Module, path: str | Path, name: str, strict: bool = True,
                            ignore_missing: Iterable[str] = ()) -> Iterator[None]:
    """While open, ``model.load_state_dict`` first runs :func:`check_fits` on what it is given (for loaders
    that call it themselves after converting the checkpoint, such as open_clip's ``load_checkpoint``)."""
    original = model.load_state_dict

    def load_state_dict(state_dict, *args, **kwargs):
        check_fits(model, state_dict, path, name, strict=strict, ignore_missing=ignore_missing)
        return original(state_dict, *args, **kwargs)

    model.load_state_dict = load_state_dict  # an instance attribute shadows the method
    try:
        yield
    finally:
        del model.load_state_dict


@contextlib.contextmanager
def timm_pretrained_checked(path: str | Path, name: str, where: str = "backbone.weights") -> Iterator[None]:
    """While open, timm's ``create_model(..., pretrained=True)`` reads ``path`` with
    :func:`read_state_dict` and checks the converted checkpoint with :func:`check_fits` before loading it.

    timm's pipeline stays as it is; only ``timm.models._builder.load_pretrained`` is wrapped. Should a timm
    release move it, loading falls back to timm's own reader (unchecked) with a warning."""
    from timm.models import _builder

    original = getattr(_builder, "load_pretrained", None)
    if original is None:
        log.warning("timm.models._builder.load_pretrained not found: '%s' is loaded unchecked", path)
        yield
        return

    def load_pretrained(model: nn.Module, pretrained_cfg: dict | None = None, *args, **kwargs) -> None:
        cfg = dict(pretrained_cfg or getattr(model, "pretrained_cfg", None) or {})
        cfg.pop("file", None)
        cfg["source"] = ""  # never the hub
        cfg["state_dict"] = read_state_dict(path, name, where)
        classifier = cfg.get("classifier") or ()
        classifier = (classifier,) if isinstance(classifier, str) else tuple(classifier)
        try:
            with checked_load_state_dict(model, path, name, strict=False,
                                         ignore_missing=tuple(c + "." for c in classifier)):
                original(model, cfg, *args, **kwargs)
        except ZoolabError:
            raise
        except Exception as exc:  # noqa: BLE001 - timm's checkpoint filter failing on another architecture
            first = str(exc).splitlines()[0] if str(exc).strip() else ""
            raise ZoolabError(
                f"weights file '{path}' does not fit '{name}' (architecture mismatch: timm's conversion of "
                f"the checkpoint failed with {type(exc).__name__}: {first[:200]})",
                where=_where(where, path), fix=_fix(name),
            ) from None

    _builder.load_pretrained = load_pretrained
    try:
        yield
    finally:
        _builder.load_pretrained = original
