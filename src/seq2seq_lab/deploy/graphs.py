"""Trained systems as exportable graphs: the encoder and the whole greedy decoding loop in one module.

:func:`inference_graph` wraps a system's network in a module whose ``forward`` takes plain
tensors and returns plain tensors, with no data-dependent Python control flow, so that
tracing it (ONNX, TorchScript) records the computation for any batch size and line width:

* attention OCR (:class:`AttentionGreedyGraph`): ``inputs (B, C, H, W)``, ``widths (B,)`` ->
  ``tokens (B, L)``, ``log_probs (B, L)``: the greedy decoder run for all ``L`` steps (the
  text ends at the first EOS; PyTorch's loop may stop early once every row has ended, which
  changes nothing before each row's EOS);
* CTC (:class:`CTCGreedyGraph`): ``inputs``, ``widths`` -> ``labels (B, T')``, ``log_probs (B, T')``
  (each column's best label and its log-probability) and ``lengths (B,)`` valid columns;
* classifiers (:class:`ClassifierGraph`): ``inputs (B, T, F)`` -> ``logits (B, C)``.

Two pieces of the CRNN encoder are swapped for exportable equivalents that compute the same
values (:func:`exportable_encoder`): its bidirectional RNN layers read packed sequences, which
neither exporter records, so :class:`LengthAwareBiRNN` runs each direction as a plain
one-directional RNN and reverses each row's valid steps for the backward one; and the
inference max-pool's strided slices become ``nn.MaxPool2d``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from seq2seq_lab.models.crnn import CRNNEncoder, MaxPool2x2, _BiRNN, reverse_valid
from seq2seq_lab.models.ctc import CTCModel
from seq2seq_lab.models.seq2seq import Seq2Seq, SequenceClassifier

__all__ = ["AttentionGreedyGraph", "CTCGreedyGraph", "ClassifierGraph", "LengthAwareBiRNN", "inference_graph",
           "with_exportable_encoder"]


class LengthAwareBiRNN(nn.Module):
    """A CRNN :class:`~seq2seq_lab.models.crnn._BiRNN` layer without packed sequences:
    ``(B, T, I)``, ``lengths (B,)`` -> ``(B, T, O)``, the same values on each row's valid steps.

    The forward direction reads the padded rows as they are (padding comes after the valid
    steps, so it cannot reach them); the backward direction reads each row's valid steps
    reversed in place, as packing does. Steps past ``lengths`` hold values the mask hides.
    """

    def __init__(self, layer: _BiRNN):
        super().__init__()
        rnn = layer.rnn
        kind = type(rnn)
        self.forward_rnn = kind(rnn.input_size, rnn.hidden_size, batch_first=True)
        self.backward_rnn = kind(rnn.input_size, rnn.hidden_size, batch_first=True)
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(self.forward_rnn, name).data.copy_(getattr(rnn, name))
            getattr(self.backward_rnn, name).data.copy_(getattr(rnn, f"{name}_reverse"))
        self.linear = layer.linear

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        ahead, _ = self.forward_rnn(x)
        back, _ = self.backward_rnn(reverse_valid(x, lengths))
        return self.linear(torch.cat([ahead, reverse_valid(back, lengths)], dim=2))


def exportable_encoder(encoder: CRNNEncoder) -> CRNNEncoder:
    """A copy of ``encoder`` with :class:`LengthAwareBiRNN` layers and ``nn.MaxPool2d`` pools."""
    encoder = copy.deepcopy(encoder)
    encoder.rnns = nn.ModuleList(LengthAwareBiRNN(layer) for layer in encoder.rnns)
    for i, module in enumerate(encoder.cnn):
        if isinstance(module, MaxPool2x2):
            encoder.cnn[i] = nn.MaxPool2d(module.kernel_size, module.stride, module.padding)
    return encoder


def with_exportable_encoder(net: nn.Module) -> nn.Module:
    """A shallow copy of ``net`` that shares every submodule but its encoder, which is
    :func:`exportable_encoder`'s copy; ``net`` itself is left as it was."""
    clone = copy.copy(net)
    clone._modules = dict(net._modules)  # copy.copy shares this dict: replacing a module would replace net's too
    clone.encoder = exportable_encoder(net.encoder)
    return clone


class AttentionGreedyGraph(nn.Module):
    """A CRNN + attention decoder read greedily: ``inputs (B, C, H, W)``, ``widths (B,)`` pixel
    widths -> ``tokens (B, L)`` int64 and their ``log_probs (B, L)``, ``L = output_length``."""

    def __init__(self, net: Seq2Seq):
        super().__init__()
        self.net = with_exportable_encoder(net)

    def forward(self, inputs: torch.Tensor, widths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        memory, mask, summary = self.net.encode(inputs, widths)
        logits, _ = self.net.decoder(memory, mask, summary, max_length=self.net.output_length)  # (B, L, V)
        log_probs, tokens = logits.float().log_softmax(-1).max(-1)  # as search.greedy scores them
        return tokens, log_probs


class CTCGreedyGraph(nn.Module):
    """A CRNN + CTC head: ``inputs (B, C, H, W)``, ``widths (B,)`` -> each column's best
    ``labels (B, T')`` and ``log_probs (B, T')``, and the valid columns ``lengths (B,)``."""

    def __init__(self, net: CTCModel):
        super().__init__()
        self.net = with_exportable_encoder(net)

    def forward(self, inputs: torch.Tensor, widths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        log_probs, mask = self.net(inputs, widths)  # (B, T', V), (B, T')
        best, labels = log_probs.max(-1)
        return labels, best.float(), mask.sum(1)


class ClassifierGraph(nn.Module):
    """A sequence classifier: ``inputs (B, T, F)`` -> ``logits (B, C)``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        logits, _ = self.net(inputs)
        return logits.float()


def inference_graph(system: nn.Module) -> tuple[str, nn.Module]:
    """``(kind, graph)`` of a trained system: ``attention``, ``ctc`` or ``classifier``.

    Raises:
        TypeError: the system's network is none of the exportable ones (named in the message).
    """
    net = system.net
    if isinstance(net, Seq2Seq) and isinstance(net.encoder, CRNNEncoder):
        return "attention", AttentionGreedyGraph(net).eval()
    if isinstance(net, CTCModel) and isinstance(net.encoder, CRNNEncoder):
        return "ctc", CTCGreedyGraph(net).eval()
    if "classify" in system.capabilities and isinstance(net, SequenceClassifier):
        return "classifier", ClassifierGraph(net).eval()
    raise TypeError(f"a {type(system).__name__} over {type(net).__name__} cannot be exported; export covers the "
                    "attention and CTC OCR models (CRNN encoder) and the MNIST sequence classifiers")
