"""One job per GPU in a local multirun: each job claims a free GPU for as long as it runs.

``hydra/launcher=gpu_per_job`` runs as many jobs at once as there are GPUs (joblib);
every job calls :func:`claim_gpu`, which takes an exclusive lock on the first GPU whose
lock file is free (``$TMPDIR/seq2seq_lab-gpu-<k>.lock``; the lock goes with the process,
so a crashed job frees its GPU) and points the job's trainer at that device alone
(``trainer.devices=[k]``). Jobs of different lengths never meet on a GPU, and a job that
finds every GPU busy waits for one.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from pathlib import Path

from seq2seq_lab.errors import ConfigError

__all__ = ["GpuClaim", "claim_gpu"]

log = logging.getLogger(__name__)


class GpuClaim:
    """An exclusive claim on GPU ``index``; :meth:`release` (or process exit) frees it."""

    def __init__(self, index: int, handle):
        self.index, self._handle = index, handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def claim_gpu(count: int, lock_dir: str | os.PathLike | None = None, wait_seconds: float = 24 * 3600,
              poll_seconds: float = 2.0) -> GpuClaim:
    """Claim the first free of ``count`` GPUs, waiting up to ``wait_seconds`` for one.

    Raises:
        ConfigError: no GPU (``count < 1``), or none became free in time.
    """
    if count < 1:
        raise ConfigError("hydra/launcher=gpu_per_job needs CUDA devices, and none is visible")
    root = Path(lock_dir or tempfile.gettempdir())
    deadline = time.monotonic() + wait_seconds
    while True:
        for index in range(count):
            handle = open(root / f"seq2seq_lab-gpu-{index}.lock", "a")  # noqa: SIM115 - held while the job runs
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            log.info("this job runs on GPU %d of %d", index, count)
            return GpuClaim(index, handle)
        if time.monotonic() > deadline:
            raise ConfigError(f"no GPU of {count} became free within {wait_seconds:.0f} s")
        time.sleep(poll_seconds)
