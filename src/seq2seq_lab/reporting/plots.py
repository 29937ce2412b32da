"""The sweep's plot: a grouped bar chart of one metric, e.g. test accuracy by attention x cell.

Bars are the mean over the ok runs of each (x, hue) cell (seeds and any other
override averaged), with the standard deviation as error bars.
"""

from __future__ import annotations

from pathlib import Path

from seq2seq_lab.reporting.collect import SEED_KEY, Run, varying_keys
from seq2seq_lab.reporting.tables import group_runs

MAX_CATEGORIES = 12  # a key with more values (a float searched by Optuna) is not a bar axis
PREFERRED_AXES = ("model/attention", "model/cell")


def default_axes(runs: list[Run]) -> tuple[str | None, str | None]:
    """``(x, hue)``: attention and cell when both vary, else the first categorical varying keys."""
    keys = [k for k in varying_keys(runs) if k != SEED_KEY]
    categorical = [k for k in keys if len({r.params.get(k, "") for r in runs}) <= MAX_CATEGORIES]
    if all(k in categorical for k in PREFERRED_AXES):
        return PREFERRED_AXES
    preferred = [k for k in PREFERRED_AXES if k in categorical]
    rest = [k for k in categorical if k not in preferred]
    ordered = preferred + rest
    return (ordered[0] if ordered else None), (ordered[1] if len(ordered) > 1 else None)


def plot_metric(runs: list[Run], metric: str, path: Path, x: str | None = None, hue: str | None = None) -> bool:
    """Write the bar chart of ``metric`` to ``path`` (PNG); False when no run has the metric.

    Without ``x`` there is one bar per run (its job number).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(r.number(metric) is not None for r in runs):
        return False
    if x is None:
        x_values = [r.job for r in runs]
        cells = {(r.job, ""): group_runs([r], [])[0] for r in runs}
        hue_values = [""]
    else:
        keys = [x] + ([hue] if hue else [])
        groups = group_runs(runs, keys)
        x_values = list(dict.fromkeys(g.params[x] for g in groups))
        hue_values = list(dict.fromkeys(g.params[hue] for g in groups)) if hue else [""]
        cells = {(g.params[x], g.params[hue] if hue else ""): g for g in groups}

    width = 0.8 / len(hue_values)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(x_values) * max(1, len(hue_values)) ** 0.5 + 2), 3.6))
    for j, h in enumerate(hue_values):
        means, stds = [], []
        for xv in x_values:
            group = cells.get((xv, h))
            mean, std = group.mean_std(metric) if group else (None, None)
            means.append(float("nan") if mean is None else mean)
            stds.append(0.0 if std is None else std)
        positions = [i - 0.4 + width * (j + 0.5) for i in range(len(x_values))]
        ax.bar(positions, means, width, yerr=stds, capsize=2, label=f"{hue}={h}" if hue else None)
    ax.set_xticks(range(len(x_values)), x_values, rotation=30 if len(x_values) > 6 else 0)
    ax.set_xlabel(x or "job")
    ax.set_ylabel(metric)
    finite = [r.number(metric) for r in runs if r.number(metric) is not None]
    low = min(finite)
    if 0.0 <= low and max(finite) <= 1.0:  # accuracies: zoom on the range that differs
        ax.set_ylim(max(0.0, low - 0.1 * (1.0 - low) - 0.02), 1.0)
    if hue:
        ax.legend(fontsize="small", ncols=min(len(hue_values), 4))
    ax.set_title(f"{metric} (mean ± std)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
