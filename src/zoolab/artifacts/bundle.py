"""``package`` and ``release``: the small files in one zip, the large ones as release assets.

``package`` zips every small file a reader needs (``*_metrics.json``, ``run.json``, ``results.tsv`` /
``results.md``, ``report_*.md``, the ``metrics.json`` of visual exports) with ``manifest.json`` (path,
bytes, sha256 of every member). The release assets are, per experiment with runs under the root, one zip
each of its checkpoints, its logs (``zoolab.log``, ``metrics.csv``, ``.hydra/``) and its visualisations
(``visualizations/``, ``plots/``). ``release bundle`` writes them, the metrics package and a manifest into
one directory. No asset may exceed the release asset limit (2 GiB, a GitHub release's per-file limit):
the sizes are checked before anything is written, and the bundle is assembled in a temporary directory
beside the target and renamed into place, so a refusal or a failure leaves nothing half written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import secrets
import shutil
import zipfile
from pathlib import Path

from zoolab.artifacts.experiments import Experiment
from zoolab.results.aggregate import find_runs, load_run
from zoolab.runfolder import write_bytes_atomic

__all__ = ["DEFAULT_LIMIT", "Asset", "BundleError", "bundle_release", "expected_kinds", "format_bytes", "package", "parse_size",
           "release_assets", "sha256_file", "small_files"]

DEFAULT_LIMIT = 2 * 1024**3
SMALL_NAMES = ("run.json", "results.tsv", "results.md", "metrics.json")
KINDS = {
    "ckpt": lambda run: [p for p in (run / "checkpoints").rglob("*") if p.is_file()],
    "logs": lambda run: [p for p in (run / "zoolab.log", run / "metrics.csv") if p.is_file()]
    + [p for p in (run / ".hydra").rglob("*") if p.is_file()],
    "vis": lambda run: [p for d in ("visualizations", "plots") for p in (run / d).rglob("*") if p.is_file()],
}
_STORED = {".ckpt", ".safetensors", ".png", ".jpg", ".zip", ".pt", ".pth"}
_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


class BundleError(Exception):
    """A package or bundle that cannot be written (nothing was written)."""


def parse_size(text: str) -> int:
    """``2GiB``, ``500MB``, ``1024`` (bytes) -> bytes."""
    value = str(text).strip().lower().replace(" ", "")
    unit = next((u for u in sorted(_UNITS, key=len, reverse=True) if value.endswith(u)), "b")
    number = value[: len(value) - len(unit)] if value.endswith(unit) else value
    try:
        size = int(float(number) * _UNITS[unit])
    except ValueError:
        raise ValueError(f"{text!r} is not a size: give bytes or a number with KB, MB, GB, KiB, MiB or GiB") from None
    if size <= 0:
        raise ValueError(f"{text!r} is not a positive size")
    return size


def format_bytes(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} bytes"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _entry(name: str, data: bytes | None = None, path: Path | None = None) -> dict:
    if data is not None:
        return {"path": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return {"path": name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}


# ------------------------------------------------------------------------------------------ package
def small_files(root: Path) -> list[Path]:
    """The reader's files under ``root``: metrics JSONs, run.json, results tables, reports (sorted)."""
    root = Path(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "checkpoints")
        for name in filenames:
            if name in SMALL_NAMES or name.endswith("_metrics.json") or (name.startswith("report_")
                                                                          and name.endswith(".md")):
                found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _package_bytes(root: Path) -> tuple[bytes, list[dict]]:
    files = small_files(root)
    if not files:
        raise BundleError(f"no metrics JSONs, run.json, results tables or reports under {Path(root).resolve()}")
    buffer, manifest = io.BytesIO(), []
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            name = path.relative_to(root).as_posix()
            data = path.read_bytes()
            zf.writestr(name, data)
            manifest.append(_entry(name, data))
        zf.writestr("manifest.json", json.dumps({"root": Path(root).resolve().name, "files": manifest}, indent=2))
    return buffer.getvalue(), manifest


def package(root: Path, out: Path) -> list[dict]:
    """Write the package zip to ``out`` in one step; returns its manifest entries."""
    data, manifest = _package_bytes(Path(root))
    write_bytes_atomic(Path(out), data)
    return manifest


# ------------------------------------------------------------------------------------------ release
@dataclasses.dataclass
class Asset:
    """One release asset: an experiment's checkpoints, logs or visualisations as one zip."""

    name: str                  # e.g. E0002_sardet_lora_r16_fc1fc2_ckpt.zip
    exp: str
    kind: str
    files: list[tuple[Path, str]]   # (file on disk, name inside the zip)

    @property
    def size(self) -> int:
        """Bytes of the members: the zip is about this size (checkpoints and images do not compress)."""
        return sum(path.stat().st_size for path, _ in self.files)


