"""What a decoder feeds back into itself at the next step."""

from __future__ import annotations

import torch
from torch import nn


class TokenFeedback(nn.Module):
    """Feeds back tokens through an embedding: the target token under teacher
    forcing, else the argmax of the previous logits. Starts from ``sos_id``."""

    def __init__(self, vocab_size: int, embed_dim: int, sos_id: int = 0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.sos_id = sos_id
        self.dim = embed_dim

    def start(self, batch: int, device: torch.device) -> torch.Tensor:
        """``(B, E)`` embedding of SOS."""
        return self.embedding(torch.full((batch,), self.sos_id, dtype=torch.long, device=device))

    def from_targets(self, targets: torch.Tensor) -> torch.Tensor:
        """``targets (B,)`` token ids -> ``(B, E)``."""
        return self.embedding(targets)

    def from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits (B, V)`` -> ``(B, E)`` embedding of the argmax."""
        return self.embedding(logits.argmax(-1))


class OutputFeedback(nn.Module):
    """Feeds back the previous output vector itself, as the Keras seq2seq
    library does. Starts from zeros."""

    def __init__(self, output_dim: int):
        super().__init__()
        self.dim = output_dim

    def start(self, batch: int, device: torch.device) -> torch.Tensor:
        return torch.zeros(batch, self.dim, device=device)

    def from_targets(self, targets: torch.Tensor) -> torch.Tensor:
        """``targets (B, D)`` vectors -> ``(B, D)``."""
        return targets.float()

    def from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return logits
