"""Lightning callbacks of the lab."""

from seq2seq_lab.callbacks.metrics_json import MetricsJSON

__all__ = ["MetricsJSON"]
