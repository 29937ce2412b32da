"""Reading a line in several views (system.views): the views themselves, the ensemble beam, the system."""

from __future__ import annotations

import pytest
import torch

from seq2seq_lab.data.ocr.views import LineView, line_view, line_views
from seq2seq_lab.data.ocr.widths import pad_batch
from seq2seq_lab.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


def _lines():
    torch.manual_seed(0)
    return torch.rand(1, 32, 97) * 2 - 1, torch.rand(1, 32, 400) * 2 - 1


def test_a_view_changes_the_width_and_moves_the_line_by_its_first_column_and_top_row():
    line, _ = _lines()
    images, lengths = pad_batch([line])
    same, same_lengths = line_view(images, lengths, LineView())
    assert torch.equal(same[0, :, :, :97], line) and same_lengths.tolist() == [97]
    narrow, narrow_lengths = line_view(images, lengths, LineView(scale=0.9))
    assert narrow_lengths.tolist() == [87] and narrow.shape[-1] >= 87
    assert torch.equal(narrow[0, :, :, 87:], narrow[0, :, :, 86:87].expand(-1, -1, narrow.shape[-1] - 87))  # padding
    moved, moved_lengths = line_view(images, lengths, LineView(right=3, down=2))
    assert moved_lengths.tolist() == [100] and moved.shape[2] == 32  # as tall as before: the bottom rows drop out
    assert torch.equal(moved[0, :, 2:, 3:100], line[:, :30])
    assert torch.equal(moved[0, :, :2, 3:100], line[:, :1].expand(-1, 2, -1))  # the top row fills in
    assert torch.equal(moved[0, :, 2:, :3], line[:, :30, :1].expand(-1, -1, 3))  # and the first column


def test_a_lines_view_does_not_depend_on_the_padding_of_its_batch():
    line, wide = _lines()
    alone, alone_lengths = pad_batch([line])  # (1, 1, 32, 100)
    mixed, mixed_lengths = pad_batch([line, wide])  # 303 columns of padding after the line
    for view in [LineView(scale=0.9), LineView(right=2, scale=0.95), LineView(right=1, down=1)]:
        a, a_lengths = line_view(alone, alone_lengths, view)
        m, m_lengths = line_view(mixed, mixed_lengths, view)
        w = a_lengths[0].item()
        assert m_lengths[0].item() == w and torch.equal(a[0, :, :, :w], m[0, :, :, :w])
    # the widths unknown (None): every row is its whole width
    full, full_lengths = line_view(mixed, None, LineView(scale=0.5))
    assert full_lengths.tolist() == [200, 200]


def test_views_from_the_config():
    assert line_views(None) == [] and line_views([]) == []
    views = line_views([{"right": 1, "down": 1}, {"right": 2}, {}, {"right": 2}, {"scale": 0.9}])
    assert views == [LineView(1, 1), LineView(2), LineView(scale=0.9)]  # the line as given and repeats dropped
    for bad, key in [({"right": 1}, "must be a list"), ("right", "must be a list"), ([3], r"system.views\[0\] must be a mapping"),
                     ([{}, {"left": 1}], r"system.views\[1\].left: unknown key"),
                     ([{"scale": 0.1}], r"system.views\[0\].scale"), ([{"scale": "a"}], r"system.views\[0\].scale"),
                     ([{"right": 1.5}], r"system.views\[0\].right"), ([{"right": -1}], r"system.views\[0\].right"),
                     ([{"down": True}], r"system.views\[0\].down"), ([{"down": 9}], r"system.views\[0\].down")]:
        with pytest.raises(ConfigError, match=key):
            line_views(bad)


def _system(views=None, beam_width=1, attention="mlp"):
    from seq2seq_lab.data.tokenizer import Tokenizer
    from seq2seq_lab.models import CRNNAttention
    from seq2seq_lab.systems import OCRSystem

    torch.manual_seed(0)
    tokenizer = Tokenizer("abcdefgh")
    model = CRNNAttention(8, tokenizer.vocab_size, channels=1, width=400, hidden_dim=32, embed_dim=8, attention=attention,
                          positions="concat", width_mult=0.25, rnn_hidden=32)
    return OCRSystem(model, tokenizer, optimizer=torch.optim.Adam, views=views, beam_width=beam_width).eval()


