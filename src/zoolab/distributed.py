"""Runs on several processes (DDP): which process writes, and the command of the processes Lightning starts.

With ``trainer.strategy=ddp`` Lightning starts ranks 1..N-1 as new processes when the first fit (or
test) begins. Each of them runs the whole experiment again (compose, data, task, every phase and every
evaluation) so that every collective operation happens in the same order on every rank; only rank 0
writes the run folder. The processes Lightning would start for a Hydra app re-run the whole command
line, which under ``-m`` would start a second sweep; zoolab starts them with the job's own overrides
into the job's own folder instead (:class:`DDPStrategy`), and a job's processes end with the job
(:func:`job_processes`), so the next job of a sweep run in the same process starts its own.
"""

from __future__ import annotations

import os
import re
import sys
from contextlib import contextmanager
from unittest import mock

import torch.distributed as dist

from lightning.pytorch.strategies import DDPStrategy as _LightningDDPStrategy
from lightning.pytorch.strategies.launchers import subprocess_script

__all__ = ["DDPStrategy", "is_writer", "job_command", "job_processes"]

# Environment variables that carry a process's rank under Lightning's launcher, torchrun and SLURM.
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
# What Lightning's launcher sets in the launching process (and what tells a later Trainer that the
# processes exist already).
_LAUNCH_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def is_writer() -> bool:
    """True in the process that writes the run folder: rank 0 of node 0 (or the only process)."""
    return all(int(os.environ.get(name) or 0) == 0 for name in _RANK_VARIABLES)


@contextmanager
def job_processes():
    """The scope of one job's DDP processes: when the job ends, every rank meets at a barrier (after a
    successful run), the process group is closed and the launcher's environment variables are put back,
    so the next job of a sweep (the basic launcher runs them in one process) starts its own processes."""
    before = {name: os.environ.get(name) for name in _LAUNCH_VARIABLES}
    finished = False
    try:
        yield
        finished = True
    finally:
        if dist.is_available() and dist.is_initialized():
            if finished:
                dist.barrier()
            dist.destroy_process_group()
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _hydra_value(value: str) -> str:
    """``value`` quoted for Hydra's override parser when it holds characters the parser would read."""
    return value if re.fullmatch(r"[\w./:~+-]+", value) else "'" + value.replace("'", r"\'") + "'"


def job_command(local_rank: int) -> tuple[list[str], str]:
    """Command and working directory of DDP rank ``local_rank``: this job's overrides (not the sweep's
    command line) into this job's folder, without a second ``.hydra/`` and logging to the console only."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    hydra_cfg = HydraConfig.get()
    command = [sys.executable, "-m", "zoolab", *hydra_cfg.overrides.task,
               f"hydra.run.dir={_hydra_value(str(hydra_cfg.runtime.output_dir))}",
               "hydra.output_subdir=null", "hydra/job_logging=stdout", f"hydra.job.name=zoolab_rank{local_rank}"]
    return command, get_original_cwd()


class _JobScriptLauncher(subprocess_script._SubprocessScriptLauncher):
    def _call_children_scripts(self) -> None:
        # Lightning builds the children's command in a module function; swap in this job's command.
        with mock.patch.object(subprocess_script, "_hydra_subprocess_cmd", job_command):
            super()._call_children_scripts()


class DDPStrategy(_LightningDDPStrategy):
    """Lightning's DDP strategy whose extra processes run this job (see the module docstring)."""

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if isinstance(self._launcher, subprocess_script._SubprocessScriptLauncher):
            self._launcher = _JobScriptLauncher(self.cluster_environment, self.num_processes, self.num_nodes)
