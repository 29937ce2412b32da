"""The validation confusion matrix of a classifier, as a TensorBoard image."""

from __future__ import annotations

import lightning as L
import torch
from torchmetrics.classification import MulticlassConfusionMatrix

from seq2seq_lab.callbacks.figures import confusion_figure
from seq2seq_lab.callbacks.tb import EveryNEpochs, tensorboard_writer


class ConfusionMatrixImage(EveryNEpochs):
    """Every ``every_n_epochs`` epochs (and after the last), the confusion matrix over the whole
    validation set (``confusion/val``), for systems with ``num_classes`` and class targets ``(B,)``
    (MNIST); others are skipped. It costs one more forward pass over the validation set on
    those epochs only. Counts are summed over DDP processes.
    """

    def __init__(self, every_n_epochs: int = 5, tag: str = "confusion/val"):
        super().__init__(every_n_epochs, num_samples=1)
        self.tag = tag
        self.matrix: MulticlassConfusionMatrix | None = None
        self._active = False

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        classifies = "classify" in pl_module.capabilities  # a system that decodes sequences has no classes
        num_classes = pl_module.num_classes if classifies else None
        self._active = classifies and self.due(trainer)
        if self._active:
            if self.matrix is None or self.matrix.num_classes != num_classes:
                self.matrix = MulticlassConfusionMatrix(num_classes)
            self.matrix = self.matrix.to(pl_module.device)
            self.matrix.reset()

    @torch.no_grad()
    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if not self._active or not isinstance(batch, dict) or batch["targets"].dim() != 1:
            return
        logits, _ = pl_module(batch["inputs"], batch.get("input_lengths"))  # (B, C)
        self.matrix.update(logits.argmax(-1), batch["targets"])

    def on_validation_epoch_end(self, trainer, pl_module):
        if not self._active or self.matrix is None or not self.matrix.update_called:
            return
        matrix = self.matrix.compute()  # every rank takes part in the sync
        self._active = False
        writer = tensorboard_writer(trainer)
        if writer is not None:
            writer.add_figure(self.tag, confusion_figure(matrix), global_step=trainer.global_step)