def test_the_ensemble_beam_steps_on_the_mean_of_the_views_log_probabilities():
    from seq2seq_lab.models.search import beam

    system = _system()
    net, eos = system.net, system.tokenizer.EOS
    line, _ = _lines()
    images, lengths = pad_batch([line])
    views = [net.encode(images, lengths), net.encode(*line_view(images, lengths, LineView(down=1, scale=0.8)))]
    with torch.no_grad():
        tokens, score = beam(net.decoder, *views[0], 6, eos, beam_width=1, more=views[1:])
        alone, _ = beam(net.decoder, *views[0], 6, eos, beam_width=1)
        twice, twice_score = beam(net.decoder, *views[0], 6, eos, beam_width=1, more=views[:1])
        # width 1 is greedy on the mean: replay it, each view fed the chosen tokens
        prev = net.decoder.feedback.start(1, images.device)
        states = [net.decoder.initial_state(v[2]) for v in views]
        expected, total = [], 0.0
        for _ in range(tokens.size(1)):
            log_probs = []
            for i, (memory, mask, summary) in enumerate(views):
                out, _, states[i] = net.decoder.step(prev, states[i], memory, mask, summary, None)
                log_probs.append(out.log_softmax(-1))
            mean = torch.stack(log_probs).mean(0)
            expected.append(int(mean.argmax(-1)))
            total += float(mean.max())
            if expected[-1] == eos:
                break
            prev = net.decoder.feedback.from_targets(mean.argmax(-1))
    assert tokens[0, : len(expected)].tolist() == expected and abs(score.item() - total) < 1e-4
    assert torch.equal(twice, alone)  # a view read twice is the line alone
    assert not torch.equal(tokens[0, : alone.size(1)], alone[0, : tokens.size(1)]) or abs(score.item() - twice_score.item()) > 1e-4


def test_a_system_says_which_views_it_reads(caplog):
    assert str(LineView(right=1, down=1)) == "{right: 1, down: 1}" and str(LineView(scale=0.9)) == "{scale: 0.9}"
    with caplog.at_level("INFO", logger="seq2seq_lab.systems.ocr"):
        _system([{"right": 2}, {"right": 1, "down": 1}])
        _system()
    said = [r.getMessage() for r in caplog.records if "views" in r.getMessage()]
    assert said == ["test and predict read each line in 3 views, as given and {right: 2}, {right: 1, down: 1} "
                    "(system.views; null reads each line once)"]


def test_a_system_with_views_reads_a_line_the_same_whatever_the_padding_of_its_batch():
    system = _system([{"scale": 0.9}, {"right": 2}, {"right": 1, "down": 1}], beam_width=3)
    line, wide = _lines()
    alone, alone_lengths = pad_batch([line], 400)
    mixed, mixed_lengths = pad_batch([line, wide], 400)
    with torch.no_grad():
        texts_alone, conf_alone = system.transcribe(alone, alone_lengths)
        texts_mixed, conf_mixed = system.transcribe(mixed, mixed_lengths)
        plain = _system(beam_width=3).transcribe(alone, alone_lengths)
    assert len(system.views) == 3 and len(system.other_views(mixed, mixed_lengths)) == 3
    assert texts_alone[0] == texts_mixed[0] and abs(conf_alone[0].item() - conf_mixed[0].item()) < 1e-5
    assert abs(conf_alone[0].item() - plain[1][0].item()) > 1e-6  # the views changed the scores


def test_a_position_attention_system_reads_full_width_lines_in_views_moved_right():
    """ocr_zh's attention has a slot per column of the maximum width (101 for 400 pixels); a view moved
    right 3 pixels is padded to 408 (102 columns), past the slots by padding alone, and reads."""
    system = _system([{"right": 3}, {"right": 1, "down": 1}], beam_width=3, attention="position")
    assert system.net.decoder.attention.max_positions == 101
    line, wide = _lines()
    batch, lengths = pad_batch([line, wide], 400)
    assert system.other_views(batch, lengths)[0][0].size(1) > 101  # the moved view's memory is longer than the slots
    with torch.no_grad():
        texts, _ = system.transcribe(batch, lengths)
        texts_alone, _ = system.transcribe(*pad_batch([line], 400))
    assert len(texts) == 2 and texts[0] == texts_alone[0]
