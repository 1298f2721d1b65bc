"""Shared fixtures: an isolated cache for synthetic data, composing the real config, running the CLI."""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
from pathlib import Path

import pytest
from warm_cli import WarmInterpreter

REPO = Path(__file__).resolve().parents[1]

# Tiny, fast settings shared by CLI tests: the architecture stays, images and data shrink.
FAST = [
    "dataset=synthetic_cherry",
    "dataset.root.counts={train:40,val:20,test:20}",
    "dataset.root.image_size=48",
    "backbone.input_size=32",
    "dataset.batch_size=16",
    "task.module.latency.input_size=32",
    "task.module.latency.runs=3",
    "task.module.latency.warmup=1",
    "task.module.latency.variants=[eager]",
]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zoolab-cache")
    os.environ["ZOOLAB_CACHE"] = str(path)
    return path


@pytest.fixture
def compose(cache_dir):
    """Compose conf/config.yaml with overrides as the CLI would, with HydraConfig set for resolvers."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from zoolab.config import CONF_DIR, normalize_overrides
    from zoolab.resolvers import register_resolvers

    register_resolvers()

    def _compose(overrides: list[str], output_dir: Path | None = None):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra_compose("config", overrides=normalize_overrides(overrides), return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir or cache_dir / "run")
        HydraConfig.instance().set_config(cfg)
        choices = dict(cfg.hydra.runtime.choices)
        with open_dict(cfg):
            del cfg.hydra
        return cfg, choices

    yield _compose
    GlobalHydra.instance().clear()


# Two xdist workers on two cores: one compute thread each (and in every process they start). With
# torch's default of one thread per core, four threads would share two cores and each test would wait
# on the other's thread synchronisation. Tests that time a model set their thread count themselves.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

_WARM = WarmInterpreter(REPO)
atexit.register(_WARM.close)


def run_cli(args: list[str], cwd: Path, env_extra: dict | None = None, timeout: int = 600, module: str = "zoolab"):
    """Run ``python -m zoolab ARGS`` as its own process; returns the CompletedProcess.

    The process is forked from a warm interpreter (tests/warm_cli.py) unless the command needs its own
    ``PYTHONPATH``, which only a new interpreter reads."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    env.pop("CHERRY_ROOT", None) if "CHERRY_ROOT" not in (env_extra or {}) else None
    if "PYTHONPATH" not in (env_extra or {}):
        return _WARM.run(module, args, cwd, env, timeout)
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: one intra-op thread avoids thread-sync overhead (10-100x on a shared 2-core box)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    """Longest first: the learning tests, then the command-line tests, then the unit tests. pytest-xdist
    hands out whole files in this order, so the few minute-long files start at once instead of leaving
    one worker busy at the end while the other idles (longest-processing-time-first scheduling)."""
    def weight(item) -> int:
        path = Path(str(item.fspath)).relative_to(REPO / "tests").as_posix()
        return 0 if path.startswith("test_learning_") else 1 if path.startswith("cli/") else 2

    items.sort(key=weight)  # stable: each file keeps its order
