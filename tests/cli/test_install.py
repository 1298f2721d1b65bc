"""zoolab as an installed package: the wheel carries its configs and the ``zoolab`` script, the editable
install reads conf/ in place, Hydra's bash completion works for the script, experiments kept in another
repository run through ``--config-dir`` / ``hydra.searchpath``, ``logger=tensorboard`` writes event files,
and the environment holds everything ``make install`` installs."""

from __future__ import annotations

import configparser
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import pytest
import yaml
from conftest import FAST, REPO
from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the dev extra installs tomli
    import tomli as tomllib

SMOKE = ["+exp=cherry_resnet18_aug_unnorm", "+smoke=cpu", *FAST, "trainer.max_epochs=1"]
VENV_BIN = Path(sys.executable).parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _env(**extra: str) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1"}
    env.pop("CHERRY_ROOT", None)
    env.update(extra)
    return env


def _run(cmd: list, cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], check=False, cwd=cwd, env=env or _env(), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def _script() -> Path:
    """The ``zoolab`` console script of the environment running the tests."""
    script = VENV_BIN / "zoolab"
    assert script.is_file(), f"{script} is missing: reinstall with `pip install -e .` ([project.scripts])"
    return script


def _ok_run(run_dir: Path, proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "ok", record.get("error")
    metrics = json.loads((run_dir / "smoke_metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0
    return record


# --- the wheel ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, Path]:
    """(wheel, source tree it was built from): built offline from a copy of the checkout, so no build/
    folder lands in the repository and no stale file in one can slip into the wheel."""
    src = tmp_path_factory.mktemp("zoolab-src")
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "_zoolab_probe_*")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("src", "conf"):
        shutil.copytree(REPO / name, src / name, ignore=skip)
    out = tmp_path_factory.mktemp("wheel")
    proc = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                 "--wheel-dir", out, src], cwd=out, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (built,) = out.glob("zoolab-*.whl")
    return built, src


@pytest.fixture(scope="module")
def wheel_target(wheel, tmp_path_factory) -> Path:
    """The wheel installed alone (no dependencies) into an empty folder."""
    target = tmp_path_factory.mktemp("zoolab-target")
    proc = _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", target, wheel[0]],
                cwd=target, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return target


def test_pyproject_lists_every_package():
    found = {".".join(p.parent.relative_to(REPO / "src").parts) for p in (REPO / "src" / "zoolab").rglob("__init__.py")}
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert not found - listed, f"add {sorted(found - listed)} to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == {"zoolab.conf"}, "pyproject.toml lists packages that no longer exist"
    assert PYPROJECT["tool"]["setuptools"]["package-dir"]["zoolab.conf"] == "conf"
    assert (REPO / "conf" / "__init__.py").is_file()


def test_wheel_ships_every_module_every_config_and_the_script(wheel):
    built, src = wheel
    names = set(zipfile.ZipFile(built).namelist())
    modules = {p.relative_to(src / "src").as_posix() for p in (src / "src" / "zoolab").rglob("*.py")}
    configs = {f"zoolab/conf/{p.relative_to(src / 'conf').as_posix()}" for p in (src / "conf").rglob("*.yaml")}
    assert len(configs) > 50 and "zoolab/conf/config.yaml" in configs
    missing = sorted({".".join(Path(m).parent.parts) for m in modules - names})
    assert not missing, f"the wheel lacks {missing}: list them in [tool.setuptools] packages (pyproject.toml)"
    assert not configs - names
    conf_files = {n for n in names if n.startswith("zoolab/conf/")}
    assert conf_files == configs | {"zoolab/conf/__init__.py"}  # conf/ ships its YAML files and nothing else

    import zoolab

    version = PYPROJECT["project"]["version"]
    assert zoolab.__version__ == version
    entry_points = configparser.ConfigParser()
    entry_points.read_string(zipfile.ZipFile(built).read(f"zoolab-{version}.dist-info/entry_points.txt").decode())
    assert entry_points["console_scripts"]["zoolab"] == "zoolab.__main__:main"


# Runs a console script after noting, at exit, the file of every zoolab module the process imported.
_PROBE = """\
import atexit, json, runpy, sys

def _report():
    import zoolab.config
    files = {name: getattr(mod, "__file__", None) for name, mod in list(sys.modules.items())
             if name == "zoolab" or name.startswith("zoolab.")}
    print("ZOOLAB_IMPORTS=" + json.dumps({"files": files, "conf_dir": str(zoolab.config.CONF_DIR)}), flush=True)

atexit.register(_report)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_wheel_runs_a_smoke_experiment_outside_the_repository(wheel_target, tmp_path, cache_dir):
    script = wheel_target / "bin" / "zoolab"
    assert script.is_file()
    work = tmp_path / "elsewhere"
    work.mkdir()
    run_dir = tmp_path / "run"
    # PYTHONPATH comes before site-packages, where the editable install's finder is registered.
    env = _env(PYTHONPATH=str(wheel_target))
    proc = _run([sys.executable, "-c", _PROBE, script, *SMOKE, f"hydra.run.dir={run_dir}"], cwd=work, env=env)
    _ok_run(run_dir, proc)

    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("ZOOLAB_IMPORTS=")]
    imports = json.loads(line.partition("=")[2])
    files = {name: Path(f).resolve() for name, f in imports["files"].items() if f}
    assert {"zoolab", "zoolab.__main__", "zoolab.conf", "zoolab.tasks.image_cls"} <= files.keys()
    outside = {name: str(f) for name, f in files.items() if not f.is_relative_to(wheel_target.resolve())}
    assert not outside, f"imported from outside the wheel's folder: {outside}"
    assert Path(imports["conf_dir"]).resolve() == (wheel_target / "zoolab" / "conf").resolve()
    resolved = yaml.safe_load((run_dir / "resolved_config.yaml").read_text())
    assert resolved["exp"] == "cherry_resnet18_aug_unnorm" and resolved["backbone"]["normalize"] is False


# --- the editable install and the console script ------------------------------------------------------

def test_editable_install_reads_conf_edits_at_once(tmp_path):
    import zoolab.conf

    from zoolab.config import CONF_DIR

    if Path(zoolab.conf.__file__).resolve().parent != (REPO / "conf").resolve():
        pytest.skip("zoolab is not installed editable from this checkout")
    assert CONF_DIR.resolve() == (REPO / "conf").resolve()
    group = f"_zoolab_probe_{uuid.uuid4().hex[:10]}"
    folder = REPO / "conf" / group
    folder.mkdir()
    try:  # a config group that did not exist when zoolab was installed
        (folder / "probe.yaml").write_text(f"# @package _global_\nexp_id: {group}\n")
        proc = _run([_script(), f"+{group}=probe", "--cfg", "job"], cwd=tmp_path)
    finally:
        shutil.rmtree(folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert yaml.safe_load(proc.stdout)["exp_id"] == group


def test_bash_completion_query_lists_matching_experiments(tmp_path):
    expected = sorted(f"+exp={p.stem}" for p in (REPO / "conf" / "exp").glob("cherry_res*.yaml"))
    assert len(expected) > 3
    # Hydra's bash plugin reads COMP_LINE only and strips the leading program name from it.
    proc = _run([_script(), "-sc", "query=bash"], cwd=tmp_path, env=_env(COMP_LINE="zoolab +exp=cherry_res"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(proc.stdout.split()) == expected


def test_bash_completion_function_completes_the_zoolab_script(tmp_path):
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    expected = sorted(f"+exp={p.stem}" for p in (REPO / "conf" / "exp").glob("cherry_resnet50_a*.yaml"))
    assert len(expected) > 1
    _script()
    # What `eval "$(zoolab -sc install=bash)"` in ~/.bashrc sets up, then one <TAB> after the prefix.
    snippet = ('eval "$(zoolab -sc install=bash)"; COMP_LINE="zoolab +exp=cherry_resnet50_a"; '
               'COMP_POINT=${#COMP_LINE}; COMP_CWORD=1; hydra_bash_completion; printf "%s\\n" "${COMPREPLY[@]}"')
    env = _env(PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = _run([bash, "--norc", "--noprofile", "-c", snippet], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(proc.stdout.split()) == expected


# --- experiments kept in the user's own repository ----------------------------------------------------

HEAD_HIDDEN = 32


@pytest.fixture
def own_repo(tmp_path) -> Path:
    """A user's repository: an exp inheriting a zoolab experiment, and an own head found by dotted path."""
    repo = tmp_path / "myrepo"
    (repo / "conf" / "exp").mkdir(parents=True)
    (repo / "conf" / "head").mkdir()
    (repo / "mypkg").mkdir()
    (repo / "conf" / "exp" / "my_cherry.yaml").write_text(
        "# @package _global_\n"
        "defaults:\n"
        "  - cherry_resnet18_aug_unnorm   # zoolab's conf/exp/cherry_resnet18_aug_unnorm.yaml\n"
        "  - override /head: two_layer    # conf/head/two_layer.yaml of this repository\n"
        "  - _self_                       # this file's values win over the inherited ones\n"
        "exp_id: MY-001\n"
        "dataset:\n"
        "  augment: none\n")
    (repo / "conf" / "head" / "two_layer.yaml").write_text(
        f"_target_: mypkg.heads.TwoLayerHead\n_partial_: true\nhidden: {HEAD_HIDDEN}\n")
    (repo / "conf" / "variant").mkdir()
    (repo / "conf" / "variant" / "narrow.yaml").write_text("# @package _global_\nhead:\n  hidden: 8\n")
    (repo / "mypkg" / "__init__.py").write_text("")
    (repo / "mypkg" / "myreport.py").write_text(
        "from zoolab.results.aggregate import group_rows\n\n\n"
        "def render(rows):\n"
        "    return '\\n'.join(f\"{g['exp']} n={g['n']} exp_id={g['exp_id']}\" for g in group_rows(rows))\n")
    (repo / "mypkg" / "heads.py").write_text(
        "from torch import nn\n\n\n"
        "class TwoLayerHead(nn.Module):\n"
        "    def __init__(self, in_features: int, num_classes: int, hidden: int = 64) -> None:\n"
        "        super().__init__()\n"
        "        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))\n\n"
        "    def forward(self, features):\n"
        "        return self.net(features)\n")
    return repo


def _check_own_run(run_dir: Path, proc: subprocess.CompletedProcess, hidden: int = HEAD_HIDDEN) -> None:
    record = _ok_run(run_dir, proc)
    assert record["exp"] == "my_cherry" and record["exp_id"] == "MY-001"
    resolved = yaml.safe_load((run_dir / "resolved_config.yaml").read_text())
    assert resolved["head"]["_target_"] == "mypkg.heads.TwoLayerHead"
    # inherited from cherry_resnet18_aug_unnorm: its backbone choice and its report labels
    assert resolved["backbone"]["name"].startswith("resnet18") and resolved["report"]["model"] == "ResNet18"
    assert resolved["dataset"]["augment"] == "none"      # the own exp's value wins over the inherited one
    in_features, classes = 512, len(resolved["dataset"]["classes"])   # resnet18 features
    expected = in_features * hidden + hidden + hidden * classes + classes
    assert record["params"]["per_component"]["head"]["total"] == expected


def test_own_experiment_through_config_dir(own_repo, tmp_path, cache_dir):
    run_dir = tmp_path / "runs" / "one"
    env = _env(PYTHONPATH=str(own_repo))
    proc = _run([_script(), "--config-dir", "conf", "+exp=my_cherry", *SMOKE[1:], f"hydra.run.dir={run_dir}"],
                cwd=own_repo, env=env)
    _check_own_run(run_dir, proc)

    # the own renderer, by dotted path
    table = _run([sys.executable, "-m", "zoolab.results", run_dir.parent, "--report", "mypkg.myreport"],
                 cwd=own_repo, env=env)
    assert table.returncode == 0, table.stderr[-3000:]
    expected = "my_cherry n=1 exp_id=MY-001"
    assert expected in table.stdout
    provenance, _, body = (run_dir.parent / "report_mypkg.myreport.md").read_text().partition("\n\n")
    assert provenance.startswith("Made by zoolab at commit") and body.strip() == expected


def test_own_experiment_through_searchpath(own_repo, tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    searchpath = f"hydra.searchpath=[file://{own_repo / 'conf'}]"
    proc = _run([_script(), searchpath, "+exp=my_cherry", *SMOKE[1:], f"hydra.run.dir={run_dir}"],
                cwd=tmp_path, env=_env(PYTHONPATH=str(own_repo)))
    _check_own_run(run_dir, proc)


def test_own_config_group_with_smoke(own_repo, tmp_path, cache_dir):
    """A group zoolab's conf/ lacks, writing into zoolab's keys; +smoke re-applies the command line after it."""
    run_dir = tmp_path / "run"
    proc = _run([_script(), "--config-dir", "conf", "+exp=my_cherry", "+variant=narrow", *SMOKE[1:],
                 f"hydra.run.dir={run_dir}"], cwd=own_repo, env=_env(PYTHONPATH=str(own_repo)))
    _check_own_run(run_dir, proc, hidden=8)


# --- logging and the environment ----------------------------------------------------------------------

def test_tensorboard_logger_writes_event_files(tmp_path, cache_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    proc = _run([_script(), *SMOKE, "logger=tensorboard", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    _ok_run(run_dir, proc)
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    accumulator = EventAccumulator(str(run_dir / "tensorboard"))  # every event file of the folder
    accumulator.Reload()
    # training curves, and the split metrics given to every tracker at the end of the run
    assert {"train/loss", "val/acc", "test/accuracy"} <= set(accumulator.Tags()["scalars"])
    assert (run_dir / "metrics.csv").is_file()  # the CSV logger stays on beside TensorBoard


def _make_install_requirements() -> list[Requirement]:
    """project.dependencies plus the extras of the Makefile's `pip install -e '.[...]'` line."""
    makefile = (REPO / "Makefile").read_text()
    match = re.search(r"pip install [^\n]*-e '\.\[([\w,-]+)\]'", makefile)
    assert match, "the Makefile's install step no longer installs the project with extras"
    extras = match.group(1).split(",")
    optional = PYPROJECT["project"]["optional-dependencies"]
    lines = PYPROJECT["project"]["dependencies"] + [r for extra in extras for r in optional[extra]]
    return [Requirement(line) for line in lines]


def test_environment_holds_everything_make_install_installs():
    requirements = _make_install_requirements()
    names = {r.name.lower() for r in requirements}
    assert {"tensorboard", "pandas", "tabulate", "pytest-xdist"} <= names
    problems = []
    for req in requirements:
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            version = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{req} is not installed")
            continue
        if not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req}: {version} is installed")
    assert not problems, "run `make install`: " + "; ".join(problems)

    pins = re.search(r"^TORCH_PINS := (.+)$", (REPO / "Makefile").read_text(), re.MULTILINE).group(1).split()
    specs = {r.name: r.specifier for r in requirements}
    for pin in pins:
        name, _, version = pin.partition("==")
        assert specs[name].contains(version), f"Makefile pins {pin}, pyproject.toml asks {name}{specs[name]}"


def test_reproduce_targets_pass_sweep_args_to_every_sweep():
    """`SWEEP_ARGS` reaches each sweep of a report target (a launcher for the whole report), before its sweep dir."""
    args = "hydra/launcher=joblib hydra.launcher.n_jobs=2"
    for target, sweeps in (("reproduce-classifier-sweep", 1), ("reproduce-sardet", 2), ("reproduce-promptsg", 2)):
        proc = subprocess.run(["make", "-n", target, f"SWEEP_ARGS={args}"], cwd=REPO, capture_output=True,
                              text=True, check=True)
        joined = proc.stdout.replace("\\\n", " ")
        commands = [line for line in joined.splitlines() if "-m zoolab -m" in line]
        assert len(commands) == sweeps, joined
        assert all(re.search(re.escape(args) + r"\s+hydra\.sweep\.dir=", c) for c in commands), commands
