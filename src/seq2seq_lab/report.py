"""Report of a sweep: ``python -m seq2seq_lab.report <multirun dir>``.

Writes ``report.md``, ``report.csv`` and ``report.png`` into the multirun dir:
one row per job (its overrides, parameter count, best validation and test
metrics, seconds per epoch, status ok/failed/incomplete/missing); when
configurations repeat with different seeds, a table per configuration of mean ±
std and the 95% confidence interval over seeds, with a paired comparison against a
baseline configuration (``--baseline``); and a grouped bar chart of one metric (by
default test accuracy by ``model/attention`` x ``model/cell`` when the sweep varies
both), averaged over seeds only, one panel per value of any other swept key.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seq2seq_lab.reporting import collect_runs, default_axes, markdown, metric_keys, plot_metric, write_csv


def write_report(
    sweep_dir: str | Path, metric: str | None = None, x: str | None = None, hue: str | None = None, plot: bool = True,
    baseline: dict[str, str] | None = None,
) -> dict[str, Path]:
    """Write the report files; returns their paths by kind (``md``, ``csv`` and, if drawn, ``png``).

    Args:
        sweep_dir: a Hydra multirun dir (its job dirs hold ``.hydra/`` and ``metrics.json``).
        metric: the plotted metric (default: the first ``test/*``, else the first ``val/*_best``).
        x, hue: override keys of the bar chart (default: see ``default_axes``).
        plot: draw ``report.png``.
        baseline: the configuration the others are compared with (``{override key: value}``,
            e.g. ``{"model/attention": "mlp"}``); default: the first one.

    Raises:
        FileNotFoundError: no such directory, or it holds no job dirs.
    """
    root = Path(sweep_dir)
    runs = collect_runs(root)
    if not runs:
        raise FileNotFoundError(f"{root}: no job directories (with .hydra/overrides.yaml or metrics.json)")
    out = {"md": root / "report.md", "csv": root / "report.csv"}
    write_csv(out["csv"], runs)
    metrics = metric_keys(runs)
    metric = metric or next((m for m in metrics if m.startswith("test/")), metrics[0] if metrics else None)
    plotted = False
    if plot and metric:
        auto_x, auto_hue = default_axes(runs)
        x = x or auto_x
        hue = hue or (auto_hue if x == auto_x else None)
        plotted = plot_metric(runs, metric, root / "report.png", x, hue, baseline)
    if plotted:
        out["png"] = root / "report.png"
    out["md"].write_text(markdown(runs, str(root), "report.png" if plotted else None, baseline))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seq2seq_lab.report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", help="a multirun dir, e.g. outputs/train/multiruns/<time>")
    parser.add_argument("--metric", help="plotted metric, e.g. test/acc or val/acc_best")
    parser.add_argument("--x", help="override key on the x axis, e.g. model/attention")
    parser.add_argument("--hue", help="override key of the bar colours, e.g. model/cell")
    parser.add_argument("--no-plot", action="store_true", help="skip report.png")
    parser.add_argument("--baseline", help="the configuration to compare with, e.g. model/attention=mlp,model/cell=gru "
                                           "(default: the first)")
    args = parser.parse_args(argv)
    try:
        baseline = dict(item.split("=", 1) for item in args.baseline.split(",")) if args.baseline else None
        paths = write_report(args.sweep_dir, args.metric, args.x, args.hue, plot=not args.no_plot, baseline=baseline)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(paths["md"].read_text())
    for path in paths.values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
