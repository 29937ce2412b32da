"""Drawing sample ``i`` of a synthetic corpus: its label, image and font, from a generator seeded by ``(seed, i)``.

One :class:`LineDrawer` serves both ways of using the generator: writing a corpus
to disk (:mod:`~seq2seq_lab.data.synth.corpus`, in worker processes) and drawing
training lines on the fly inside the OCR data module
(:class:`~seq2seq_lab.data.ocr.on_the_fly.OnTheFlyLines`). It pickles, so each
process gets its own copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from seq2seq_lab.data.synth.faces import FontFace, faces_for, resolve_faces
from seq2seq_lab.data.synth.fonts import find_fonts
from seq2seq_lab.data.synth.look import LookConfig, render_real_line
from seq2seq_lab.data.synth.render import RenderConfig, render_line
from seq2seq_lab.data.synth.text import TextSampler, load_charset, read_text_source
from seq2seq_lab.errors import ConfigError

__all__ = ["LineDrawer", "make_drawer"]


@dataclass
class LineDrawer:
    """Labels from ``sampler``, drawn in ``fonts`` (``heldout`` for the held-out split) as ``look`` says.

    ``look`` is a :class:`LookConfig` (style ``real``: per-line font coverage) or a
    :class:`RenderConfig` (style ``simple``: one font file per line from ``fonts``).
    """

    sampler: TextSampler
    fonts: list
    heldout: list[FontFace]
    look: LookConfig | RenderConfig
    seed: int

    def draw(self, index: int, heldout: bool = False) -> tuple[str, Image.Image, str]:
        """Sample ``index``'s label, image and font name (``""`` for the simple style)."""
        rng = np.random.default_rng([self.seed, index])
        if not isinstance(self.look, LookConfig):
            label = self.sampler.sample(rng)
            return label, render_line(label, self.fonts, rng, self.look), ""
        pool = self.heldout if heldout else self.fonts
        for _ in range(100):  # a label no face covers is drawn again
            label = self.sampler.sample(rng)
            faces = faces_for(label, pool)
            if faces:
                image, face = render_real_line(label, faces, rng, self.look)
                return label, image, face.name
        raise ConfigError(f"no font among {[f.name for f in pool]} covers 100 labels in a row (last {label!r})")


def make_drawer(spec, with_heldout: bool = False) -> LineDrawer:
    """The drawer a :class:`~seq2seq_lab.data.synth.corpus.CorpusSpec` describes.

    Raises:
        ConfigError: fonts named in both ``fonts`` and ``heldout_fonts``, or bad text settings.
        seq2seq_lab.data.synth.fonts.NoFontError: a font that is not installed, or none draws the charset.
    """
    charset = load_charset(spec.charset, spec.charset_size)
    real = spec.style == "real"
    fonts = resolve_faces(spec.fonts) if real else find_fonts(spec.fonts, charset)
    heldout = resolve_faces(spec.heldout_fonts, "heldout_fonts") if with_heldout else []
    if set(fonts) & set(heldout):
        raise ConfigError(f"heldout_fonts name faces that fonts names too: {sorted(map(str, set(fonts) & set(heldout)))}")
    lines = read_text_source(spec.text_file) if spec.text_file else None
    sampler = TextSampler(charset, spec.min_length, spec.max_length, lines, spec.policy, spec.zipf,
                          rare_share=spec.rare_share or 0.0)
    look = LookConfig(**spec.look) if real else RenderConfig(**spec.render)
    return LineDrawer(sampler, fonts, heldout, look, spec.seed)
