"""LightningModules: a model plus its loss, metrics, optimiser and logging."""

from seq2seq_lab.systems.base import BaseSystem
from seq2seq_lab.systems.classify import ClassifySystem
from seq2seq_lab.systems.ctc import CTCSystem
from seq2seq_lab.systems.ocr import OCRSystem
from seq2seq_lab.systems.seq2seq import Seq2SeqSystem

__all__ = ["BaseSystem", "CTCSystem", "ClassifySystem", "OCRSystem", "Seq2SeqSystem"]
