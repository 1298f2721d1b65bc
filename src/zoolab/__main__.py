"""``python -m zoolab +exp=NAME [+smoke=cpu] [key=value ...]``, ``zoolab ...`` and ``-m`` sweeps.

command line (checked) -> Hydra composes -> validation -> :func:`zoolab.pipeline.run_pipeline` -> run
folder. Every run ends with a status in ``run.json``: ``ok``, ``failed`` (with the error) or
``interrupted`` (Ctrl-C, SIGTERM). A single run exits non-zero with a one-paragraph message; a failed
sweep job is recorded and the sweep goes on (the results table is still written, the sweep exits 1).
"""

from __future__ import annotations

import torch

# Must run before any parallel op: flush-to-zero is per thread and OpenMP workers are created by the
# first parallel op (see zoolab.metrics.latency.enable_flush_denormal).
torch.set_flush_denormal(True)

import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from zoolab.config import check_override_keys, chosen_experiment, config_hash, normalize_overrides, \
    validate_config  # noqa: E402
from zoolab.console import headline, quiet_library_noise  # noqa: E402
from zoolab.errors import ZoolabError  # noqa: E402
from zoolab.resolvers import register_resolvers  # noqa: E402
from zoolab.runfolder import RunRecord, read_json  # noqa: E402

log = logging.getLogger("zoolab")
# Exit codes of a run stopped by a signal, as a shell reports them (128 + signal number).
_SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


def _user_error(exc: BaseException) -> ZoolabError | None:
    """The ZoolabError behind ``exc`` (Hydra's instantiate and Lightning wrap errors they re-raise)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ZoolabError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _drop_resume_checkpoints(run_dir: Path, record: RunRecord) -> None:
    """``keep_last_ckpt=false``: a finished run no longer needs its resume checkpoints (big for CLIP)."""
    dropped = sorted(str(p.relative_to(run_dir)) for p in run_dir.glob("**/checkpoints/last.ckpt"))
    for rel in dropped:
        (run_dir / rel).unlink()
    record.update(dropped_checkpoints=dropped)


@contextmanager
def _signals_as_interrupts():
    """SIGINT and SIGTERM become KeyboardInterrupt inside the run; the yielded dict tells which arrived
    (Lightning turns an interrupt during fit into SystemExit, so the exception alone does not say)."""
    received: dict = {}

    def handler(signum, frame):
        received.setdefault("signal", signal.Signals(signum))
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in _SIGNAL_EXIT}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _fail(message: str, multirun: bool, code: int = 1) -> None:
    if multirun:
        log.error("job failed: %s", message)
        return
    print(f"zoolab: error: {message}", file=sys.stderr)
    sys.exit(code)


def _open_record(run_dir: Path, overrides: list[str], exp: str) -> RunRecord:
    try:
        return RunRecord(run_dir, overrides=overrides, exp=exp)
    except OSError as exc:
        raise ZoolabError(f"the run folder {run_dir} cannot be written ({exc.strerror or exc})",
                          where="hydra.run.dir / hydra.sweep.dir",
                          fix="choose a writable folder (hydra.run.dir=...) or fix its permissions") from None


def run(cfg: DictConfig) -> float | None:
    """One job; returns ``objective``'s value for a sweeper (None when not asked for or failed)."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = list(hydra_cfg.overrides.task)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    from zoolab.pipeline import run_pipeline  # imports Lightning, whose console handlers are then removed
    from zoolab.distributed import is_writer, job_processes

    quiet_library_noise()
    if not is_writer():  # a DDP rank other than 0: the same run, with rank 0 keeping the record
        with job_processes():
            run_pipeline(cfg, run_dir, RunRecord(run_dir, persist=False, overrides=overrides))
        return None
    if multirun and RunRecord.completed(run_dir, overrides):
        log.info("skipping %s: run.json says ok (sweep resume)", run_dir)
        return (read_json(run_dir / "run.json") or {}).get("objective_value")

    exp = hydra_cfg.runtime.choices.get("exp") or "default"
    previous = read_json(run_dir / "run.json")
    if previous and previous.get("exp") not in (None, exp):
        return _fail(str(ZoolabError(
            f"{run_dir} holds a run of experiment '{previous.get('exp')}', not '{exp}', and reusing it would "
            "resume the wrong checkpoint", where="hydra.run.dir / hydra.sweep.dir",
            fix="choose another folder, or delete that one")), multirun)
    try:
        record = _open_record(run_dir, overrides, exp)
    except ZoolabError as error:
        return _fail(str(error), multirun)

    with _signals_as_interrupts() as received:
        try:
            validate_config(cfg)
            record.update(exp=cfg.exp, exp_id=cfg.exp_id, task=cfg.task.name, seed=cfg.seed,
                          config_hash=config_hash(cfg), smoke=bool(cfg.get("smoke")),
                          reported=cfg.reported, report=cfg.report)
            with job_processes():
                results = run_pipeline(cfg, run_dir, record)
            if not cfg.keep_last_ckpt:
                _drop_resume_checkpoints(run_dir, record)
            objective = _objective(cfg, results)
            record.update(objective_value=objective)
            record.finish("ok")
            print(headline(results, run_dir))
            return objective
        except BaseException as exc:  # noqa: BLE001 - every ending is recorded, then re-raised or reported
            return _record_ending(exc, received, record, run_dir, multirun)


def _objective(cfg: DictConfig, results: dict[str, dict]) -> float | None:
    """The value a sweeper optimises (``objective=<split>/<metric>``), or None (a failed trial)."""
    if not cfg.get("objective"):
        return None
    split, _, metric = str(cfg.objective).partition("/")
    value = (results.get(split) or {}).get(metric)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        log.error("objective %s: the run has no such number (splits: %s)", cfg.objective, ", ".join(results))
        return None
    return float(value)


def _record_ending(exc: BaseException, received: dict, record: RunRecord, run_dir: Path, multirun: bool) -> None:
    interrupted = isinstance(exc, KeyboardInterrupt) or "signal" in received
    user_error = None if interrupted else _user_error(exc)
    if interrupted:
        name = received.get("signal", signal.SIGINT)
        message = f"interrupted by {name.name}"
    elif user_error:
        message = str(user_error)
    elif isinstance(exc, SystemExit):
        message = f"stopped with exit code {exc.code}"
    else:
        message = "".join(traceback.format_exception(exc))
    try:
        record.finish("interrupted" if interrupted else "failed", error=message)
    except OSError:
        pass  # the folder became unwritable: the message below is all that is left
    if interrupted:
        print(f"zoolab: {message}; run folder {run_dir} (a rerun into it resumes from checkpoints/last.ckpt)",
              file=sys.stderr)
        if multirun:
            from zoolab.sweep import write_tables_of_a_stopped_sweep

            write_tables_of_a_stopped_sweep(Path(str(HydraConfig.get().sweep.dir)))
        sys.exit(_SIGNAL_EXIT.get(received.get("signal", signal.SIGINT), 130))
    if multirun:
        log.error("job %s failed: %s", run_dir, message.strip().splitlines()[-1])
        return None
    if user_error:
        print(f"zoolab: error: {user_error}", file=sys.stderr)
        sys.exit(1)
    raise exc


# Options that do not run an experiment, so no +exp is needed.
_INFO_FLAGS = ("--help", "-h", "--hydra-help", "--version", "--cfg", "-c", "--info", "-i", "--shell-completion",
               "-sc", "--resolve", "--package", "-p")


def prepare_command_line(args: list[str]) -> list[str]:
    """Checks and rewrites of the command line before Hydra sees it (see zoolab.config)."""
    args = normalize_overrides(args)
    if any(a.split("=", 1)[0] in _INFO_FLAGS for a in args):
        return args
    overrides = [a for a in args if not a.startswith("-")]
    if chosen_experiment(overrides) is None and "task=export" not in overrides:  # export reads the run's config
        print("zoolab: error: no experiment chosen. Where: the command line. Fix: add +exp=NAME "
              "(`zoolab --help` lists them under 'exp', or `ls conf/exp`), e.g. "
              "`python -m zoolab +exp=cherry_resnet18_aug_unnorm +smoke=cpu`.", file=sys.stderr)
        sys.exit(2)
    try:
        check_override_keys(overrides)
        _check_run_dir_writable(overrides)
    except ZoolabError as error:
        print(f"zoolab: error: {error}", file=sys.stderr)
        sys.exit(1)
    return args


def _check_run_dir_writable(overrides: list[str]) -> None:
    """A ``hydra.run.dir`` that cannot become a writable folder stops here with one message (Hydra would
    give a traceback when it creates the folder)."""
    import os

    given = next((o.split("=", 1)[1] for o in overrides if o.startswith("hydra.run.dir=")), None)
    if not given:
        return
    path = Path(given).expanduser()
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None or (existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)):
        return
    why = "a file is in the way" if not existing.is_dir() else "it is not writable"
    raise ZoolabError(f"the run folder {path} cannot be written ({existing}: {why})", where="hydra.run.dir",
                      fix="choose a writable folder (hydra.run.dir=...) or fix its permissions")


def main() -> None:
    """The ``zoolab`` console script and ``python -m zoolab``: configs come from the package zoolab.conf."""
    if sys.argv[1:2] == ["artifacts"]:  # `zoolab artifacts COMMAND`: zoolab.artifacts, not a run
        from zoolab.artifacts.__main__ import main as artifacts_main

        sys.exit(artifacts_main(sys.argv[2:]))
    register_resolvers()
    sys.argv[1:] = prepare_command_line(sys.argv[1:])
    hydra.main(version_base="1.3", config_path="pkg://zoolab.conf", config_name="config")(run)()


if __name__ == "__main__":
    main()
