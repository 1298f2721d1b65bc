"""OmegaConf resolvers used by conf/config.yaml for run and sweep folder names.

Registered by :func:`register_resolvers`, which the entry point calls before Hydra composes.

A sweep's folder is named from the command line's overrides (``hydra.overrides.task`` of the
multirun-level config), where ``+exp=a,b`` or ``+exp=glob(cherry_*)`` is still one sweep; each job's
config is a fresh composition whose own overrides name a single experiment. ``zoolab_sweep_name`` is
therefore cached: Hydra copies the multirun-level resolver cache into every job config, and the cache key
is the unresolved argument text, so every job gets the value computed once for the whole sweep.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from pathlib import Path

import yaml
from omegaconf import OmegaConf

__all__ = ["process_uid", "register_resolvers", "sweep_name", "swept_keys"]

# One value per process: every job of an in-process sweep shares its sweep folder suffix, while two
# commands started in the same second get different folders.
_PROCESS_UID = secrets.token_hex(3)
# Folder names stay usable as unquoted Hydra values (ckpt=<job folder>/checkpoints/best.ckpt), so no '=',
# ',' or brackets: key and value are joined by '-', pairs by '__'.
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
MAX_JOB_NAME = 100
# The multirun-level config, saved by Hydra's sweeper into the sweep folder before any job starts.
MULTIRUN_CONFIG = "multirun.yaml"


def process_uid() -> str:
    return _PROCESS_UID


def _hydra_choice(group: str, default: str = "default") -> str:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return default
    choice = HydraConfig.get().runtime.choices.get(group)
    return str(choice) if choice else default


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", str(text)).strip("_")


def _parse(overrides: Iterable[str]) -> list:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides([str(o) for o in overrides])


def _glob_name(glob) -> str:
    patterns = "+".join(re.sub(r"[*?]+", "_", p) for p in glob.include)
    return "-".join(part for part in ("glob", re.sub(r"_+", "_", _safe(patterns)).strip("_")) if part)


def sweep_name(task_overrides: Iterable[str]) -> str:
    """Folder name of a sweep: its experiment, ``glob-<pattern>`` for a glob, ``sweep`` for a list."""
    from hydra.core.override_parser.types import Glob

    exp = next((o for o in _parse(task_overrides) if o.key_or_group == "exp"), None)
    if exp is None:
        return "default"
    if not exp.is_sweep_override():
        return _safe(exp.get_value_element_as_str()) or "default"
    if isinstance(exp.value(), Glob):
        return _glob_name(exp.value())
    return "sweep"


def swept_keys(task_overrides: Iterable[str], exclude: Iterable[str] = ()) -> list[str]:
    """Keys of the overrides that take several values (``seed=0,1``, ``+exp=glob(...)``), in order."""
    excluded = set(exclude)
    return [o.key_or_group for o in _parse(task_overrides)
            if o.is_sweep_override() and o.key_or_group not in excluded]


def _multirun_overrides(sweep_dir: str) -> tuple[list[str], list[str]]:
    """The command line's task overrides and the override_dirname exclude_keys of a sweep folder."""
    try:
        hydra_cfg = yaml.safe_load((Path(sweep_dir) / MULTIRUN_CONFIG).read_text())["hydra"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return [], []
    exclude = hydra_cfg.get("job", {}).get("config", {}).get("override_dirname", {}).get("exclude_keys")
    return list(hydra_cfg.get("overrides", {}).get("task") or []), list(exclude or [])


def _searched_overrides() -> list[str]:
    """A search sweeper's space (``hydra.sweeper.params``, e.g. Optuna's) as ``key=value`` overrides."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    params = HydraConfig.get().sweeper.get("params") or {}
    return [f"{key}={value}" for key, value in params.items() if isinstance(value, str)]


def _sqlite_url(folder: str, name: str) -> str:
    """``sqlite:///<folder>/<name>``, creating ``folder`` (a sweeper opens its study before the sweep's
    folder exists)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(folder) / name}"


def _job_dirname(job_num: int | str, job_overrides: Iterable[str], sweep_dir: str) -> str:
    """``<job number>_<key-value__...>`` over the keys the sweep varies, filesystem-safe and short.

    The job number alone makes the name unique and stable across reruns of the same sweep, so the
    readable part may be cut; ``run.json`` keeps the full overrides.
    """
    overrides, exclude = _multirun_overrides(sweep_dir)
    keys = swept_keys(overrides + _searched_overrides(), exclude)
    values = {o.key_or_group: o.get_value_element_as_str() for o in _parse(job_overrides)}
    varying = "__".join(f"{_safe(key)}-{_safe(values[key])}" for key in keys if key in values)
    readable = varying[:MAX_JOB_NAME].rstrip("_-")
    return f"{job_num}_{readable}" if readable else str(job_num)


def register_resolvers() -> None:
    for name, fn, cached in (
        ("zoolab_uid", process_uid, False),
        ("zoolab_choice", _hydra_choice, False),
        ("zoolab_sweep_name", sweep_name, True),
        ("zoolab_job_dirname", _job_dirname, False),
        ("zoolab_sqlite", _sqlite_url, False),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=cached)
