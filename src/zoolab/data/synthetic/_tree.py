"""A generated dataset tree, built once per spec in the cache and published atomically."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

__all__ = ["cache_base", "cached_tree"]


def cache_base(cache_dir: str | os.PathLike | None) -> Path:
    """``cache_dir``, else ``$ZOOLAB_CACHE``, else ``~/.cache/zoolab``."""
    return Path(cache_dir or os.environ.get("ZOOLAB_CACHE", Path.home() / ".cache" / "zoolab")).expanduser()


def cached_tree(kind: str, spec: dict, cache_dir: str | os.PathLike | None, write: Callable[[Path], None]) -> Path:
    """``<cache>/synthetic/<kind>-<hash of spec>``: ``write(tmp)`` fills a temporary folder that is renamed
    into place with ``spec.json``, so a reader never sees a half-written tree. When two processes build the
    same tree, the first rename wins and the other's copy is discarded."""
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    parent = cache_base(cache_dir) / "synthetic"
    root = parent / f"{kind}-{key}"
    if (root / "spec.json").is_file():
        return root
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-{key}-", dir=parent))
    try:
        write(tmp)
        (tmp / "spec.json").write_text(json.dumps(spec, indent=2))
        os.replace(tmp, root)
    except OSError:
        if not (root / "spec.json").is_file():  # a real failure, not another process finishing first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
