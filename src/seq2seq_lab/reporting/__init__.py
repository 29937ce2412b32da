"""Reading sweep directories and writing their reports (see ``seq2seq_lab.report``)."""

from seq2seq_lab.reporting.collect import Run, collect_runs, metric_keys, varying_keys
from seq2seq_lab.reporting.plots import default_axes, plot_metric
from seq2seq_lab.reporting.tables import group_runs, markdown, write_csv

__all__ = [
    "Run", "collect_runs", "default_axes", "group_runs", "markdown", "metric_keys", "plot_metric",
    "varying_keys", "write_csv",
]
