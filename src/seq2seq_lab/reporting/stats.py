"""Statistics over seeds: confidence intervals per configuration, paired comparisons against a baseline.

Runs of two configurations that share a seed share their data order and initial
draws, so the comparison is paired by seed: the differences ``b - a`` over the
seeds both ran. Its 95% interval is a bootstrap over those differences (percentile,
10,000 resamples, seeded), and its p-value a two-sided paired t-test (None below 2 seeds).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

__all__ = ["Paired", "mean_ci", "paired"]


def mean_ci(values: list[float], level: float = 0.95) -> tuple[float | None, float | None, float | None]:
    """Mean and the Student-t confidence interval ``(low, high)`` of the mean (None, None below 2 values)."""
    if not values:
        return None, None, None
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None, None
    half = scipy_stats.t.ppf(0.5 + level / 2, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return mean, mean - half, mean + half


@dataclass
class Paired:
    """``b - a`` over shared seeds: mean difference, bootstrap interval, paired t-test p-value."""

    seeds: int
    diff: float
    low: float
    high: float
    p: float | None

    @property
    def significant(self) -> bool:
        """The interval excludes 0."""
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        p = "" if self.p is None else f", p={self.p:.3g}"
        return f"{self.diff:+.4f} [{self.low:+.4f}, {self.high:+.4f}]{p}{' *' if self.significant else ''}"


def paired(a: dict[str, float], b: dict[str, float], level: float = 0.95, resamples: int = 10_000,
           seed: int = 0) -> Paired | None:
    """Compare ``b`` against ``a`` (each ``{seed: value}``) over the seeds both have; None without any."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    diffs = np.array([b[s] - a[s] for s in seeds], dtype=float)
    rng = np.random.default_rng(seed)
    boot = diffs[rng.integers(0, len(diffs), size=(resamples, len(diffs)))].mean(axis=1)
    low, high = np.quantile(boot, [0.5 - level / 2, 0.5 + level / 2])
    p = None
    if len(diffs) > 1 and np.ptp(diffs) == 0:  # no spread: the t statistic is undefined
        p = 1.0 if diffs[0] == 0 else 0.0
    elif len(diffs) > 1:
        p = float(scipy_stats.ttest_rel([b[s] for s in seeds], [a[s] for s in seeds]).pvalue)
    return Paired(len(seeds), float(diffs.mean()), float(low), float(high), p)
