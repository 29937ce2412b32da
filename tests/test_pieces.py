"""Reading long lines in pieces cut between the CTC head's characters (data/ocr/pieces.py, system.piece_chars)."""

import pytest
import torch

from seq2seq_lab.data.ocr.pieces import (attended_spans, character_spans, check_piece_chars, cut_columns, cut_lines,
                                         join_readings)
from seq2seq_lab.errors import ConfigError


def _one_hot(rows: list[list[int]], vocab: int = 8) -> torch.Tensor:
    """``(B, T, vocab)`` scores whose argmax per column is ``rows``."""
    return torch.nn.functional.one_hot(torch.tensor(rows), vocab).float()


def test_character_spans_collapse_repeats_split_at_blanks_and_stop_at_the_length():
    scores = _one_hot([[0, 5, 5, 0, 5, 0, 0, 7, 3, 3, 2], [4, 4, 4, 0, 0, 0, 0, 0, 0, 6, 6]])
    spans = character_spans(scores, torch.tensor([11, 6]), blank=0)
    # 5 5 is one character, 5 _ 5 two; 7 then 3 are two; row 2's 6 6 lies past its 6 valid columns
    assert spans == [[(1, 2), (4, 4), (7, 7), (8, 9), (10, 10)], [(0, 2)]]


def test_attended_spans_place_each_character_of_a_reading_at_its_attention_peak_left_to_right():
    eos = 1
    tokens = torch.tensor([[5, 6, 7, eos, 5], [6, 6, 6, 6, 6]])
    attention = torch.nn.functional.one_hot(torch.tensor([[2, 9, 6, 0, 3], [1, 3, 5, 7, 9]]), 12).float()
    # row 1: three characters before its EOS, their peaks sorted; row 2: no EOS, all five
    assert attended_spans(tokens, attention, eos) == [[(2, 2), (6, 6), (9, 9)], [(1, 1), (3, 3), (5, 5), (7, 7), (9, 9)]]


def test_cut_columns_make_pieces_of_about_chars_characters_midway_between_characters():
    spans = [(3 * i, 3 * i + 1) for i in range(30)]  # 30 characters, each 2 columns, a blank between
    cuts = cut_columns(spans, chars=12, stride=4)
    # round(30 / 12) = 3 pieces, starting at characters 10 and 20: between columns 28 and 30, 58 and 60
    assert cuts == [4 * 29, 4 * 59]
    assert cut_columns(spans[:17], chars=12, stride=4) == []  # up to 1.5 x 12 characters: whole
    assert len(cut_columns(spans[:18], chars=12, stride=4)) == 1
    assert cut_columns([], chars=12, stride=4) == []


def test_cut_lines_cut_each_line_at_its_own_columns_and_join_readings_in_order():
    images = torch.arange(2 * 3 * 20, dtype=torch.float32).reshape(2, 1, 3, 20)
    pieces, widths, owner = cut_lines(images, torch.tensor([20, 12]), [[5, 12, 12, 30], []])
    assert owner == [0, 0, 0, 1] and widths.tolist() == [5, 7, 8, 12]  # a repeated or outside cut is dropped
    assert torch.equal(pieces[1, :, :, :7], images[0, :, :, 5:12])
    assert torch.equal(pieces[3, :, :, :12], images[1, :, :, :12])
    eos, pad = 1, 9
    tokens = torch.tensor([[2, 3, eos, pad], [4, eos, pad, pad], [5, 6, 7, eos], [8, eos, pad, pad]])
    scores = torch.tensor([-0.3, -0.2, -0.4, -1.0])
    joined, joined_scores = join_readings(tokens, scores, owner, 2, eos, pad)
    assert joined.tolist() == [[2, 3, 4, 5, 6, 7, eos], [8, eos, pad, pad, pad, pad, pad]]
    # the mean log-probability per token (each piece's EOS counted) kept over the joined line's tokens
    assert joined_scores[0].item() == pytest.approx(-0.9 / 9 * 7)
    assert joined_scores[1].item() == pytest.approx(-1.0)


def test_piece_chars_is_checked_by_key():
    assert check_piece_chars(None) is None and check_piece_chars(12) == 12
    for bad in (1, 0, 2.5, "12", True):
        with pytest.raises(ConfigError, match="system.piece_chars must be null or an integer >= 2"):
            check_piece_chars(bad)


