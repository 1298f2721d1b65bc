"""OmegaConf resolvers used by conf/config.yaml for run and sweep folder names.

Registered by :func:`register_resolvers`, which the entry point calls before Hydra composes.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from omegaconf import OmegaConf

__all__ = ["register_resolvers", "process_uid"]

# One value per process: every job of an in-process sweep shares its sweep folder suffix, while two
# commands started in the same second get different folders.
_PROCESS_UID = secrets.token_hex(3)


def process_uid() -> str:
    return _PROCESS_UID


def _hydra_choice(group: str, default: str = "default") -> str:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return default
    choice = HydraConfig.get().runtime.choices.get(group)
    return str(choice) if choice else default


def _job_dirname(override_dirname: str, job_num: int | str, max_len: int = 120) -> str:
    """A readable, filesystem-safe job folder name that is stable across reruns of the same sweep.

    Long names are cut and suffixed with a hash of the full override string, so two jobs never share
    a folder however similar their overrides are.
    """
    name = re.sub(r"[^A-Za-z0-9=,._+-]+", "_", str(override_dirname)).strip("_")
    if not name:
        return f"job{job_num}"
    if len(name) <= max_len:
        return name
    digest = hashlib.sha256(str(override_dirname).encode()).hexdigest()[:8]
    return f"{name[:max_len]}-{digest}"


def register_resolvers() -> None:
    for name, fn in {
        "zoolab_uid": process_uid,
        "zoolab_choice": _hydra_choice,
        "zoolab_job_dirname": _job_dirname,
    }.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
