"""Lightning callbacks of the lab."""

from seq2seq_lab.callbacks.attention_images import AttentionImages
from seq2seq_lab.callbacks.confusion_matrix import ConfusionMatrixImage
from seq2seq_lab.callbacks.graceful_stop import GracefulStop
from seq2seq_lab.callbacks.guards import ReseedEachEpoch, StopOnNonFiniteLoss
from seq2seq_lab.callbacks.metrics_json import MetricsJSON
from seq2seq_lab.callbacks.progress_lines import ProgressLines
from seq2seq_lab.callbacks.run_budget import RunBudget
from seq2seq_lab.callbacks.sample_predictions import SamplePredictions
from seq2seq_lab.callbacks.validate_at_max_steps import ValidateAtMaxSteps
from seq2seq_lab.callbacks.weight_average import WeightEMA

__all__ = [
    "AttentionImages", "ConfusionMatrixImage", "GracefulStop", "MetricsJSON", "ProgressLines", "ReseedEachEpoch", "RunBudget", "SamplePredictions",
    "StopOnNonFiniteLoss", "ValidateAtMaxSteps", "WeightEMA",
]
