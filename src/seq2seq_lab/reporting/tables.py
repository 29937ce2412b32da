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
from seq2seq_lab.reporting.stats import mean_ci, paired
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

    def by_seed(self, key: str) -> dict[str, float]:
        """``{seed: value}`` of the ok runs (the job number where no seed was set)."""
        return {r.params.get(SEED_KEY, r.job): v for r in self.ok if (v := r.number(key)) is not None}

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


def _cell(values: list[float]) -> str:
    mean, low, high = mean_ci(values)
    if mean is None:
        return ""
    if low is None:
        return fmt(mean)
    return f"{fmt(mean)} ± {fmt(statistics.stdev(values))} [{fmt(low)}, {fmt(high)}]"


def find_baseline(groups: list[Group], baseline: dict[str, str] | None) -> Group:
    """The group whose params match ``baseline`` (every given key); the first group without one.

    Raises:
        ValueError: no group matches (the message lists the configurations).
    """
    if not baseline:
        return groups[0]
    for group in groups:
        if all(group.params.get(k) == v for k, v in baseline.items()):
            return group
    shown = "; ".join(",".join(f"{k}={v}" for k, v in g.params.items()) for g in groups)
    raise ValueError(f"--baseline {baseline}: no such configuration among: {shown}")


def seed_statistics(runs: list[Run], keys: list[str], metrics: list[str],
                    baseline: dict[str, str] | None = None) -> list[str]:
    """The "Grouped over seeds" section: per configuration, each metric's mean ± std [95% CI over
    seeds], and against the baseline configuration a paired comparison over shared seeds."""
    group_keys = [k for k in keys if k != SEED_KEY]
    groups = group_runs(runs, group_keys)
    base = find_baseline(groups, baseline)
    compared = next((m for m in metrics if m.startswith("test/")), metrics[0] if metrics else None)
    header = [*group_keys, "runs ok", *(f"{m} (mean ± std [95% CI])" for m in metrics), "s/epoch"]
    if compared:
        header.append(f"{compared} vs baseline (Δ [95% CI], p)")
    rows = []
    for group in groups:
        row = [*group.params.values(), f"{len(group.ok)}/{len(group.runs)}",
               *(_cell(group.values(m)) for m in metrics), fmt(group.mean_std(SECONDS_PER_EPOCH)[0], 2)]
        if compared:
            comparison = None if group is base else paired(base.by_seed(compared), group.by_seed(compared))
            row.append("baseline" if group is base else str(comparison or "no shared seeds"))
        rows.append(row)
    described = ", ".join(f"{k}={v}" for k, v in base.params.items()) or "the first configuration"
    return ["## Grouped over seeds", "",
            f"Mean ± sample std and the 95% confidence interval of the mean (Student t) over seeds. Against the "
            f"baseline ({described}): the mean paired difference over the seeds both ran, its 95% bootstrap "
            f"interval and the paired t-test p-value; `*` where the interval excludes 0.", "",
            *markdown_rows(header, rows)]


def markdown(runs: list[Run], title: str, plot_name: str | None = None,
             baseline: dict[str, str] | None = None) -> str:
    """``report.md``: counts, shared overrides, the runs table, the seed statistics, errors, plot."""
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
        out += ["", *seed_statistics(runs, keys, metrics, baseline)]

    failed = [r for r in runs if r.status != STATUS_OK]
    if failed:
        out += ["", "## Not ok", ""]
        default = {STATUS_MISSING: "no metrics.json", STATUS_INCOMPLETE: "did not finish (no status in metrics.json)"}
        out += [f"- job {r.job} ({r.status}): {r.error or default.get(r.status, '')}".rstrip(": ") for r in failed]
    if plot_name:
        out += ["", f"![plot]({plot_name})"]
    return "\n".join(out) + "\n"
