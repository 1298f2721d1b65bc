"""Config checks: command-line overrides before Hydra composes, then every key of the composed config.

``+smoke`` needs no Python: the root defaults list merges it after the experiment (see conf/config.yaml),
so the composed config Hydra saves and prints is the one that runs. Validation is structural: root keys come from a dataclass schema, and every node with a ``_target_``
is checked against the signature of what it builds (unknown keys, wrong scalar types, unknown targets),
so a typo fails at start-up with the key's path, the allowed values and a close match.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import importlib.resources
import inspect
import typing
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from zoolab.errors import ZoolabError

__all__ = ["CONF_DIR", "RootConfig", "deep_merge", "prepare_config", "validate_config", "config_hash", "normalize_overrides",
           "check_override_keys", "chosen_experiment"]

CONF_DIR = Path(str(importlib.resources.files("zoolab.conf")))   # conf/, installed as the package zoolab.conf
_SPECIAL = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}


@dataclasses.dataclass
class TaskConfig:
    name: str
    monitor: Any = None     # what checkpointing and early stopping read (training tasks)
    monitor_mode: Any = None
    module: Any = None      # the LightningModule partial (every task but export)
    family: str = "zoolab.families.base.Family"   # the pipeline hooks of this family
    stages: Any = None      # multi-stage methods (image_cls_two_stage)
    pooling: Any = None     # embed: cls | mean | both
    chunk_size: Any = None  # embed: batches per resumable chunk
    split: Any = None         # visualize: which split's images to paint
    num_images: Any = None    # visualize: how many images (null: all)
    sample: Any = None        # visualize: a seeded sample of N images
    sample_seed: Any = None   # visualize: the sample's seed
    score_thresh: Any = None  # visualize: lowest prediction score drawn
    int8: Any = None                # export: also write an int8 graph
    calibration_images: Any = None  # export: training images that calibrate it


@dataclasses.dataclass
class RootConfig:
    """Keys allowed at the top of the composed config (component groups are checked by signature)."""

    exp: str
    exp_id: Any
    seed: int
    ckpt: Any
    keep_last_ckpt: bool
    reported: Any
    report: Any
    paths: Any
    task: TaskConfig
    dataset: Any
    backbone: Any
    adapter: Any
    head: Any
    loss: Any
    optim: Any
    sched: Any
    trainer: Any
    logger: Any
    callbacks: Any
    smoke: Any = None
    objective: Any = None   # "<split>/<metric>" a sweeper optimises (hydra/sweeper=optuna)
    format: str = "onnx"    # task=export: the file format written


def _suggest(key: str, allowed: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    return f"did you mean '{close[0]}'? " if close else ""


def _check_keys(node: DictConfig, allowed: typing.Iterable[str], path: str, owner: str) -> None:
    allowed = sorted(set(allowed))
    for key in node.keys():
        if key not in allowed and key not in _SPECIAL:
            full = f"{path}.{key}" if path else str(key)
            raise ZoolabError(
                f"unknown config key '{full}' ({owner} accepts: {', '.join(allowed)})",
                where=full,
                fix=f"{_suggest(str(key), allowed)}fix the spelling in the exp file or on the command line",
            )


def _accepts_text(hint: Any) -> bool:
    import os

    if hint is typing.Any or typing.get_origin(hint) is typing.Literal:
        return True
    return inspect.isclass(hint) and issubclass(hint, (str, os.PathLike))


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        members = typing.get_args(hint)
        if isinstance(value, str) and not any(_accepts_text(h) for h in members):
            return False  # e.g. optim.lr=abc where a float or a tensor is expected
        return any(_type_ok(value, h) for h in members)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True  # containers, modules and anything else: not checked here


def _check_target(node: DictConfig, path: str) -> None:
    from hydra.utils import get_object

    target = node["_target_"]
    try:
        obj = get_object(target)
    except Exception as exc:
        raise ZoolabError(
            f"'{path}._target_' names '{target}', which cannot be imported ({exc})",
            where=f"{path}._target_",
            fix="use a dotted path to an installed class or function",
        ) from None
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return
    params = signature.parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    _check_keys(node, [n for n in params if n != "self"], path, target)
    try:
        hints = typing.get_type_hints(obj.__init__ if inspect.isclass(obj) else obj)
    except Exception:
        hints = {}
    for key in node.keys():
        if key in _SPECIAL or key not in hints or OmegaConf.is_missing(node, key):
            continue
        value = node[key]
        if isinstance(value, (DictConfig, ListConfig)):
            continue
        if not _type_ok(value, hints[key]):
            raise ZoolabError(
                f"'{path}.{key}' is {value!r} ({type(value).__name__}), but {target} expects {hints[key]}",
                where=f"{path}.{key}",
                fix="give a value of the expected type",
            )


def _walk(node: Any, path: str) -> None:
    if isinstance(node, DictConfig):
        if "_target_" in node:
            _check_target(node, path)
        for key in node.keys():
            if key not in _SPECIAL:
                _walk(node[key], f"{path}.{key}" if path else str(key))
    elif isinstance(node, ListConfig):
        for i, item in enumerate(node):
            _walk(item, f"{path}[{i}]")


def validate_config(cfg: DictConfig) -> None:
    """Raise ZoolabError on an unknown key, a wrong scalar type, an unknown target or a missing value."""
    _check_keys(cfg, [f.name for f in dataclasses.fields(RootConfig)], "", "the root config")
    _check_keys(cfg.task, [f.name for f in dataclasses.fields(TaskConfig)], "task", "task")
    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except Exception as exc:
        key = getattr(exc, "full_key", "") or ""
        raise ZoolabError(
            f"the config cannot be resolved: {str(exc).splitlines()[0]}",
            where=key or "the composed config",
            fix="set the missing value on the command line (key=value) or in the exp file",
        ) from None
    for group in ("dataset", "backbone", "adapter", "head", "loss", "optim", "sched", "trainer",
                  "logger", "callbacks", "task"):
        _walk(cfg[group], group)


def prepare_config(cfg: DictConfig, overrides: list[str] | None = None, dataset_choice: str | None = None) -> DictConfig:
    """Validate the composed config (the arguments beyond ``cfg`` are kept for callers of the old API)."""
    validate_config(cfg)
    return cfg


def config_hash(cfg: DictConfig) -> str:
    """12 hex digits of the resolved config without ``paths`` (key order does not matter)."""
    import hashlib
    import json

    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("paths", None)
    text = json.dumps(container, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# ------------------------------------------------------------------------------ command-line overrides
# `+exp=` and `+smoke=` are how users choose an experiment and a smoke mode; the root defaults list holds
# both slots (so the smoke settings merge after the experiment), which Hydra fills with `exp=`/`smoke=`.
_SLOT_GROUPS = ("exp", "smoke")


def normalize_overrides(overrides: list[str]) -> list[str]:
    """``+exp=X`` -> ``exp=X`` and ``+smoke=Y`` -> ``smoke=Y`` (the root config's own slots)."""
    result = []
    for item in overrides:
        key = item.split("=", 1)[0]
        if "=" in item and key.lstrip("+") in _SLOT_GROUPS and key.startswith("+") and not key.startswith("++"):
            item = item[1:]
        result.append(item)
    return result


def chosen_experiment(overrides: list[str]) -> str | None:
    """The value given to ``exp=`` / ``+exp=`` on the command line, if any."""
    for item in overrides:
        key, _, value = item.partition("=")
        if key.lstrip("+") == "exp" and value:
            return value
    return None


def _is_group(key: str) -> bool:
    return (CONF_DIR / key.replace(".", "/")).is_dir() or key.split("/")[0] in ("hydra",)


def check_override_keys(overrides: list[str]) -> None:
    """Stop before Hydra composes when a ``key=value`` override names a key the config does not have
    (Hydra's own message suggests appending the typo with ``+``): give the key's path, the keys its
    parent accepts and a close match."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Glob, OverrideType

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:
        return  # Hydra reports syntax errors itself
    plain = [o for o in parsed if o.type is OverrideType.CHANGE and o.package is None
             and not _is_group(o.key_or_group) and o.key_or_group.split(".")[0] != "hydra"]
    if not plain:
        return
    choices = []
    for o in parsed:
        if _is_group(o.key_or_group) and o.key_or_group.split(".")[0] != "hydra":
            if isinstance(o.value(), Glob):
                return  # a glob sweep: each job is checked by Hydra when it composes
            value = next(iter(o.sweep_string_iterator()), None) if o.is_sweep_override() else o.get_value_element_as_str()
            if value is None or "glob(" in str(value):
                return  # a glob sweep: each job is checked by Hydra when it composes
            choices.append(f"{'+' if o.type is OverrideType.ADD else ''}{o.key_or_group}={value}")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=choices)
    except Exception:
        return  # bad group choices: Hydra's own message names them
    finally:
        GlobalHydra.instance().clear()
    for o in plain:
        _check_key_exists(cfg, o.key_or_group)


def _check_key_exists(cfg: DictConfig, key: str) -> None:
    parent_path, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_path) if parent_path else cfg
    if isinstance(parent, DictConfig) and leaf in parent:
        return
    if not isinstance(parent, DictConfig):
        if parent is None and parent_path:
            _check_key_exists(cfg, parent_path)
        return
    allowed = sorted(str(k) for k in parent.keys())
    raise ZoolabError(
        f"unknown config key '{key}' ({parent_path or 'the root config'} has: {', '.join(allowed)})",
        where=key,
        fix=f"{_suggest(leaf, allowed)}fix the spelling (a key that is really new needs '+{key}=...')",
    )


def deep_merge(base: dict, other: dict) -> dict:
    """Plain mappings merged the way OmegaConf merges configs: key by key, nested mappings merged,
    anything else (lists included) replaced by a copy of ``other``'s value."""
    merged = copy.deepcopy(base)
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
