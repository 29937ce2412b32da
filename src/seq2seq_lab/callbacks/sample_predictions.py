"""Sample predictions in TensorBoard: a text table (true vs predicted) and the inputs as images."""

from __future__ import annotations

from seq2seq_lab.callbacks.figures import samples_figure
from seq2seq_lab.callbacks.tb import EveryNEpochs


def markdown_table(truths: list[str], preds: list[str]) -> str:
    """A TensorBoard text (markdown) table: ``| # | true | predicted | ok |``."""
    rows = ["| # | true | predicted | ok |", "|---|---|---|---|"]
    for i, (t, p) in enumerate(zip(truths, preds)):
        rows.append(f"| {i} | `{t}` | `{p}` | {'✓' if t == p else '✗'} |")
    return "\n".join(rows)


class SamplePredictions(EveryNEpochs):
    """Every ``every_n_epochs`` epochs (and after the last), the first ``num_samples`` validation
    samples: ``samples/val`` text (true vs predicted) and, with ``images``, a grid of the inputs
    titled ``true / predicted`` (``(T, F)`` sequences such as MNIST rows are drawn as images too).
    """

    def __init__(self, every_n_epochs: int = 5, num_samples: int = 8, images: bool = True, tag: str = "samples/val"):
        super().__init__(every_n_epochs, num_samples)
        self.images = images
        self.tag = tag

    def on_validation_epoch_end(self, trainer, pl_module):
        found = self.inspected(trainer, pl_module)
        if found is None:
            return
        writer, result = found
        step = trainer.global_step
        writer.add_text(self.tag, markdown_table(result.truths, result.preds), global_step=step)
        if self.images:
            writer.add_figure(self.tag, samples_figure(result.inputs, result.truths, result.preds), global_step=step)
