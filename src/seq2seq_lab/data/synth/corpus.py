"""Generating (or reusing) a synthetic text-line corpus on disk (the CLI is ``python -m seq2seq_lab.synth``).

Output, under ``out_dir``::

    images/000000123.jpg          one image per sample, named by its global index
    train.txt val.txt test.txt    "images/000000123.jpg <label>", sorted by index
    test_heldout.txt              with num_test_heldout > 0: lines drawn only in heldout_fonts
    fonts.tsv                     style real: "images/000000123.jpg<TAB>font face" for every image
    charset.txt                   the charset, one character per line
    manifest.json                 the arguments, the counts, the fonts and whether the corpus is complete
    lmdb/{train,val,test}/        with lmdb=true: the same samples in the scene-text LMDB layout

Two styles: ``simple`` (:func:`~seq2seq_lab.data.synth.render.render_line`, fixed-size
lines in fonts that cover the whole charset, looks set by ``render``) and ``real``
(:func:`~seq2seq_lab.data.synth.look.render_real_line`, natural-width lines, each in
a face that covers that line, looks set by ``look``). The held-out split's fonts
never draw a training line.

Sample ``i`` (train first, then val, test and test_heldout) is drawn with
``numpy.random.default_rng([seed, i])`` alone, so any number of workers writes
the same corpus. Run again with the same arguments, a complete corpus is
reused as it is; with other arguments it is refused unless ``overwrite=true``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from seq2seq_lab.data.synth.drawer import LineDrawer, make_drawer
from seq2seq_lab.data.synth.faces import font_names
from seq2seq_lab.data.synth.look import LookConfig
from seq2seq_lab.data.synth.render import RenderConfig, settings_from
from seq2seq_lab.data.synth.text import load_charset, text_source_file
from seq2seq_lab.errors import ConfigError, LabError

log = logging.getLogger(__name__)

__all__ = ["CorpusExistsError", "CorpusSpec", "draw_samples", "generate_corpus", "image_name", "spec_from_config"]

SPLITS = ("train", "val", "test", "test_heldout")
STYLES = ("simple", "real")  # render.render_line | look.render_real_line
FONT_LIST = "fonts.tsv"  # image -> the font face that drew it (style real)
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
FORMATS = {"jpg": "JPEG", "png": "PNG"}
_CHUNK = 250  # indices per task sent to a worker


class CorpusExistsError(LabError, FileExistsError):
    """``out_dir`` holds a different (or unknown) corpus and ``overwrite`` is false."""


@dataclass
class CorpusSpec:
    """Everything that decides a corpus's contents (not where it goes, nor how many workers)."""

    num_train: int = 1000
    num_val: int = 100
    num_test: int = 100
    charset: str = "cjk_common"
    charset_size: int | None = None
    min_length: int = 10
    max_length: int = 10
    text_file: str | None = None
    policy: str = "drop"
    zipf: float | None = None
    fonts: list[str | list[str]] = field(default_factory=list)  # an entry: a family, file or dir, or a list of them
    style: str | None = None
    heldout_fonts: list[str | list[str]] | None = None
    num_test_heldout: int | None = None
    rare_share: float | None = None
    ascii_share: float | None = None
    ascii_twins: str | None = None
    twin_share: float | None = None
    length: int | None = None  # with varied_share: the length of the other labels
    varied_share: float | None = None
    look: dict | None = None
    seed: int = 0
    format: str = "jpg"
    quality: int = 95
    lmdb: bool = False
    render: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"format must be one of {sorted(FORMATS)}, got {self.format!r}")
        if min(self.num_train, self.num_val, self.num_test, self.num_test_heldout or 0) < 0:
            raise ConfigError("num_train, num_val, num_test and num_test_heldout must be >= 0")
        if (self.style or "simple") not in STYLES:
            raise ConfigError(f"style must be one of {STYLES}, got {self.style!r}")
        if self.num_test_heldout and not self.heldout_fonts:
            raise ConfigError("num_test_heldout > 0 needs heldout_fonts: the fonts kept out of training")
        overlap = set(font_names(self.fonts)) & set(font_names(self.heldout_fonts or []))
        if overlap:
            raise ConfigError(f"heldout_fonts must not be in fonts: {sorted(overlap)}")
        if self.text_file:
            text_source_file(self.text_file)  # a missing file or package is named before any drawing
        self.render = settings_from(RenderConfig, self.render, "render").to_dict()  # validated, defaults filled
        if self.style == "real":
            self.look = settings_from(LookConfig, self.look or {}, "look").to_dict()

    def counts(self) -> dict[str, int]:
        """Lines per split; test_heldout only when it has lines."""
        counts = {"train": self.num_train, "val": self.num_val, "test": self.num_test}
        return counts | ({"test_heldout": self.num_test_heldout} if self.num_test_heldout else {})


def _font_entry(entry) -> str | list[str]:
    """A ``fonts`` entry as the spec keeps it: a name, or a list of names drawn as one group."""
    return [str(f) for f in entry] if isinstance(entry, (list, tuple)) else str(entry)


