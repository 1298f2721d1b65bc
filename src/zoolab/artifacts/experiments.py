"""What the experiments are and how the Makefile runs them: the ledger's source of truth.

:func:`read_experiments` reads every ``conf/exp/*.yaml`` (not ``conf/exp/base/``) with the values an
artifact needs: ``exp_id``, the task, the seed, ``reported:`` and ``report:``. It follows each file's
defaults list the way Hydra merges it (sibling experiments and ``base/*`` recipes first, the file itself
last; ``override /group: option`` picks a group option; a ``@package _global_`` group option such as
``conf/profile/*`` adds its values) but loads only those files, so all of them are read in a fraction of a
second, where Hydra takes about a quarter of a second per experiment
(``tests/artifacts/test_experiments_reader.py`` checks that both agree).

:func:`make_plan` reads the ``reproduce-*`` targets of the Makefile through ``make -n`` (make expands its
own variables) and parses each ``python -m zoolab`` command with Hydra's override parser, so a
``+exp=glob(...)`` sweep resolves to the experiments Hydra would run, with their seeds and other axes.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import yaml

from zoolab.config import CONF_DIR, deep_merge

__all__ = ["Experiment", "MakeRun", "PlanError", "make_plan", "read_experiments", "repo_root", "select"]

# Tokens that switch a command to the embedded data: they are what `+smoke=cpu` runs differ by.
_EMBEDDED_DATA = re.compile(r"^(\+smoke=.*|dataset=synthetic_\w+)$")
_STAMP = re.compile(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d")


class PlanError(Exception):
    """The Makefile's reproduce targets cannot be read (no make, a target that fails to expand)."""


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One ``conf/exp`` file as the artifacts see it."""

    name: str
    exp_id: str | None
    task: str                 # the chosen conf/task option (detection, visualize, reid, ...)
    seed: int | None
    reported: dict
    report: dict
    summary: str              # the file's first comment line
    task_split: str | None    # visualize: the split it paints
    path: Path

    @property
    def setting(self) -> str:
        return str(self.report.get("setting") or self.summary or self.name)

    @property
    def reported_splits(self) -> tuple[str, ...]:
        """Splits the reported numbers name (``val_mAP`` -> val), else ``()``."""
        found = {key.split("_", 1)[0] for key in self.reported if "_" in key}
        return tuple(s for s in ("val", "test") if s in found)


@dataclasses.dataclass(frozen=True)
class MakeRun:
    """How one make target runs one experiment."""

    target: str
    exp: str
    seeds: tuple             # seeds the command sweeps; () when it uses the experiment's own
    overrides: tuple         # every other override, sweep axes included, as written
    variants: int            # runs per seed (product of the other sweep axes)
    multirun: bool
    out_dir: str             # hydra.sweep.dir / hydra.run.dir with the time stamp as <timestamp>

    @property
    def smoke(self) -> bool:
        return any(o.startswith("+smoke=") for o in self.overrides)

    def command(self, real_data: bool = False) -> str:
        """``python -m zoolab ...`` for this experiment alone, as the target runs it; ``real_data`` drops
        the embedded-data switches (``+smoke=cpu``, ``dataset=synthetic_*``)."""
        overrides = [o for o in self.overrides if not (real_data and _EMBEDDED_DATA.match(o))]
        seeds = [f"seed={','.join(str(s) for s in self.seeds)}"] if self.seeds else []
        sweep = self.multirun and (len(self.seeds) > 1 or self.variants > 1)
        return " ".join(["python -m zoolab", *(["-m"] if sweep else []), f"+exp={self.exp}", *seeds,
                         *(shlex.quote(o) for o in overrides)])


def repo_root() -> Path:
    """The checkout holding ``conf/`` (and the Makefile): the parent of the packaged config folder."""
    return CONF_DIR.resolve().parent


# --------------------------------------------------------------------------------------- conf/exp
def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _chain(conf_dir: Path, config: str, memo: dict, seen: tuple = ()) -> tuple[list, dict[str, str]]:
    """Layers and group choices of ``conf_dir/<config>.yaml`` after its defaults list, as Hydra reads it:
    a plain entry is a config beside the file (``/x/y`` from the config root), a mapping picks a group
    option (``override /adapter: lora``, ``/profile: full``), and ``_self_`` is last unless placed. A layer
    is a mapping of values or the name of a group added here, filled once the final choices are known."""
    if config in memo:
        return memo[config]
    if config in seen:
        raise ValueError(f"conf/{config}.yaml: its defaults list includes itself ({' -> '.join(seen)})")
    own = _load(conf_dir / f"{config}.yaml")
    defaults = list(own.pop("defaults", None) or [])
    if "_self_" not in defaults:
        defaults.append("_self_")
    here = config.rpartition("/")[0]
    layers: list = []
    choices: dict[str, str] = {}
    for entry in defaults:
        if entry == "_self_":
            layers.append(own)
        elif isinstance(entry, str):
            sub = entry[1:] if entry.startswith("/") else f"{here}/{entry}".lstrip("/")
            sub_layers, sub_choices = _chain(conf_dir, sub, memo, (*seen, config))
            layers += sub_layers
            choices.update(sub_choices)
        elif isinstance(entry, dict):
            for key, option in entry.items():
                group = str(key).replace("override", "").strip().strip("/")
                choices[group] = str(option)
                if not str(key).startswith("override"):
                    layers.append(group)
    memo[config] = (layers, choices)
    return layers, choices


def _values(conf_dir: Path, layers: list, choices: dict[str, str]) -> dict:
    """Merge the layers; a group layer adds its chosen option when that file is ``@package _global_``."""
    merged: dict = {}
    for layer in layers:
        if isinstance(layer, str):
            path = conf_dir / layer / f"{choices[layer]}.yaml"
            if not path.is_file() or "@package _global_" not in path.read_text(encoding="utf-8"):
                continue
            layer = _load(path)
        merged = deep_merge(merged, layer)
    return merged


def _summary(path: Path) -> str:
    """The file's first block of comment lines (after ``# @package``), joined into one line."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.lstrip("#").strip()
        if not line.startswith("#"):
            break
        if not text.startswith("@package"):
            lines.append(text)
    return " ".join(lines)


