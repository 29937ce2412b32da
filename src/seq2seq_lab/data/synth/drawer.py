"""Drawing sample ``i`` of a synthetic corpus: its label, image and font, from a generator seeded by ``(seed, i)``.

One :class:`LineDrawer` serves both ways of using the generator: writing a corpus
to disk (:mod:`~seq2seq_lab.data.synth.corpus`, in worker processes) and drawing
training lines on the fly inside the OCR data module
(:class:`~seq2seq_lab.data.ocr.on_the_fly.OnTheFlyLines`). It pickles, so each
process gets its own copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from seq2seq_lab.data.synth.faces import CoverageIndex, FontFace, file_key, font_names, resolve_faces
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

    Style ``real`` draws each line in one of the groups (the entries of the
    config's ``fonts`` list: a family, or a list of families drawn as one
    group, e.g. a style) that cover it, all alike, then in one of that group's
    families alike, then one of the family's faces: a family installed in
    seven weights gets no more lines than one installed in one.
    ``families`` and ``heldout_families`` give the ``(group, family)`` of each
    face of ``fonts`` and ``heldout`` (empty: a group of its own for each face).
    """

    sampler: TextSampler
    fonts: list
    heldout: list[FontFace]
    look: LookConfig | RenderConfig
    seed: int
    families: list[tuple[int, int]] = field(default_factory=list)
    heldout_families: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._covering = {False: CoverageIndex(self.fonts), True: CoverageIndex(self.heldout)}

    def _family_faces(self, label: str, heldout: bool, rng: np.random.Generator) -> list[FontFace]:
        """The faces of one family covering ``label``: a group drawn alike among the groups with such a
        face, then a family alike among that group's."""
        pool, families = (self.heldout, self.heldout_families) if heldout else (self.fonts, self.families)
        covering = set(self._covering[heldout].covering(label))
        tree: dict[int, dict[int, list[FontFace]]] = {}
        for k, face in enumerate(pool):
            if face in covering:
                group, family = families[k] if families else (k, 0)
                tree.setdefault(group, {}).setdefault(family, []).append(face)
        if not tree:
            return []
        group = tree[sorted(tree)[int(rng.integers(0, len(tree)))]]
        return group[sorted(group)[int(rng.integers(0, len(group)))]]

    def draw(self, index: int, heldout: bool = False) -> tuple[str, Image.Image, str]:
        """Sample ``index``'s label, image and font name (``""`` for the simple style)."""
        rng = np.random.default_rng([self.seed, index])
        if not isinstance(self.look, LookConfig):
            label = self.sampler.sample(rng)
            return label, render_line(label, self.fonts, rng, self.look), ""
        pool = self.heldout if heldout else self.fonts
        for _ in range(100):  # a label no face covers is drawn again
            label = self.sampler.sample(rng)
            faces = self._family_faces(label, heldout, rng)
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
    fonts, families = _by_family(spec.fonts, "fonts") if real else (find_fonts(font_names(spec.fonts), charset), [])
    heldout, heldout_families = _by_family(spec.heldout_fonts, "heldout_fonts") if with_heldout else ([], [])
    shared = {file_key(f) for f in fonts} & {file_key(f) for f in heldout}  # a link to a held-out file counts too
    if shared:
        both = sorted(str(f) for f in heldout if file_key(f) in shared)
        raise ConfigError(f"heldout_fonts name faces that fonts names too: {both}")
    lines = read_text_source(spec.text_file) if spec.text_file else None
    sampler = TextSampler(charset, spec.min_length, spec.max_length, lines, spec.policy, spec.zipf,
                          rare_share=spec.rare_share or 0.0, ascii_share=spec.ascii_share or 0.0,
                          ascii_twins=spec.ascii_twins or "", twin_share=spec.twin_share or 0.0,
                          length=spec.length, varied_share=spec.varied_share or 0.0)
    look = LookConfig(**spec.look) if real else RenderConfig(**spec.render)
    return LineDrawer(sampler, fonts, heldout, look, spec.seed, families, heldout_families)


def _by_family(entries, what: str) -> tuple[list[FontFace], list[tuple[int, int]]]:
    """The faces ``entries`` name (see :func:`resolve_faces`) and, for each, ``(group, family)``: the
    entry (a name, or a list of names) and the name within it that it came from; no entries:
    every installed font, a group of its own for each face."""
    if not entries:
        faces = resolve_faces([], what)
        return faces, [(k, 0) for k in range(len(faces))]
    faces: list[FontFace] = []
    families: list[tuple[int, int]] = []
    for k, entry in enumerate(entries):
        for j, name in enumerate(font_names([entry])):
            for face in resolve_faces([name], what):
                if face not in faces:
                    faces.append(face)
                    families.append((k, j))
    return faces, families