def spec_from_config(cfg) -> CorpusSpec:
    """The spec from a ``synth`` config (conf/synth.yaml's keys; a DictConfig or a plain dict).

    ``min_length``/``max_length``, when set, win over ``length``; with ``varied_share``, that share of
    the labels draws from them and the rest have ``length``.
    """
    cfg = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    lo = cfg.get("min_length") if cfg.get("min_length") is not None else cfg.get("length")
    hi = cfg.get("max_length") if cfg.get("max_length") is not None else cfg.get("length")
    if lo is None or hi is None:
        raise ConfigError("set length=N, or min_length and max_length")
    varied = cfg.get("varied_share") or None
    if varied and (cfg.get("length") is None or cfg.get("min_length") is None or cfg.get("max_length") is None):
        raise ConfigError("varied_share needs length (most labels) and min_length / max_length (the varied ones)")
    return CorpusSpec(
        num_train=cfg["num_train"], num_val=cfg["num_val"], num_test=cfg["num_test"],
        charset=str(cfg["charset"]), charset_size=cfg.get("charset_size"), min_length=int(lo), max_length=int(hi),
        text_file=cfg.get("text_file"), policy=cfg.get("policy", "drop"), zipf=cfg.get("zipf"),
        fonts=[_font_entry(f) for f in cfg.get("fonts") or []], seed=cfg.get("seed", 0),
        format=cfg.get("format", "jpg"), quality=cfg.get("quality", 95), lmdb=cfg.get("lmdb", False),
        render=cfg.get("render") or {}, style=cfg.get("style"), num_test_heldout=cfg.get("num_test_heldout"),
        heldout_fonts=[_font_entry(f) for f in cfg["heldout_fonts"]] if cfg.get("heldout_fonts") else None,
        rare_share=cfg.get("rare_share"), ascii_share=cfg.get("ascii_share"), look=cfg.get("look") or None,
        ascii_twins=cfg.get("ascii_twins") or None, twin_share=cfg.get("twin_share") or None,
        length=int(cfg["length"]) if varied else None, varied_share=varied,
    )


def image_name(index: int, fmt: str) -> str:
    """An image's path relative to the corpus directory."""
    return f"images/{index:09d}.{fmt}"


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def _text_sha1(spec: str | None) -> str | None:
    """One digest of a text source's files (None without one)."""
    if not spec:
        return None
    return _sha1(b"".join(Path(p).read_bytes() for p in text_source_file(spec)))


# --- workers: state set once per process, then chunks of indices ---------------------------------
_state: dict = {}


def _init_worker(drawer: LineDrawer, first_heldout: int, root: str, fmt: str, quality: int) -> None:
    _state.update(drawer=drawer, first_heldout=first_heldout, root=root, fmt=fmt, quality=quality)


def draw_samples(drawer: LineDrawer, indices: Iterable[int], first_heldout: int, root: str | os.PathLike, fmt: str,
                 quality: int) -> list[tuple[int, str, str]]:
    """Draw samples ``indices`` (those from ``first_heldout`` on in the held-out faces) into
    ``root/images``; ``(index, label, face)`` of each. Sample ``i`` is the same whatever else is drawn."""
    save = {"quality": quality} if fmt == "jpg" else {"compress_level": 1}
    out = []
    for i in indices:
        label, image, face = drawer.draw(i, heldout=i >= first_heldout)
        image.save(os.path.join(root, image_name(i, fmt)), FORMATS[fmt], **save)
        out.append((i, label, face))
    return out


def _make_samples(indices: range) -> list[tuple[int, str, str]]:
    return draw_samples(indices=indices, **_state)


