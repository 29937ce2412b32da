"""Joint CTC-attention decoding: the CTC prefix scores, the joint beam, and system.ctc_decode_weight."""

from __future__ import annotations

import itertools

import pytest
import torch

from seq2seq_lab.errors import ConfigError
from seq2seq_lab.models.ctc_prefix import CTCPrefixScorer
from seq2seq_lab.models.search import beam

pytestmark = pytest.mark.usefixtures("one_thread")

BLANK, EOS = 0, 4


def _log_prob(log_probs: torch.Tensor, length: int, prefix: list[int], exact: bool) -> float:
    """log P that the first ``length`` columns' labels, repeats collapsed and blanks dropped, start with (or, exact,
    are) ``prefix``: every path summed."""
    total = torch.tensor(float("-inf"), dtype=torch.float64)
    for path in itertools.product(range(log_probs.size(-1)), repeat=length):
        labels = [p for i, p in enumerate(path) if p != BLANK and (i == 0 or p != path[i - 1])]
        if (labels == prefix) if exact else (labels[:len(prefix)] == prefix):
            total = torch.logaddexp(total, sum(log_probs[t, p].double() for t, p in enumerate(path)))
    return float(total)


def test_prefix_scores_are_the_probabilities_of_every_alignment_summed():
    torch.manual_seed(0)
    log_probs = torch.randn(2, 6, 5).log_softmax(-1)  # (B, T, V); the second line is 4 columns long
    lengths = torch.tensor([6, 4])
    scorer = CTCPrefixScorer(log_probs, lengths, BLANK, weight=0.5)
    scorer.start(width=1, eos=EOS)
    first = torch.tensor([[1, 2, 3, EOS, BLANK], [1, 2, 3, EOS, BLANK]])
    got = scorer.scores(first) / 0.5
    for b in range(2):
        want = [_log_prob(log_probs[b], int(lengths[b]), [c], False) for c in (1, 2, 3)]
        want.append(_log_prob(log_probs[b], int(lengths[b]), [], True))  # EOS now: no characters at all
        assert got[b, :4].tolist() == pytest.approx(want, abs=1e-4)
        assert got[b, 4] == float("-inf")  # the blank is never a character
    scorer.advance(torch.tensor([0, 1]), torch.tensor([0, 1]))  # line 0 reads "1", line 1 reads "2"
    second = torch.tensor([[1, 2, EOS], [2, 3, EOS]])  # a repeat of the last character among them
    got = scorer.scores(second) / 0.5
    for b, prefix in ((0, [1]), (1, [2])):
        length, before = int(lengths[b]), _log_prob(log_probs[b], int(lengths[b]), prefix, False)
        want = [_log_prob(log_probs[b], length, prefix + [c], False) - before for c in second[b, :2].tolist()]
        want.append(_log_prob(log_probs[b], length, prefix, True) - before)
        assert got[b].tolist() == pytest.approx(want, abs=1e-4)


def _decoder_and_memory(vocab: int = 8):
    from seq2seq_lab.models import CRNNAttention
    from seq2seq_lab.models.heads import CTCHead

    torch.manual_seed(0)
    model = CRNNAttention(vocab - 3, vocab, channels=1, width=64, hidden_dim=16, embed_dim=8, positions="concat",
                          width_mult=0.25, rnn_hidden=16, ctc_head=True).eval()
    assert isinstance(model.ctc_head, CTCHead)
    return model, model.encode(torch.rand(2, 1, 32, 64) * 2 - 1, torch.tensor([64, 40]))


def _reading(chars: list[int], steps: int, vocab: int, lengths: list[int]) -> torch.Tensor:
    """CTC log-probabilities ``(B, T, V)`` sure of ``chars``, each column a character or a blank, past each
    line's length anything (the padding)."""
    torch.manual_seed(1)
    log_probs = torch.randn(len(lengths), steps, vocab) * 3  # the padding: noise
    for b, length in enumerate(lengths):
        sure = torch.full((length, vocab), -20.0)
        sure[:, BLANK] = 0.0
        for i, c in enumerate(chars):
            sure[2 * i + 1, BLANK], sure[2 * i + 1, c] = -20.0, 0.0
        log_probs[b, :length] = sure
    return log_probs.log_softmax(-1)