def _system(ctc_head: bool = True, attention: str | None = None, **kwargs):
    from seq2seq_lab.data.tokenizer import Tokenizer
    from seq2seq_lab.models import CRNNAttention
    from seq2seq_lab.systems import OCRSystem

    torch.manual_seed(0)
    model = CRNNAttention(12, Tokenizer("abcdefg").vocab_size, channels=1, width=256, hidden_dim=16, embed_dim=8,
                          positions="concat", width_mult=0.25, rnn_hidden=16, ctc_head=ctc_head,
                          **({"attention": attention} if attention else {}))
    with torch.no_grad():
        if ctc_head:  # an untrained head's argmax varies little along a line: make its reading vary more
            model.ctc_head.linear.weight.normal_(0, 3)
        model.decoder.output.bias[Tokenizer.EOS] = -3.0  # and make the decoder write a few characters before its EOS
    return OCRSystem(model, Tokenizer("abcdefg"), optimizer=torch.optim.Adam, beam_width=2, **kwargs).eval()


def test_a_system_reads_a_long_line_as_its_pieces_read_alone_and_a_short_one_whole():
    with pytest.raises(ConfigError, match="system.piece_chars=8 cuts lines between the characters a CTC head or"):
        _system(ctc_head=False, attention="none", piece_chars=8)
    whole, pieces = _system(), _system(piece_chars=8)
    pieces.load_state_dict(whole.state_dict())
    images, lengths = torch.rand(2, 1, 32, 256) * 2 - 1, torch.tensor([256, 200])
    with torch.no_grad():
        memory, mask, _ = pieces.net.encode(images, lengths)
        spans = character_spans(pieces.net.ctc_head(memory), mask.sum(1), 0)
        cuts = [cut_columns(row, 8, pieces.net.encoder.column_stride) for row in spans]
        assert cuts[0] and not cuts[1], "the first line is read as 13 characters (cut once), the second as 10 (whole)"
        texts, confidence = pieces.transcribe(images, lengths)
        expected = []
        for image, width, at in zip(images, lengths.tolist(), cuts):
            edges = [0, *at, width]
            read = [whole.transcribe(image[None, :, :, a:b])[0][0] for a, b in zip(edges, edges[1:])]
            expected.append("".join(read))
        assert texts == expected and confidence.shape == (2,) and bool((confidence > 0).all())
        assert texts != whole.transcribe(images, lengths)[0]
        # a head that reads nothing but blanks cuts nothing: the lines read whole, as without pieces
        for system in (whole, pieces):
            system.net.ctc_head.linear.bias[0] = 1e4
        assert pieces.transcribe(images, lengths)[0] == whole.transcribe(images, lengths)[0]


def test_the_test_split_is_read_in_pieces_as_predict_reads_it_and_validation_whole():
    pieces = _system(piece_chars=8)
    tokenizer = pieces.tokenizer
    images, lengths = torch.rand(2, 1, 32, 256) * 2 - 1, torch.tensor([256, 200])
    texts = ["abcdefgabcdefg", "gfedcba"]
    targets = torch.full((2, 16), tokenizer.PAD)
    for row, text in enumerate(texts):
        targets[row, : len(text) + 1] = torch.tensor(tokenizer.encode(text))  # its characters, then EOS
    batch = {"inputs": images, "input_lengths": lengths, "targets": targets, "texts": texts,
             "target_lengths": torch.tensor([len(t) + 1 for t in texts])}
    with torch.no_grad():
        read = pieces(images, lengths, 16)[0]
        pieces.test_readings = []
        _, outputs = pieces.compute_loss(batch)
        pieces.update_metrics(batch, outputs, "test")
        val = pieces.decode_batch(batch, outputs)[0]
    from seq2seq_lab.systems.seq2seq import align_predictions

    # as the whole line's reading would, the joined one is scored up to the batch's target length
    assert [hyp for _, hyp in pieces.test_readings] == tokenizer.batch_decode(
        align_predictions(read, 16, tokenizer.EOS, tokenizer.PAD))
    assert tokenizer.batch_decode(val)[0] != tokenizer.batch_decode(read)[0], "validation reads the first line whole"
    assert tokenizer.batch_decode(val)[1] == tokenizer.batch_decode(read)[1], "and the second, as test does"


def test_without_a_ctc_head_the_greedy_readings_attention_places_the_cuts():
    whole, pieces = _system(ctc_head=False), _system(ctc_head=False, piece_chars=4)
    pieces.load_state_dict(whole.state_dict())
    images, lengths = torch.rand(2, 1, 32, 256) * 2 - 1, torch.tensor([256, 120])
    with torch.no_grad():
        encoded = whole.net.encode(images, lengths)
        tokens, _, attention = whole.net.search(*encoded, whole.tokenizer.EOS, None)
        cuts = [cut_columns(row, 4, 4) for row in attended_spans(tokens, attention, whole.tokenizer.EOS)]
        assert any(cuts)
        expected = []
        for image, width, at in zip(images, lengths.tolist(), cuts):
            edges = [0, *sorted(c for c in set(at) if 0 < c < width), width]
            expected.append("".join(whole.transcribe(image[None, :, :, a:b])[0][0] for a, b in zip(edges, edges[1:])))
        assert pieces.transcribe(images, lengths)[0] == expected