def _run(total: int, workers: int, initargs: tuple, progress: bool) -> tuple[list[str], list[str]]:
    """Every sample's label and font face, by index, writing the images on the way."""
    labels = [""] * total
    faces = [""] * total
    chunks = [range(a, min(a + _CHUNK, total)) for a in range(0, total, _CHUNK)]
    columns = (TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    pool = None
    if workers <= 1:
        _init_worker(*initargs)
        results = map(_make_samples, chunks)
    else:  # started before the progress bar's thread, so no lock of it is forked
        pool = multiprocessing.Pool(workers, initializer=_init_worker, initargs=initargs)
        results = pool.imap_unordered(_make_samples, chunks)
    try:
        with Progress(*columns, disable=not progress) as bar:
            task = bar.add_task("synth", total=total)
            for chunk in results:
                for i, label, face in chunk:
                    labels[i], faces[i] = label, face
                bar.advance(task, len(chunk))
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return labels, faces


# --- the corpus directory ------------------------------------------------------------------------
def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _read_manifest(out: Path) -> dict | None:
    try:
        return json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _ours(out: Path) -> list[Path]:
    """The corpus files and directories present in ``out``."""
    names = ["images", "lmdb", "charset.txt", MANIFEST, FONT_LIST] + [f"{s}.txt" for s in SPLITS]
    return [out / n for n in names if (out / n).exists()]


def _check_existing(out: Path, identity: dict, overwrite: bool) -> dict | None:
    """The manifest of a complete, identical corpus to reuse; else clears the way (or refuses)."""
    manifest = _read_manifest(out)
    old = manifest.get("args", {}) if manifest is not None else {}
    old = {k: v for k, v in old.items() if k != "charset"}  # manifests before charset_sha1 was the identity
    if isinstance(old.get("look"), dict):  # a look setting added since counts as its default
        old["look"] = LookConfig().to_dict() | old["look"]
    # an argument added since a corpus was made (absent from its manifest) counts as its default, None
    same = manifest is not None and set(old) <= set(identity) and all(old.get(k) == v for k, v in identity.items())
    splits = [s for s, n in manifest.get("counts", {}).items() if n] if manifest else []
    if same and manifest.get("complete") and all((out / f"{s}.txt").is_file() for s in splits):
        return manifest
    present = _ours(out)
    if present and not same and not overwrite:
        if manifest is None:
            why = f"it holds {', '.join(p.name for p in present)} but no readable {MANIFEST}"
        else:
            diff = sorted(k for k in set(old) | set(identity) if old.get(k) != identity.get(k))
            why = "it was made with other arguments: " + ", ".join(
                f"{k}={old.get(k)!r} (now {identity.get(k)!r})" for k in diff)
        raise CorpusExistsError(f"{out}: will not write a corpus there: {why}. Pass overwrite=true to replace it.")
    for p in present:  # a stale, partial or overwritten corpus
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return None


def _write_lmdb(out: Path, spec: CorpusSpec, labels: list[str]) -> dict[str, str]:
    from seq2seq_lab.data.ocr.lmdb_io import (
        write_lmdb,  # needs the optional ``lmdb`` package
    )

    done, start = {}, 0
    for split, n in spec.counts().items():
        idx = range(start, start + n)
        start += n
        if n:
            samples = (((out / image_name(i, spec.format)).read_bytes(), labels[i]) for i in idx)
            write_lmdb(out / "lmdb" / split, samples, overwrite=True)
            done[split] = f"lmdb/{split}"
    return done


def generate_corpus(spec: CorpusSpec, out_dir: str | os.PathLike, workers: int = 1,
                    overwrite: bool = False, progress: bool = False) -> dict:
    """Write the corpus ``spec`` describes into ``out_dir``, or reuse the identical one there.

    Returns:
        the manifest (``args``, ``counts``, ``fonts``, ``reused``...).

    Raises:
        CorpusExistsError: ``out_dir`` holds another corpus and ``overwrite`` is false.
        seq2seq_lab.data.synth.fonts.NoFontError: no font draws the charset.
        ValueError: a bad spec (charset, lengths, text file...).
    """
    out = Path(out_dir)
    charset = load_charset(spec.charset, spec.charset_size)
    # the charset by content: the same file named by another path (or builtin:) makes the same corpus
    identity = {k: v for k, v in asdict(spec).items() if k != "charset"} | {"charset_sha1": _sha1(charset.encode("utf-8")),
                               "text_sha1": _text_sha1(spec.text_file)}
    found = _check_existing(out, identity, overwrite)
    if found is not None:
        log.info("%s: a complete corpus with these arguments exists (%s); nothing to do",
                 out, ", ".join(f"{k} {v}" for k, v in found["counts"].items()))
        return found | {"reused": True}

    t0 = time.perf_counter()
    counts = spec.counts()
    drawer = make_drawer(spec, with_heldout="test_heldout" in counts)
    manifest = {"version": MANIFEST_VERSION, "args": identity, "complete": False, "counts": counts,
                "charset_size": len(charset), "fonts": [str(f) for f in drawer.fonts],
                "heldout_fonts": [str(f) for f in drawer.heldout], "text_source": spec.text_file,
                "rare_characters": len(drawer.sampler.rare) if spec.rare_share else 0}
    (out / "images").mkdir(parents=True, exist_ok=True)
    _write_text(out / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2))
    log.info("writing %d lines (%s) to %s with %d font(s), %d worker(s)",
             sum(counts.values()), counts, out, len(drawer.fonts), workers)

    first_heldout = sum(counts.values()) - counts.get("test_heldout", 0)
    initargs = (drawer, first_heldout, str(out), spec.format, spec.quality)
    labels, faces = _run(sum(counts.values()), workers, initargs, progress)
    if spec.style == "real":
        _write_text(out / FONT_LIST, "".join(f"{image_name(i, spec.format)}\t{f}\n" for i, f in enumerate(faces)))
    _write_text(out / "charset.txt", "".join(c + "\n" for c in charset))
    start = 0
    for split, n in counts.items():
        rows = (f"{image_name(i, spec.format)} {labels[i]}\n" for i in range(start, start + n))
        _write_text(out / f"{split}.txt", "".join(rows))
        start += n
    if spec.lmdb:
        manifest["lmdb"] = _write_lmdb(out, spec, labels)
    manifest.update(complete=True, seconds=round(time.perf_counter() - t0, 1))
    _write_text(out / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2))
    log.info("done in %.1f s: %s", manifest["seconds"], out)
    return manifest | {"reused": False}