def _read_one(conf_dir: Path, root: dict, task_default: str, path: Path, memo: dict) -> Experiment:
    layers, choices = _chain(conf_dir, f"exp/{path.stem}", memo)
    values = _values(conf_dir, layers, choices)
    task = choices.get("task") or task_default
    task_split = None
    if task == "visualize":
        task_split = (values.get("task") or {}).get("split") or _load(conf_dir / "task" / f"{task}.yaml").get("split")
    exp_id, seed = values.get("exp_id"), values.get("seed", root.get("seed"))
    return Experiment(
        name=path.stem, exp_id=None if exp_id is None else str(exp_id), task=task,
        seed=seed if isinstance(seed, int) else None, reported=values.get("reported") or {},
        report=values.get("report") or {}, summary=_summary(path), task_split=task_split, path=path,
    )


def read_experiments(conf_dir: Path | None = None) -> list[Experiment]:
    """Every experiment of ``conf_dir/exp`` (default: zoolab's own conf/), sorted by name."""
    conf_dir = Path(conf_dir or CONF_DIR)
    root = _load(conf_dir / "config.yaml")
    task_default = next((e["task"] for e in root.get("defaults", []) if isinstance(e, dict) and "task" in e),
                        "image_cls")
    memo: dict = {}
    return [_read_one(conf_dir, root, str(task_default), p, memo) for p in sorted((conf_dir / "exp").glob("*.yaml"))]


def select(experiments: list[Experiment], patterns: list[str] | None) -> list[Experiment]:
    """The experiments whose name or exp_id matches one of the glob ``patterns`` (all when none)."""
    if not patterns:
        return list(experiments)
    return [e for e in experiments
            if any(fnmatch.fnmatchcase(e.name, p) or fnmatch.fnmatchcase(str(e.exp_id), p) for p in patterns)]


# ------------------------------------------------------------------------------------------ Makefile
def _make_targets(makefile: Path) -> list[str]:
    return re.findall(r"^(reproduce-[\w-]+):", makefile.read_text(encoding="utf-8"), flags=re.M)


def _dry_run(root: Path, target: str, env: dict[str, str]) -> list[str]:
    """The zoolab training commands ``make -n target`` prints, one string each (continuations joined)."""
    make = shutil.which("make")
    if make is None:
        raise PlanError("`make` is not installed, so the reproduce targets of the Makefile cannot be read")
    proc = subprocess.run([make, "-n", "-s", "-C", str(root), target], capture_output=True, text=True,
                          env=env, timeout=60, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise PlanError(f"`make -n {target}` failed: {proc.stderr.strip() or proc.stdout.strip()}")
    text = re.sub(r"\\\n\s*", " ", proc.stdout)
    return [line for line in text.splitlines() if re.search(r"-m zoolab(\s|$)", line)]


def _parse_command(target: str, line: str, names: list[str]) -> list[MakeRun]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    words = shlex.split(line.lstrip("-@ "))
    args = words[words.index("zoolab") + 1:]
    multirun = "-m" in args or "--multirun" in args
    parser = OverridesParser.create()
    exps, seeds, axes, kept, out_dir = [], (), [], [], ""
    for arg in (a for a in args if not a.startswith("-")):
        override = parser.parse_override(arg)
        key = override.key_or_group
        if key in ("hydra.sweep.dir", "hydra.run.dir"):
            out_dir = _STAMP.sub("<timestamp>", str(override.value()))
            continue
        if key.startswith("hydra."):
            continue
        values = [str(override.value())]
        if override.is_sweep_override():
            value = override.value()
            values = value.filter(names) if hasattr(value, "filter") else list(override.sweep_string_iterator())
        if key == "exp":
            exps = values
        elif key == "seed":
            seeds = tuple(int(v) for v in values)
        else:
            axes.append(len(values))
            kept.append(arg)
    variants = 1
    for n in axes:
        variants *= n
    return [MakeRun(target, exp, seeds, tuple(kept), variants, multirun, out_dir) for exp in exps]


def make_plan(root: Path | None = None, names: list[str] | None = None,
              env: dict[str, str] | None = None) -> dict[str, list[MakeRun]]:
    """Per experiment name, how the Makefile's ``reproduce-*`` targets run it (``env``: the environment
    make sees, default this process's; it decides e.g. whether a target adds ``+smoke=cpu``)."""
    root = Path(root or repo_root())
    makefile = root / "Makefile"
    if not makefile.is_file():
        raise PlanError(f"no Makefile in {root}")
    names = list(names) if names is not None else [e.name for e in read_experiments()]
    env = dict(os.environ if env is None else env)
    plan: dict[str, list[MakeRun]] = {}
    for target in _make_targets(makefile):
        runs = itertools.chain.from_iterable(_parse_command(target, line, names)
                                             for line in _dry_run(root, target, env))
        for run in runs:
            plan.setdefault(run.exp, []).append(run)
    return plan
