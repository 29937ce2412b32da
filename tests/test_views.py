"""Reading a line in several views (system.views): the views themselves, the ensemble beam, the system."""

from __future__ import annotations

import pytest
import torch

from seq2seq_lab.data.ocr.views import LineViews, line_view
from seq2seq_lab.data.ocr.widths import pad_batch
from seq2seq_lab.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


def _lines():
    torch.manual_seed(0)
    return torch.rand(1, 32, 97) * 2 - 1, torch.rand(1, 32, 400) * 2 - 1


def test_a_view_changes_the_width_and_shifts_by_the_first_column():
    line, _ = _lines()
    images, lengths = pad_batch([line])
    same, same_lengths = line_view(images, lengths)
    assert torch.equal(same[0, :, :, :97], line) and same_lengths.tolist() == [97]
    narrow, narrow_lengths = line_view(images, lengths, scale=0.9)
    assert narrow_lengths.tolist() == [87] and narrow.shape[-1] >= 87
    assert torch.equal(narrow[0, :, :, 87:], narrow[0, :, :, 86:87].expand(-1, -1, narrow.shape[-1] - 87))  # padding
    shifted, shifted_lengths = line_view(images, lengths, shift=3)
    assert shifted_lengths.tolist() == [100]
    assert torch.equal(shifted[0, :, :, :3], line[:, :, :1].expand(-1, -1, 3)) and torch.equal(shifted[0, :, :, 3:100], line)


def test_a_lines_view_does_not_depend_on_the_padding_of_its_batch():
    line, wide = _lines()
    alone, alone_lengths = pad_batch([line])  # (1, 1, 32, 100)
    mixed, mixed_lengths = pad_batch([line, wide])  # 303 columns of padding after the line
    for scale, shift in [(0.9, 0), (0.95, 2), (1.0, 1)]:
        a, a_lengths = line_view(alone, alone_lengths, scale, shift)
        m, m_lengths = line_view(mixed, mixed_lengths, scale, shift)
        w = a_lengths[0].item()
        assert m_lengths[0].item() == w and torch.equal(a[0, :, :, :w], m[0, :, :, :w])
    # the widths unknown (None): every row is its whole width
    full, full_lengths = line_view(mixed, None, 0.5)
    assert full_lengths.tolist() == [200, 200]


def test_views_from_the_config():
    assert LineViews.from_config(None) is None
    views = LineViews.from_config({"scales": [1.0, 0.95, 0.9]})
    assert views.others == [(0.95, 0), (0.9, 0)] and len(views) == 3
    both = LineViews.from_config({"scales": [0.9], "shifts": [0, 2]})
    assert both.others == [(0.9, 0), (0.9, 2)] and len(both) == 3  # the line as given is always read
    assert len(LineViews.from_config({"shifts": [0, 2, 2]})) == 2
    for bad, key in [({"scale": [1.0]}, "system.views.scale: unknown key"), ({"scales": []}, "system.views.scales"),
                     ({"scales": [0.1]}, "system.views.scales"), ({"scales": ["a"]}, "system.views.scales"),
                     ({"shifts": [1.5]}, "system.views.shifts"), ({"shifts": [-1]}, "system.views.shifts"),
                     ({"shifts": "2"}, "system.views.shifts")]:
        with pytest.raises(ConfigError, match=key):
            LineViews.from_config(bad)


def _system(views=None, beam_width=1):
    from seq2seq_lab.data.tokenizer import Tokenizer
    from seq2seq_lab.models import CRNNAttention
    from seq2seq_lab.systems import OCRSystem

    torch.manual_seed(0)
    tokenizer = Tokenizer("abcdefgh")
    model = CRNNAttention(8, tokenizer.vocab_size, channels=1, width=400, hidden_dim=32, embed_dim=8, attention="mlp",
                          positions="concat", width_mult=0.25, rnn_hidden=32)
    return OCRSystem(model, tokenizer, optimizer=torch.optim.Adam, views=views, beam_width=beam_width).eval()


def test_the_ensemble_beam_steps_on_the_mean_of_the_views_log_probabilities():
    from seq2seq_lab.models.search import beam

    system = _system()
    net, eos = system.net, system.tokenizer.EOS
    line, _ = _lines()
    images, lengths = pad_batch([line])
    views = [net.encode(images, lengths), net.encode(*line_view(images, lengths, 0.8))]
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


def test_a_system_with_views_reads_a_line_the_same_whatever_the_padding_of_its_batch():
    system = _system({"scales": [1.0, 0.9], "shifts": [0, 2]}, beam_width=3)
    line, wide = _lines()
    alone, alone_lengths = pad_batch([line], 400)
    mixed, mixed_lengths = pad_batch([line, wide], 400)
    with torch.no_grad():
        texts_alone, conf_alone = system.transcribe(alone, alone_lengths)
        texts_mixed, conf_mixed = system.transcribe(mixed, mixed_lengths)
        plain = _system(beam_width=3).transcribe(alone, alone_lengths)
    assert len(system.views) == 4 and len(system.other_views(mixed, mixed_lengths)) == 3
    assert texts_alone[0] == texts_mixed[0] and abs(conf_alone[0].item() - conf_mixed[0].item()) < 1e-5
    assert abs(conf_alone[0].item() - plain[1][0].item()) > 1e-6  # the views changed the scores
