"""Lightning callbacks of the lab."""

from seq2seq_lab.callbacks.guards import ReseedEachEpoch, StopOnNonFiniteLoss
from seq2seq_lab.callbacks.metrics_json import MetricsJSON

__all__ = ["MetricsJSON", "ReseedEachEpoch", "StopOnNonFiniteLoss"]
