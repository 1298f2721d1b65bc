"""Config preparation after Hydra composed it: apply ``+smoke``, then validate every key.

Validation is structural: root keys come from a dataclass schema, and every node with a ``_target_``
is checked against the signature of what it builds (unknown keys, wrong scalar types, unknown targets),
so a typo fails at start-up with the key's path, the allowed values and a close match.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import typing
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from zoolab.errors import ZoolabError

__all__ = ["CONF_DIR", "RootConfig", "prepare_config", "apply_smoke", "validate_config", "config_hash"]

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
_SPECIAL = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}
_DATA_SOURCE_KEYS = {"_target_", "root", "cache", "root_env"}


@dataclasses.dataclass
class TaskConfig:
    name: str
    synthetic_dataset: str
    monitor: str
    monitor_mode: str
    module: Any
    runner: str = "zoolab.train.train_and_evaluate"
    stages: Any = None      # multi-stage methods (image_cls_two_stage)
    smoke: Any = None       # the family's +smoke=cpu values
    pooling: Any = None     # embed: cls | mean | both
    chunk_size: Any = None  # embed: batches per resumable chunk
    split: Any = None         # visualize: which split's images to paint
    num_images: Any = None    # visualize: how many images
    score_thresh: Any = None  # visualize: lowest prediction score drawn


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


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
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


def _cli_value_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    result = []
    for o in parsed:
        key = o.key_or_group
        is_group = (CONF_DIR / key.replace(".", "/")).is_dir()
        if o.is_delete() or key.split(".")[0] == "hydra" or is_group or o.is_sweep_override():
            continue
        result.append((key, o.value()))
    return result


def _cap_epochs(node: Any, limit: int, skip: tuple[str, ...] = ("reported", "report", "trainer")) -> None:
    """Cap every integer ``*epochs`` value (stage lengths, cRT or hard-mining epochs, ...) at the smoke
    run's epoch count, so no family-specific schedule turns a smoke run into a long one."""
    if not isinstance(node, DictConfig):
        return
    for key in node.keys():
        if key in skip or OmegaConf.is_missing(node, key) or OmegaConf.is_interpolation(node, key):
            continue
        value = node[key]
        if isinstance(value, DictConfig):
            _cap_epochs(value, limit, ())
        elif str(key).endswith("epochs") and isinstance(value, int) and not isinstance(value, bool) and value > limit:
            node[key] = limit


def apply_smoke(cfg: DictConfig, overrides: list[str], dataset_choice: str | None = None) -> DictConfig:
    """Make ``+smoke=...`` win whatever the command-line order, while explicit key=value overrides win
    over smoke: swap in the family's synthetic dataset (keeping the class list) unless it is already the
    chosen dataset, merge the smoke values, then re-apply the command line's value overrides."""
    if not cfg.get("smoke"):
        return cfg
    synthetic_name = cfg.task.synthetic_dataset
    dataset_file = CONF_DIR / "dataset" / f"{synthetic_name}.yaml"
    chosen = dataset_choice == synthetic_name
    synthetic = cfg.dataset if chosen else OmegaConf.load(dataset_file)
    for key in [] if chosen else synthetic:
        # Only the data source changes: the experiment's settings of the same keys carry over.
        if key not in _DATA_SOURCE_KEYS and key in cfg.dataset:
            synthetic[key] = cfg.dataset._get_node(key)
    smoke_values = OmegaConf.masked_copy(cfg.smoke, [k for k in cfg.smoke if k != "name"])
    with open_dict(cfg):
        cfg.dataset = synthetic
        cfg.merge_with(smoke_values, cfg.task.get("smoke") or {})
        _cap_epochs(cfg, int(cfg.trainer.max_epochs))
        for key, value in _cli_value_overrides(overrides):
            if key.split(".")[0] != "smoke":
                OmegaConf.update(cfg, key, value, force_add=True)
    return cfg


def prepare_config(cfg: DictConfig, overrides: list[str], dataset_choice: str | None = None) -> DictConfig:
    cfg = apply_smoke(cfg, overrides, dataset_choice)
    validate_config(cfg)
    return cfg


def config_hash(cfg: DictConfig) -> str:
    import hashlib

    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("paths", None)
    return hashlib.sha256(OmegaConf.to_yaml(OmegaConf.create(container)).encode()).hexdigest()[:12]
