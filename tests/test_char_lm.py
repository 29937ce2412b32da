"""The character n-gram language model and its shallow fusion in beam search."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seq2seq_lab.data.synth.text import mix_ascii_runs
from seq2seq_lab.data.tokenizer import Tokenizer
from seq2seq_lab.errors import ConfigError
from seq2seq_lab.models import AttentionSeq2Seq
from seq2seq_lab.models.char_lm import CharNgramLM, LMFusion
from seq2seq_lab.models.search import beam
from seq2seq_lab.systems.lm_text import char_lm_from_text
from seq2seq_lab.systems.ocr import check_lm_options

V, CHARS = 8, range(2, 8)  # ids 0 and 1 are SOS and EOS


def test_probabilities_over_the_characters_sum_to_one_and_specials_score_zero():
    lm = CharNgramLM([[2, 3, 4, 2, 3, 5], [6, 7, 2, 3]], V, CHARS, order=3)
    history = torch.tensor([[0, 0], [0, 2], [2, 3], [7, 7], [4, 2]])
    log_probs = lm.log_probs(history)
    assert log_probs.shape == (5, V)
    torch.testing.assert_close(log_probs[:, 2:].exp().sum(1), torch.ones(5))
    assert (log_probs[:, :2] == 0).all()
    assert (log_probs[:, 2:] < 0).all()  # every character keeps some probability


def test_bigram_values_are_interpolated_absolute_discounting():
    d, eps = 0.5, 0.1
    lm = CharNgramLM([[2, 3, 2, 3, 4]], V, CHARS, order=2, discount=d, eps=eps)
    # distinct bigrams: 2-3, 3-2, 3-4, so the continuation counts are 3: 1, 2: 1, 4: 1
    unigram = {w: (1 - eps) * (1 / 3 if w in (2, 3, 4) else 0) + eps / 6 for w in CHARS}
    # after 3: c(3 2) = c(3 4) = 1, c(3) = 2, two distinct successors
    expected = {w: max((w in (2, 4)) - d, 0) / 2 + d * 2 / 2 * unigram[w] for w in CHARS}
    got = lm.log_probs(torch.tensor([[3]]))[0]
    for w in CHARS:
        assert math.isclose(got[w].exp().item(), expected[w], rel_tol=1e-5)
    unseen = lm.log_probs(torch.tensor([[7]]))[0]  # 7 never starts a bigram: the unigram level whole
    for w in CHARS:
        assert math.isclose(unseen[w].exp().item(), unigram[w], rel_tol=1e-5)


def test_relative_scores_are_zero_without_context_and_favour_what_the_context_predicts():
    lm = CharNgramLM([[2, 3]] * 20 + [[4, 5]] * 20, V, CHARS, order=2)
    relative = lm.log_probs(torch.tensor([[0], [2]]), relative=True)
    torch.testing.assert_close(relative[0], torch.zeros(V))
    assert relative[1].argmax() == 3 and relative[1, 3] > 0 > relative[1, 5]


def _tiny_model():
    torch.manual_seed(3)
    model = AttentionSeq2Seq(7, 5, 16, 6, V, embed_dim=8).eval()
    return model, model.encode(torch.randn(4, 7, 5))


def test_fusion_of_weight_zero_changes_nothing():
    model, encoded = _tiny_model()
    lm = CharNgramLM([[2, 3, 4, 5]], V, CHARS, order=2)
    plain = beam(model.decoder, *encoded, 6, eos_id=1, beam_width=3)
    fused = beam(model.decoder, *encoded, 6, eos_id=1, beam_width=3, fusion=LMFusion(lm, 0.0))
    assert torch.equal(plain[0], fused[0])
    torch.testing.assert_close(plain[1], fused[1])


def test_a_heavy_relative_fusion_follows_the_language_model_and_returns_the_models_scores():
    model, encoded = _tiny_model()
    tokens, _ = beam(model.decoder, *encoded, 6, eos_id=1, beam_width=1)
    first = int(tokens[0, 0])
    assert first >= 2, "the fixture's first reading starts with a character"
    follower = next(c for c in CHARS if c not in (first, int(tokens[0, 1])))
    lm = CharNgramLM([[first, follower]] * 50 + [[c, c] for c in CHARS], V, CHARS, order=2)
    fused, scores = beam(model.decoder, *encoded, 6, eos_id=1, beam_width=1, fusion=LMFusion(lm, 20.0, relative=True))
    assert fused[0, 0] == first and fused[0, 1] == follower  # a context never seen scores 0: the first stays
    # the returned score is the model's own log-probability of what was read
    logits, _ = model.decoder(*encoded, targets=fused, teacher_forcing=1.0)
    log_probs = logits.log_softmax(-1)[0].gather(1, fused[0].unsqueeze(1)).squeeze(1)
    length = int((fused[0] == 1).nonzero()[0]) + 1 if (fused[0] == 1).any() else fused.size(1)
    assert math.isclose(scores[0].item(), log_probs[:length].sum().item(), rel_tol=1e-4, abs_tol=1e-4)


def test_the_model_counts_a_text_file_over_the_charset(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("甲乙丙甲乙丙\n甲乙丁，\n", encoding="utf-8")
    tokenizer = Tokenizer("甲乙丙丁，")
    lm = char_lm_from_text(str(text), tokenizer, order=2)
    after = lm.log_probs(torch.tensor([[tokenizer.encode("甲")[0]]]))[0, tokenizer.FIRST_CHAR:tokenizer.PAD]
    assert tokenizer.decode([int(after.argmax()) + tokenizer.FIRST_CHAR]) == "乙"


def test_lm_options_name_the_bad_key():
    assert check_lm_options(None) is None
    assert check_lm_options({"text_file": "builtin:news"})["order"] == 3
    with pytest.raises(ConfigError, match="system.lm.text_file"):
        check_lm_options({"weight": 0.3})
    with pytest.raises(ConfigError, match="system.lm.wieght"):
        check_lm_options({"text_file": "builtin:news", "wieght": 0.3})
    with pytest.raises(ConfigError, match="system.lm.order"):
        check_lm_options({"text_file": "builtin:news", "order": 0})
    with pytest.raises(ConfigError, match="system.lm.weight must be a number"):
        check_lm_options({"text_file": "builtin:news", "weight": "high"})


def test_eval_fuses_a_language_model_named_by_an_override(fake_data_dir, tmp_path, caplog):
    from seq2seq_lab.assemble import build_datamodule, build_system
    from seq2seq_lab.eval import evaluate

    from helpers import compose_config

    corpus = fake_data_dir / "ocr"
    data = [f"data.{s}={corpus}/{s}.txt" for s in ("train", "val", "test")]
    cfg = compose_config("train", ["experiment=ocr_crnn_attention", *data, f"data.charset={corpus}/charset.txt",
                                   "data.max_length=4", "data.width=96", "data.num_workers=0", "model.width_mult=0.125",
                                   "model.rnn_hidden=16", "model.hidden_dim=16", "model.embed_dim=8"], tmp_path / "train")
    torch.manual_seed(0)
    system = build_system(cfg, build_datamodule(cfg))
    assert system.fusion() is None  # system.lm: null
    ckpt = tmp_path / "random.ckpt"
    torch.save({"state_dict": system.state_dict(), "run_config": system.run_config}, ckpt)
    text = tmp_path / "text.txt"
    text.write_text("abc0123\nbad 12\n", encoding="utf-8")

    plain = evaluate(compose_config("eval", [f"ckpt_path={ckpt}", "trainer=cpu", "breakdown=false"], tmp_path / "e1"))
    with caplog.at_level("INFO", logger="seq2seq_lab.systems.lm_text"):
        fused = evaluate(compose_config("eval", [f"ckpt_path={ckpt}", "trainer=cpu", "breakdown=false",
                                                 f"+system.lm={{text_file: {text}, weight: 0.5}}"], tmp_path / "e2"))
    assert "character 3-gram model of" in caplog.text
    assert {"test/cer", "test/line_acc"} <= set(fused) and {"test/cer", "test/line_acc"} <= set(plain)
    with pytest.raises(Exception, match="system.lm.order"):  # a ConfigError, as Hydra's instantiate wraps it
        evaluate(compose_config("eval", [f"ckpt_path={ckpt}", "trainer=cpu", "breakdown=false",
                                         f"+system.lm={{text_file: {text}, order: 0}}"], tmp_path / "e3"))


def test_ocr_zh_cpu_fuses_a_model_of_the_generators_own_text(tmp_path):
    from helpers import compose_config

    cfg = compose_config("train", ["experiment=ocr_zh_cpu", "synth.text_file=my_text.txt"], tmp_path)
    assert cfg.system.lm.text_file == "my_text.txt" and cfg.system.lm.weight > 0
    assert check_lm_options(cfg.system.lm)["relative"] is True
    # and prints the generator's ASCII twins in the same share of its text
    assert (cfg.system.lm.ascii_twins, cfg.system.lm.twin_share) == ("（）", 0.5) == (cfg.synth.ascii_twins,
                                                                                    cfg.synth.twin_share)
    off = compose_config("train", ["experiment=ocr_zh_cpu", "synth.ascii_twins=null", "synth.twin_share=null"], tmp_path)
    assert check_lm_options(off.system.lm)["ascii_twins"] is None


def test_the_model_prints_ascii_twins_in_their_share_of_runs_as_the_generator_does(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("".join(f"甲（乙{'丙丁'[i % 2]}）\n" for i in range(400)), encoding="utf-8")
    tokenizer = Tokenizer("甲乙丙丁（）()")
    char = {c: tokenizer.encode(c)[0] for c in "甲（("}
    chars = slice(tokenizer.FIRST_CHAR, tokenizer.PAD)

    def after(lm, c):  # P(next | c) over the charset
        return lm.log_probs(torch.tensor([[char[c]]]))[0, chars].exp()

    plain = char_lm_from_text(str(text), tokenizer, order=2)
    twins = char_lm_from_text(str(text), tokenizer, order=2, ascii_twins="（）", twin_share=0.5)
    full, ascii = tokenizer.encode("（")[0] - tokenizer.FIRST_CHAR, tokenizer.encode("(")[0] - tokenizer.FIRST_CHAR
    assert after(plain, "甲")[full] > 0.9 and after(plain, "甲")[ascii] < 0.05
    assert 0.35 < after(twins, "甲")[ascii] < 0.6 and 0.35 < after(twins, "甲")[full] < 0.6
    assert after(twins, "(").argmax() == tokenizer.encode("乙")[0] - tokenizer.FIRST_CHAR
    with pytest.raises(ConfigError, match="ascii_twins: '甲' has no ASCII twin"):
        char_lm_from_text(str(text), tokenizer, ascii_twins="甲", twin_share=0.5)
    with pytest.raises(ConfigError, match="system.lm.twin_share"):
        check_lm_options({"text_file": "builtin:news", "twin_share": 2})


def test_the_model_counts_ascii_runs_in_their_share_of_pieces_as_the_generator_does(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("甲乙丙丁甲乙丙丁甲乙丙丁甲乙丙丁甲乙丙丁\n" * 300, encoding="utf-8")
    tokenizer = Tokenizer("甲乙丙丁abcXYZ0123456789.%")
    ascii_ids = [tokenizer.encode(c)[0] - tokenizer.FIRST_CHAR for c in "abcXYZ0123456789"]
    chars = slice(tokenizer.FIRST_CHAR, tokenizer.PAD)

    def ascii_after(lm, c):  # P(an ASCII letter or digit next | c)
        return float(lm.log_probs(torch.tensor([[tokenizer.encode(c)[0]]]))[0, chars].exp()[ascii_ids].sum())

    plain = char_lm_from_text(str(text), tokenizer, order=2)
    mixed = char_lm_from_text(str(text), tokenizer, order=2, ascii_share=0.5)
    assert ascii_after(plain, "甲") < 0.01 < 0.03 < ascii_after(mixed, "甲") < 0.3
    assert ascii_after(mixed, "a") > 0.5  # ASCII runs go on as runs
    with pytest.raises(ConfigError, match="system.lm.ascii_share"):
        check_lm_options({"text_file": "builtin:news", "ascii_share": -0.1})


def test_mixed_ascii_runs_keep_each_segment_and_piece_length():
    segments = ["甲乙丙丁" * 7, "甲乙", "丙丁甲乙丙"]
    mixed = mix_ascii_runs(segments, "甲乙丙丁ab12", 1.0, np.random.default_rng(0))
    assert [len(s) for s in mixed] == [len(s) for s in segments] and mixed[1] == "甲乙"  # too short for a run
    pieces = [mixed[0][i:i + 10] for i in range(0, 28, 10)]
    assert all(any(c in "ab12" for c in p) and any(c in "甲乙丙丁" for c in p) for p in pieces)
    assert mix_ascii_runs(segments, "甲乙丙丁", 1.0, np.random.default_rng(0)) == segments  # no ASCII to print
