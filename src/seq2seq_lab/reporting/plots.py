"""The sweep's plot: a grouped bar chart of one metric, e.g. test accuracy by attention x cell.

Each bar is one configuration: the mean over its seeds' ok runs, the standard
deviation over seeds as its error bar. Only seeds are averaged: every other swept
key that is neither ``x`` nor ``hue`` gets its own panel (e.g. one per depth), so no
swept factor is folded into the error bars. A ``*`` marks a configuration whose
paired difference from the baseline (see :mod:`~seq2seq_lab.reporting.stats`)
excludes 0 at 95%.
"""

from __future__ import annotations

from pathlib import Path

from seq2seq_lab.reporting.collect import SEED_KEY, Run, varying_keys
from seq2seq_lab.reporting.stats import paired
from seq2seq_lab.reporting.tables import find_baseline, group_runs

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


def plot_metric(runs: list[Run], metric: str, path: Path, x: str | None = None, hue: str | None = None,
                baseline: dict[str, str] | None = None) -> bool:
    """Write the bar chart of ``metric`` to ``path`` (PNG); False when no run has the metric.

    Without ``x`` there is one bar per run (its job number).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(r.number(metric) is not None for r in runs):
        return False
    swept = [k for k in varying_keys(runs) if k != SEED_KEY]
    if x is None:
        panels = {(): {(r.job, ""): group_runs([r], [])[0] for r in runs}}
        x_values, hue_values, facets, base = [r.job for r in runs], [""], [], None
    else:
        facets = [k for k in swept if k not in (x, hue)]
        groups = group_runs(runs, [x] + ([hue] if hue else []) + facets)  # one group per configuration
        base = find_baseline(groups, baseline)
        x_values = list(dict.fromkeys(g.params[x] for g in groups))
        hue_values = list(dict.fromkeys(g.params[hue] for g in groups)) if hue else [""]
        panels = {}
        for g in groups:
            panels.setdefault(tuple(g.params[k] for k in facets), {})[(g.params[x], g.params[hue] if hue else "")] = g

    width = 0.8 / len(hue_values)
    panel_width = max(4.0, 0.9 * len(x_values) * max(1, len(hue_values)) ** 0.5 + 2)
    fig, axes = plt.subplots(1, len(panels), figsize=(panel_width * len(panels), 3.6), squeeze=False, sharey=True)
    finite = [r.number(metric) for r in runs if r.number(metric) is not None]
    for ax, (facet, cells) in zip(axes[0], panels.items()):
        for j, h in enumerate(hue_values):
            means, stds, marks = [], [], []
            for xv in x_values:
                group = cells.get((xv, h))
                mean, std = group.mean_std(metric) if group else (None, None)
                means.append(float("nan") if mean is None else mean)
                stds.append(0.0 if std is None else std)
                diff = paired(base.by_seed(metric), group.by_seed(metric)) if group and base and group is not base else None
                marks.append(bool(diff and diff.significant))
            positions = [i - 0.4 + width * (j + 0.5) for i in range(len(x_values))]
            ax.bar(positions, means, width, yerr=stds, capsize=2, label=f"{hue}={h}" if hue else None)
            for pos, mean, std, mark in zip(positions, means, stds, marks):
                if mark:
                    ax.annotate("*", (pos, mean + std), ha="center", va="bottom")
        ax.set_xticks(range(len(x_values)), x_values, rotation=30 if len(x_values) > 6 else 0)
        ax.set_xlabel(x or "job")
        ax.set_title(", ".join(f"{k}={v}" for k, v in zip(facets, facet)) or f"{metric} (mean ± std over seeds)",
                     fontsize="medium")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(metric)
    low = min(finite)
    if 0.0 <= low and max(finite) <= 1.0:  # accuracies: zoom on the range that differs
        axes[0][0].set_ylim(max(0.0, low - 0.1 * (1.0 - low) - 0.02), 1.0)
    if hue:
        axes[0][-1].legend(fontsize="small", ncols=min(len(hue_values), 4))
    if facets:
        fig.suptitle(f"{metric}: mean ± std over seeds; * differs from the baseline (95%)", fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
