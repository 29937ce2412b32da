"""Tables of a sweep: one row per run, and runs grouped over seeds with mean ± std."""

from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass
from pathlib import Path

from seq2seq_lab.reporting.collect import (
    SEED_KEY,
    STATUS_INCOMPLETE,
    Run,
    common_overrides,
    metric_keys,
    varying_keys,
)
from seq2seq_lab.runs import STATUS_MISSING, STATUS_OK

SECONDS_PER_EPOCH = "seconds_per_epoch"


def fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def run_rows(runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    """Header and rows for ``report.csv``: job, status, every override key, params, metrics, s/epoch."""
    keys: dict[str, None] = {}
    for run in runs:
        keys.update(dict.fromkeys(run.params))
    metrics = metric_keys(runs)
    header = ["job", "status", *keys, "num_params", *metrics, SECONDS_PER_EPOCH, "overrides", "error"]
    rows = []
    for run in runs:
        params = run.number("num_params")
        rows.append([
            run.job,
            run.status,
            *(run.params.get(k, "") for k in keys),
            "" if params is None else str(int(params)),
            *(fmt(run.number(m), 6) for m in metrics),
            fmt(run.number(SECONDS_PER_EPOCH), 3),
            " ".join(run.overrides),
            run.error,
        ])
    return header, rows


def write_csv(path: Path, runs: list[Run]) -> None:
    header, rows = run_rows(runs)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


@dataclass
class Group:
    """Runs that share every varying override except ``seed``."""

    params: dict[str, str]
    runs: list[Run]

    @property
    def ok(self) -> list[Run]:
        return [r for r in self.runs if r.status == STATUS_OK]

    def values(self, key: str) -> list[float]:
        return [v for v in (r.number(key) for r in self.ok) if v is not None]

    def mean_std(self, key: str) -> tuple[float | None, float | None]:
        """Mean and sample standard deviation (None below 1 and 2 values)."""
        vals = self.values(key)
        if not vals:
            return None, None
        return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def group_runs(runs: list[Run], keys: list[str] | None = None) -> list[Group]:
    """Runs grouped by the values of ``keys`` (default: the varying overrides except ``seed``)."""
    if keys is None:
        keys = [k for k in varying_keys(runs) if k != SEED_KEY]
    groups: dict[tuple, Group] = {}
    for run in runs:
        ident = tuple(run.params.get(k, "") for k in keys)
        groups.setdefault(ident, Group(dict(zip(keys, ident)), [])).runs.append(run)
    return list(groups.values())


def seeds_repeat(runs: list[Run]) -> bool:
    """True when some configuration was run more than once (with different seeds)."""
    return any(len(g.runs) > 1 for g in group_runs(runs))


def markdown_rows(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a Markdown table (``|`` in a cell escaped)."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), line(["---"] * len(header)), *(line(r) for r in rows)]


def markdown(runs: list[Run], title: str, plot_name: str | None = None) -> str:
    """``report.md``: counts, shared overrides, the runs table, the seed-grouped table, errors, plot."""
    metrics = metric_keys(runs)
    keys = varying_keys(runs)
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    out = [f"# Sweep report: {title}", ""]
    out.append(f"{len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ".")
    common = common_overrides(runs)
    if common:
        out += ["", "Shared overrides: " + " ".join(f"`{o}`" for o in common)]

    header = ["job", "status", *keys, "params", *metrics, "s/epoch"]
    rows = []
    for run in runs:
        params = run.number("num_params")
        rows.append([run.job, run.status, *(run.params.get(k, "") for k in keys),
                     "" if params is None else f"{int(params):,}", *(fmt(run.number(m)) for m in metrics),
                     fmt(run.number(SECONDS_PER_EPOCH), 2)])
    out += ["", "## Runs", "", *markdown_rows(header, rows)]

    if seeds_repeat(runs):
        group_keys = [k for k in keys if k != SEED_KEY]
        header = [*group_keys, "runs ok", *(f"{m} (mean ± std)" for m in metrics), "s/epoch"]
        rows = []
        for group in group_runs(runs, group_keys):
            cells = []
            for m in metrics:
                mean, std = group.mean_std(m)
                cells.append("" if mean is None else fmt(mean) + ("" if std is None else f" ± {fmt(std)}"))
            rows.append([*group.params.values(), f"{len(group.ok)}/{len(group.runs)}", *cells,
                         fmt(group.mean_std(SECONDS_PER_EPOCH)[0], 2)])
        out += ["", "## Grouped over seeds", "", *markdown_rows(header, rows)]

    failed = [r for r in runs if r.status != STATUS_OK]
    if failed:
        out += ["", "## Not ok", ""]
        default = {STATUS_MISSING: "no metrics.json", STATUS_INCOMPLETE: "did not finish (no status in metrics.json)"}
        out += [f"- job {r.job} ({r.status}): {r.error or default.get(r.status, '')}".rstrip(": ") for r in failed]
    if plot_name:
        out += ["", f"![plot]({plot_name})"]
    return "\n".join(out) + "\n"