def test_the_joint_beam_follows_a_sure_ctc_reading_and_ignores_the_padding():
    model, (memory, mask, summary) = _decoder_and_memory()
    eos = 1  # the tokenizer's; the blank is 0 (SOS)
    chars = [5, 3, 7]
    lengths = mask.sum(1).tolist()
    attention_alone, _ = beam(model.decoder, memory, mask, summary, 6, eos, beam_width=3)
    log_probs = _reading(chars, memory.size(1), 8, lengths)
    for width in (1, 3):
        tokens, scores = beam(model.decoder, memory, mask, summary, 6, eos, beam_width=width,
                              ctc=CTCPrefixScorer(log_probs, mask.sum(1), BLANK, weight=0.9))
        for row in tokens.tolist():
            assert row[:len(chars) + 1] == chars + [eos]
        # the scores are the attention's own log-probabilities of the tokens chosen
        assert torch.isfinite(scores).all()
    assert attention_alone[0, :4].tolist() != chars + [eos]  # the untrained attention alone reads something else
    # other noise in the padding columns: the same reading and scores
    noisy = log_probs.clone()
    noisy[1, lengths[1]:] = (torch.randn_like(noisy[1, lengths[1]:]) * 5).log_softmax(-1)
    a = beam(model.decoder, memory, mask, summary, 6, eos, beam_width=3, ctc=CTCPrefixScorer(log_probs, mask.sum(1), 0, 0.3))
    b = beam(model.decoder, memory, mask, summary, 6, eos, beam_width=3, ctc=CTCPrefixScorer(noisy, mask.sum(1), 0, 0.3))
    assert torch.equal(a[0], b[0]) and torch.allclose(a[1], b[1])


def test_ctc_decode_weight_is_checked_by_key_and_decodes_jointly():
    from seq2seq_lab.data.tokenizer import Tokenizer
    from seq2seq_lab.models import CRNNAttention
    from seq2seq_lab.systems import OCRSystem

    tokenizer = Tokenizer("abcde")

    def system(ctc_head, **kwargs):
        torch.manual_seed(0)
        model = CRNNAttention(5, tokenizer.vocab_size, channels=1, width=64, hidden_dim=16, embed_dim=8,
                              positions="concat", width_mult=0.25, rnn_hidden=16, ctc_head=ctc_head)
        return OCRSystem(model, tokenizer, optimizer=torch.optim.Adam, **kwargs).eval()

    with pytest.raises(ConfigError, match="ctc_decode_weight=0.3 needs a model with a trained CTC head"):
        system(False, ctc_decode_weight=0.3)
    for bad in (1.0, -0.1, "0.3", True):
        with pytest.raises(ConfigError, match="system.ctc_decode_weight must be a number in"):
            system(True, ctc_decode_weight=bad)
    plain, joint = system(True), system(True, ctc_decode_weight=0.5)
    assert plain.ctc_scorer({"encoded": plain.net.encode(torch.zeros(1, 1, 32, 64))}) is None
    images, lengths = torch.rand(2, 1, 32, 64) * 2 - 1, torch.tensor([64, 48])
    with torch.no_grad():
        texts, confidence = joint.transcribe(images, lengths)
        # as the model's search with the scorer of the CTC head's reading, at width 1
        memory, mask, summary = joint.net.encode(images, lengths)
        scorer = CTCPrefixScorer(joint.net.ctc_head(memory), mask.sum(1), Tokenizer.SOS, 0.5)
        tokens, _, _ = joint.net.search(memory, mask, summary, tokenizer.EOS, None, 1, ctc=scorer)
    assert texts == tokenizer.batch_decode(tokens) and confidence.shape == (2,)
