"""One run directory for all DDP ranks that Lightning starts from a Hydra job.

With ``strategy=ddp`` and no external launcher (torchrun, SLURM), Lightning's
``_SubprocessScriptLauncher`` starts ranks ``1..devices-1`` by re-running the
command line. Under Hydra it builds that command with ``_hydra_subprocess_cmd``:
``sys.argv`` plus ``hydra.run.dir=<run dir>``. In a single run that shares the
run dir, but in a multirun ``sys.argv`` is the whole sweep (``-m a=1,2``), so
each rank would start its own sweep in new directories.

:func:`ddp_ranks_share_job_dir` swaps in a command that re-runs *this job*:
its task overrides, in run mode, in the job's own output dir, without writing a
second ``.hydra/``. On exit it restores the environment variables the launcher
set in this process (``LOCAL_RANK``, ``MASTER_PORT``...) and closes the process
group, so that the next job of a sweep in the same process launches its own
ranks on a fresh port.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# set by Lightning's launcher in the launching process
_LAUNCHER_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
# hydra overrides that belong to the sweep or to the run dir, not to the job
_DROP_HYDRA = ("hydra.run.", "hydra.sweep.", "hydra.mode", "hydra.job.num", "hydra.job.id",
               "hydra.job.name", "hydra.launcher", "hydra/launcher",
               "hydra.sweeper", "hydra/sweeper", "hydra.output_subdir", "hydra.runtime", "hydra.hydra_help",
               "hydra.multirun")


def rank_command(module: str, local_rank: int) -> tuple[list[str], str]:
    """The command line and cwd that rank ``local_rank`` runs for the current Hydra job."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    hydra_overrides = [o for o in hc.overrides.hydra if not o.lstrip("~+").startswith(_DROP_HYDRA)]
    command = [
        sys.executable, "-m", module,
        *hc.overrides.task,
        *hydra_overrides,
        f"hydra.run.dir={_quote(hc.runtime.output_dir)}",
        "hydra.mode=RUN",
        "hydra.output_subdir=null",
        f"hydra.job.name={hc.job.name}_rank{local_rank}",
    ]
    return command, hc.runtime.cwd


def _quote(value: str) -> str:
    """A Hydra override value that may hold spaces, ``=`` or ``,``."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@contextmanager
def ddp_ranks_share_job_dir(module: str) -> Iterator[None]:
    """Make Lightning's DDP child processes re-run this Hydra job in its directory."""
    from lightning.pytorch.strategies.launchers import subprocess_script

    saved_env = {k: os.environ.get(k) for k in _LAUNCHER_ENV}
    original = subprocess_script._hydra_subprocess_cmd
    subprocess_script._hydra_subprocess_cmd = lambda local_rank: rank_command(module, local_rank)
    try:
        yield
    finally:
        subprocess_script._hydra_subprocess_cmd = original
        if saved_env["LOCAL_RANK"] is None:  # we launched the ranks: forget this job's group
            _close_process_group()
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _close_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
