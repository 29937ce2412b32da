"""A run directory's outcome: ``status`` in ``metrics.json`` and ``error.txt`` for a failed job.

In a Hydra multirun one failed job must not stop the sweep: :func:`main_guard`
records the failure in the job's directory and lets the sweep go on. Single
runs still raise. ``seq2seq_lab.report`` reads what is written here.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.json"
ERROR_FILE = "error.txt"
STATUS_OK = "ok"
STATUS_STOPPED = "stopped"  # SIGTERM or Ctrl-C: last.ckpt saved, the same command resumes
STOPPED_EXIT_CODE = 143  # 128 + SIGTERM
STATUS_FAILED = "failed"
STATUS_MISSING = "missing"  # report only: no metrics.json (killed, still running, never started)

log = logging.getLogger(__name__)


def in_multirun() -> bool:
    """True inside a Hydra multirun job (``-m``, or ``hydra.mode: MULTIRUN`` in a config)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def is_rank_zero() -> bool:
    """The process that owns the run dir's files (every process before a Trainer sets ranks)."""
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def read_metrics(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``metrics.json`` of a run dir; None when absent or unreadable."""
    path = Path(run_dir) / METRICS_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def update_metrics(run_dir: str | os.PathLike, **fields: Any) -> None:
    """Merge ``fields`` into ``metrics.json`` (created when absent), atomically."""
    path = Path(run_dir) / METRICS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {**(read_metrics(run_dir) or {}), **fields}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _root_cause(err: BaseException) -> BaseException:
    """A ``SystemExit`` raised to report an error stands for the error it replaced."""
    if isinstance(err, SystemExit) and err.__context__ is not None:
        return err.__context__
    return err


def record_failure(run_dir: str | os.PathLike, err: BaseException) -> None:
    """Write ``error.txt`` (the traceback) and ``status: failed`` + ``error`` into ``metrics.json``."""
    cause = _root_cause(err)
    message = " ".join(f"{type(cause).__name__}: {cause}".split())[:500]
    text = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / ERROR_FILE).write_text(text)
    update_metrics(run_dir, status=STATUS_FAILED, error=message)


def failed_job_value() -> float | None:
    """What a failed multirun job returns to its sweeper.

    Optuna stops the whole study when an objective returns NaN or None, so a
    sweeper with a ``direction`` gets the worst value (-inf when maximizing,
    +inf when minimizing) and its other trials go on; other sweepers get None.
    """
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    if not HydraConfig.initialized():
        return None
    direction = OmegaConf.select(HydraConfig.get(), "sweeper.direction", default=None)
    if direction is None:
        return None
    if not isinstance(direction, str):  # a list: multi-objective; rank by the first
        direction = str(direction[0]) if len(direction) else "minimize"
    return float("-inf") if "max" in direction.lower() else float("inf")


def main_guard(run, output_dir: str | os.PathLike) -> dict[str, float] | None:
    """Call ``run()``; mark the run dir ``ok`` on success.

    In a multirun a failure (an exception, or the ``SystemExit`` of a reported
    config error) is recorded in ``output_dir`` and None is returned, so the
    other jobs go on; a single run re-raises.
    """
    try:
        metrics = run()
    except (Exception, SystemExit) as err:
        # a stopped job (SIGTERM, Ctrl-C) stops the whole sweep: it is not a failure to record
        if not in_multirun() or (isinstance(err, SystemExit) and err.code in (0, None, STOPPED_EXIT_CODE)):
            raise
        log.error("job failed, recorded in %s: %s", Path(output_dir) / ERROR_FILE, _root_cause(err))
        if is_rank_zero():
            record_failure(output_dir, err)
        return None
    if is_rank_zero() and read_metrics(output_dir) is not None:
        update_metrics(output_dir, status=STATUS_OK)
    return metrics
