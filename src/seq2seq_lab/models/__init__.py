"""Model layer: plain ``torch.nn`` modules. Knows nothing of Lightning, Hydra or files."""

from seq2seq_lab.models.attention import ATTENTIONS, build_attention
from seq2seq_lab.models.builders import AttentionSeq2Seq, SimpleSeq2Seq
from seq2seq_lab.models.cells import CELLS
from seq2seq_lab.models.crnn import CRNNEncoder
from seq2seq_lab.models.ctc import CTCModel, ctc_greedy
from seq2seq_lab.models.decoder import RecurrentDecoder
from seq2seq_lab.models.encoders import SequenceEncoder
from seq2seq_lab.models.ocr_builders import CRNNCTC, CRNNAttention
from seq2seq_lab.models.seq2seq import Seq2Seq, SequenceClassifier

__all__ = [
    "ATTENTIONS",
    "CELLS",
    "AttentionSeq2Seq",
    "CRNNAttention",
    "CRNNCTC",
    "CRNNEncoder",
    "CTCModel",
    "RecurrentDecoder",
    "Seq2Seq",
    "SequenceClassifier",
    "SequenceEncoder",
    "SimpleSeq2Seq",
    "build_attention",
    "ctc_greedy",
]
