"""Reading a Hydra multirun directory: one :class:`Run` per job directory.

A job directory is any subdirectory with ``.hydra/overrides.yaml``,
``metrics.json`` or ``error.txt``. Its status is the ``status`` that
``seq2seq_lab.runs`` wrote into ``metrics.json``; without one it is ``failed``
when ``error.txt`` exists, ``incomplete`` when only ``metrics.json`` exists (the
job stopped before it finished, e.g. killed during testing) and ``missing``
when there is no ``metrics.json`` at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from seq2seq_lab.runs import ERROR_FILE, METRICS_FILE, STATUS_FAILED, STATUS_MISSING, read_metrics

STATUS_INCOMPLETE = "incomplete"
SEED_KEY = "seed"


@dataclass
class Run:
    """One job of a sweep.

    ``params`` maps each override key (``model/cell``, ``seed``...) to its value as
    written on the command line; ``metrics`` is ``metrics.json`` (empty if absent).
    """

    job: str
    path: Path
    status: str
    overrides: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    def number(self, key: str) -> float | None:
        """A finite numeric metric, or None."""
        value = self.metrics.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        return float(value)


def parse_override(text: str) -> tuple[str, str]:
    """``"+model/cell=gru"`` -> ``("model/cell", "gru")``; a bare key (``~foo``) has value ``""``."""
    key, _, value = text.partition("=")
    return key.lstrip("+~"), value


def read_overrides(job_dir: Path) -> list[str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return []
    return [str(o) for o in data] if isinstance(data, list) else []


def is_job_dir(path: Path) -> bool:
    return path.is_dir() and any(
        (path / name).exists() for name in (".hydra/overrides.yaml", METRICS_FILE, ERROR_FILE)
    )


def read_run(job_dir: Path) -> Run:
    """The :class:`Run` of one job directory."""
    overrides = read_overrides(job_dir)
    metrics = read_metrics(job_dir)
    error_file = job_dir / ERROR_FILE
    if metrics is not None and metrics.get("status"):
        status = str(metrics["status"])
    elif error_file.is_file():
        status = STATUS_FAILED
    elif metrics is not None:
        status = STATUS_INCOMPLETE
    else:
        status = STATUS_MISSING
    error = str((metrics or {}).get("error") or "")
    if status == STATUS_FAILED and not error and error_file.is_file():
        lines = [line for line in error_file.read_text(errors="replace").splitlines() if line.strip()]
        error = lines[-1].strip() if lines else ""
    return Run(
        job=job_dir.name,
        path=job_dir,
        status=status,
        overrides=overrides,
        params=dict(parse_override(o) for o in overrides),
        metrics=metrics or {},
        error=error,
    )


def _job_order(path: Path) -> tuple[int, int | str]:
    return (0, int(path.name)) if path.name.isdigit() else (1, path.name)


def collect_runs(sweep_dir: str | Path) -> list[Run]:
    """Every job of ``sweep_dir``, in job-number order.

    Raises:
        FileNotFoundError: ``sweep_dir`` is not a directory.
    """
    root = Path(sweep_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such sweep directory")
    return [read_run(p) for p in sorted((p for p in root.iterdir() if is_job_dir(p)), key=_job_order)]


def varying_keys(runs: list[Run]) -> list[str]:
    """Override keys whose value differs between runs (or that some runs lack), in first-seen order."""
    keys: dict[str, None] = {}
    for run in runs:
        keys.update(dict.fromkeys(run.params))
    return [k for k in keys if len({run.params.get(k) for run in runs}) > 1]


def common_overrides(runs: list[Run]) -> list[str]:
    """Overrides that every run shares."""
    varying = set(varying_keys(runs))
    return [o for o in (runs[0].overrides if runs else []) if parse_override(o)[0] not in varying]


def metric_keys(runs: list[Run]) -> list[str]:
    """The report's metrics: every ``val/*_best`` then every ``test/*`` except losses."""
    keys: dict[str, None] = {}
    for run in runs:
        keys.update(dict.fromkeys(run.metrics))
    best = sorted(k for k in keys if k.startswith("val/") and k.endswith("_best"))
    test = sorted(k for k in keys if k.startswith("test/") and not k.endswith("loss"))
    return best + test
