"""A character language model (:class:`~seq2seq_lab.models.char_lm.CharNgramLM`) counted from a text source."""

from __future__ import annotations

import logging
import time

import numpy as np

from seq2seq_lab.data.synth.text import ascii_twin_map, mix_ascii_runs, read_text_source, text_segments
from seq2seq_lab.data.tokenizer import Tokenizer
from seq2seq_lab.models.char_lm import CharNgramLM

__all__ = ["char_lm_from_text"]

log = logging.getLogger(__name__)


def char_lm_from_text(text_file: str, tokenizer: Tokenizer, order: int = 3, discount: float = 0.75,
                      eps: float = 0.01, ascii_twins: str | None = None, twin_share: float = 0.0,
                      ascii_share: float = 0.0) -> CharNgramLM:
    """Count ``order``-grams of ``text_file`` (``builtin:news``, ``builtin:reviews`` or a UTF-8 file)
    over ``tokenizer``'s charset: each run of in-charset text (after the generator's NFKC mapping)
    is one sequence, so no n-gram spans a character the charset lacks. With ``ascii_twins`` (e.g.
    ``"（）"``), a seeded ``twin_share`` of the runs print them as their ASCII twins, as the
    generator's labels do (:class:`~seq2seq_lab.data.synth.text.TextSampler`). With ``ascii_share``,
    that share of the runs' 10-character pieces get a run of ASCII text (a Latin word, a number),
    as that share of the generator's labels do (:func:`~seq2seq_lab.data.synth.text.mix_ascii_runs`)."""
    start = time.perf_counter()
    charset = "".join(tokenizer.chars)
    segments = text_segments(read_text_source(text_file), charset, "skip")
    if ascii_twins and twin_share:
        table, rng = str.maketrans(ascii_twin_map(ascii_twins, charset)), np.random.default_rng(0)
        segments = [s.translate(table) if rng.random() < twin_share else s for s in segments]
    segments = mix_ascii_runs(segments, charset, ascii_share, np.random.default_rng(1))
    sequences = [tokenizer.encode(s)[:-1] for s in segments]  # without EOS
    char_ids = range(tokenizer.FIRST_CHAR, tokenizer.PAD)
    lm = CharNgramLM(sequences, tokenizer.vocab_size, char_ids, order=order, discount=discount, eps=eps)
    mixed = f" ({ascii_twins} as ASCII in {twin_share:g} of the runs)" if ascii_twins and twin_share else ""
    mixed += f" (ASCII runs in {ascii_share:g} of its 10-character pieces)" if ascii_share else ""
    log.info("character %d-gram model of %s%s: %d characters in %d runs, counted in %.1f s", order, text_file, mixed,
             sum(map(len, sequences)), len(sequences), time.perf_counter() - start)
    return lm
