"""The run folder contract: atomic writes, ``run.json`` and ``<split>_metrics.json``.

``run.json`` is written when a run starts (status ``running``) and rewritten when it ends (``ok`` or
``failed`` with the error text), so a killed run is visible as ``running`` and a sweep can tell which
jobs are complete.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import secrets
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from zoolab.provenance import git_state

__all__ = ["METRICS_SPLITS", "RunRecord", "read_json", "write_bytes_atomic", "write_json_atomic",
           "write_text_atomic"]

METRICS_SPLITS = ("smoke", "val", "test")


def _create_temp_beside(path: Path) -> tuple[int, Path]:
    """A new empty file next to ``path``, opened for writing, with the mode the umask allows.

    ``tempfile.mkstemp`` would create it 0600 whatever the umask, and the rename keeps that mode.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def _write_atomic(path: Path, content: str | bytes, mode: str) -> Path:
    path = Path(path)
    fd, tmp = _create_temp_beside(path)
    try:
        with os.fdopen(fd, mode) as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    """Replace ``path`` with ``text`` in one step: readers see the old or the new file, never a part."""
    return _write_atomic(path, text, "w")


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Replace ``path`` with ``data`` in one step, like :func:`write_text_atomic`."""
    return _write_atomic(path, data, "wb")


def _jsonable(value: Any) -> Any:
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomic(path: Path, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


class RunRecord:
    """Keeps ``run.json`` of one run folder up to date. ``persist=False`` (DDP ranks other than 0): the
    same bookkeeping in memory, nothing read or written."""

    def __init__(self, run_dir: Path, persist: bool = True, **fields: Any) -> None:
        self.run_dir = Path(run_dir)
        self.persist = persist
        self.path = self.run_dir / "run.json"
        previous = (read_json(self.path) if persist else None) or {}
        self.data: dict[str, Any] = {
            "exp": None, "exp_id": None, "task": None, "status": "running", "error": None, "seed": None,
            "config_hash": None, **git_state(), "overrides": [], "started": _now(), "ended": None,
            "seconds": dict(previous.get("seconds") or {}), "params": None, "smoke": False, "attempts": previous.get("attempts", 0) + 1,
        }
        self.data.update(fields)
        self.save()

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        self.save()

    @contextmanager
    def phase(self, name: str):
        """Time a phase (setup, fit, evaluate, ...) into ``seconds``; attempts in the same folder add up."""
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = self.data["seconds"]
            seconds[name] = round(seconds.get(name, 0.0) + time.perf_counter() - start, 3)
            self.save()

    def finish(self, status: str, error: str | None = None) -> None:
        self.update(status=status, error=error, ended=_now())

    def save(self) -> None:
        if self.persist:
            write_json_atomic(self.path, self.data)

    @staticmethod
    def completed(run_dir: Path, overrides: list[str]) -> bool:
        """True when ``run_dir`` holds an ``ok`` run made with exactly these overrides."""
        data = read_json(Path(run_dir) / "run.json") or {}
        return data.get("status") == "ok" and list(data.get("overrides") or []) == list(overrides)