def expected_kinds(exp: Experiment) -> tuple[str, ...]:
    """The assets an experiment's release should have: a painting run has no checkpoints of its own but
    a visual export; an embedding extraction writes caches, not weights."""
    return {"visualize": ("logs", "vis"), "embed": ("logs",)}.get(exp.task, ("ckpt", "logs"))


def release_assets(root: Path, experiments: list[Experiment] | None = None) -> tuple[list[Asset], list[str]]:
    """Assets of the experiments with ok runs under ``root`` (only ``experiments`` when given) and, for
    ``experiments``, the expected ones that are missing (``"E0002 sardet_lora_r16_fc1fc2: ckpt"``)."""
    root = Path(root)
    by_exp: dict[str, list[dict]] = {}
    for row in (load_run(d, root) for d in find_runs(root)):
        if row["status"] == "ok" and row["exp"]:
            by_exp.setdefault(row["exp"], []).append(row)
    wanted = {e.name: e for e in experiments} if experiments is not None else None
    assets, missing = [], []
    for exp in sorted(by_exp if wanted is None else wanted):
        rows = by_exp.get(exp, [])
        exp_id = next((r["exp_id"] for r in rows if r["exp_id"]), wanted[exp].exp_id if wanted else None)
        stem = f"{exp_id}_{exp}" if exp_id else exp
        for kind, collect in KINDS.items():
            files = [(path, f"{row['run_dir']}/{path.relative_to(root / row['run_dir']).as_posix()}")
                     for row in rows for path in collect(root / row["run_dir"])]
            if files:
                assets.append(Asset(f"{stem}_{kind}.zip", exp, kind, files))
            elif wanted is not None and kind in expected_kinds(wanted[exp]):
                missing.append(f"{exp_id or '-'} {exp}: {kind}" + ("" if rows else " (no ok run under the root)"))
    return assets, missing


def _over_limit(assets: list[Asset], limit: int) -> list[str]:
    return [f"{a.name}: {format_bytes(a.size)}" for a in assets if a.size > limit]


def _write_asset(asset: Asset, path: Path, limit: int) -> dict:
    with zipfile.ZipFile(path, "w", allowZip64=True) as zf:
        for source, name in asset.files:
            compress = zipfile.ZIP_STORED if source.suffix.lower() in _STORED else zipfile.ZIP_DEFLATED
            zf.write(source, name, compress_type=compress)
    size = path.stat().st_size
    if size > limit:
        raise BundleError(f"{asset.name} came out at {format_bytes(size)}, over the release asset limit of "
                          f"{format_bytes(limit)}")
    return {**_entry(asset.name, path=path), "exp": asset.exp, "kind": asset.kind, "files": len(asset.files)}


def bundle_release(root: Path, out: Path, limit: int = DEFAULT_LIMIT,
                   experiments: list[Experiment] | None = None) -> dict:
    """Write the release directory ``out`` (assets, ``metrics.zip``, ``manifest.json``); returns the manifest.

    Refuses, writing nothing, when an asset would be over ``limit`` bytes; an existing ``out`` is replaced
    only once the new one is complete.
    """
    root, out = Path(root), Path(out)
    assets, missing = release_assets(root, experiments)
    too_big = _over_limit(assets, limit)
    if too_big:
        raise BundleError(f"{len(too_big)} release assets would be over the release asset limit of "
                          f"{format_bytes(limit)}: {'; '.join(too_big)}. Nothing was written. Split the "
                          "experiment's runs into smaller assets (e.g. keep only best.ckpt or model.safetensors, "
                          "keep_last_ckpt=false) or raise the limit with --limit")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.{secrets.token_hex(4)}.tmp"
    staging.mkdir()
    try:
        entries = [_write_asset(asset, staging / asset.name, limit) for asset in assets]
        package_data, _ = _package_bytes(root)
        (staging / "metrics.zip").write_bytes(package_data)
        entries.append({**_entry("metrics.zip", package_data), "exp": None, "kind": "metrics"})
        manifest = {"root": root.resolve().name, "limit_bytes": limit, "assets": entries, "missing": missing}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        old = out.parent / f".{out.name}.{secrets.token_hex(4)}.old" if out.exists() else None
        if old is not None:
            os.replace(out, old)
        os.replace(staging, out)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest
