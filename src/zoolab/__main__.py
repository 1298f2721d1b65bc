"""``python -m zoolab +exp=NAME [+smoke=cpu] [key=value ...]`` and ``python -m zoolab -m ...`` sweeps.

compose (Hydra) -> prepare (smoke, validation) -> train and evaluate -> run folder. Failures are
recorded in ``run.json``; a single run exits non-zero with a one-paragraph message, a sweep job is
marked failed and the sweep goes on (the results table is still written, the sweep exits non-zero).
"""

from __future__ import annotations

import torch

# Must run before any parallel op: flush-to-zero is per thread and OpenMP workers are created by the
# first parallel op (see zoolab.metrics.latency.enable_flush_denormal).
torch.set_flush_denormal(True)

import logging  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from hydra.utils import get_object  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from zoolab.config import CONF_DIR, config_hash, prepare_config  # noqa: E402
from zoolab.errors import ZoolabError  # noqa: E402
from zoolab.resolvers import register_resolvers  # noqa: E402
from zoolab.runfolder import RunRecord, read_json  # noqa: E402

log = logging.getLogger("zoolab")


def _user_error(exc: BaseException) -> ZoolabError | None:
    """The ZoolabError behind ``exc`` (Hydra's instantiate and Lightning wrap errors they re-raise)."""
    while exc is not None:
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


def run(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = list(hydra_cfg.overrides.task)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    if multirun and RunRecord.completed(run_dir, overrides):
        log.info("skipping %s: run.json says ok (sweep resume)", run_dir)
        return None

    exp = hydra_cfg.runtime.choices.get("exp") or "default"
    previous = read_json(run_dir / "run.json")
    if previous and previous.get("exp") not in (None, exp):
        error = ZoolabError(
            f"{run_dir} holds a run of experiment '{previous.get('exp')}', not '{exp}', and reusing it would "
            "resume the wrong checkpoint", where="hydra.run.dir / hydra.sweep.dir",
            fix="choose another folder, or delete that one")
        if multirun:
            log.error("job skipped: %s", error)
            return None
        print(f"zoolab: error: {error}", file=sys.stderr)
        sys.exit(1)
    record = RunRecord(run_dir, overrides=overrides, exp=exp)
    try:
        cfg = prepare_config(cfg, overrides, hydra_cfg.runtime.choices.get("dataset"))
        record.update(exp=cfg.exp, exp_id=cfg.exp_id, task=cfg.task.name, seed=cfg.seed,
                      config_hash=config_hash(cfg), smoke=bool(cfg.get("smoke")),
                      reported=cfg.reported, report=cfg.report)
        get_object(cfg.task.runner)(cfg, run_dir, record)
        if not cfg.keep_last_ckpt:
            _drop_resume_checkpoints(run_dir, record)
        record.finish("ok")
        print(f"zoolab: run folder {run_dir}")
        return None
    except (Exception, KeyboardInterrupt) as exc:
        user_error = _user_error(exc)
        message = str(user_error) if user_error else "".join(traceback.format_exception(exc))
        record.finish("failed", error=message)
        if isinstance(exc, KeyboardInterrupt):
            raise
        if multirun:
            log.error("job %s failed: %s", run_dir, message.strip().splitlines()[-1])
            return None
        if user_error:
            print(f"zoolab: error: {user_error}", file=sys.stderr)
            sys.exit(1)
        raise


def main() -> None:
    register_resolvers()
    hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(run)()


if __name__ == "__main__":
    main()
