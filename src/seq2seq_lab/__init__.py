"""seq2seq-lab: encoder-decoder experiments with attention on Lightning and Hydra."""

__version__ = "0.1.0"
