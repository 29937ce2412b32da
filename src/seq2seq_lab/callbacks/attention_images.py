"""Attention heatmaps in TensorBoard (``attention/val`` images)."""

from __future__ import annotations

from seq2seq_lab.callbacks.figures import attention_figure
from seq2seq_lab.callbacks.tb import EveryNEpochs


class AttentionImages(EveryNEpochs):
    """Every ``every_n_epochs`` epochs (and after the last), the decoder's attention over the
    encoder positions for the first ``num_samples`` validation samples: one row per sample,
    the input beside its ``(L, T')`` weights (MNIST: decoder steps x image rows; OCR:
    characters x feature columns). Models without attention log nothing.
    """

    def __init__(self, every_n_epochs: int = 5, num_samples: int = 4, tag: str = "attention/val"):
        super().__init__(every_n_epochs, num_samples)
        self.tag = tag

    def on_validation_epoch_end(self, trainer, pl_module):
        found = self.inspected(trainer, pl_module)
        if found is None or found[1].attention is None:
            return
        writer, result = found
        titles = [f"true {t} / pred {p}" for t, p in zip(result.truths, result.preds)]
        fig = attention_figure(result.inputs, result.attention, result.steps, titles)
        writer.add_figure(self.tag, fig, global_step=trainer.global_step)
