"""Read text lines with an exported seq2seq-lab model: numpy, Pillow and onnxruntime only, no torch.

This file stands alone. Copy it beside a model written by ``python -m seq2seq_lab.export``
and, on any machine with ``pip install numpy pillow onnxruntime``::

    python runtime.py model.onnx line1.jpg line2.png lines/   # path<TAB>text<TAB>confidence

or from Python::

    from runtime import LineReader
    reader = LineReader("model.onnx")
    reader.read(["line1.jpg"])  # [("text", 0.98)]

The graph holds the encoder and the whole greedy decoding loop (or the CTC head's best
path); its metadata (key ``seq2seq_lab``, JSON) holds what else reading needs: the model
kind, the charset and special token ids, and the line geometry. Lines are prepared as in
training: decoded (EXIF orientation applied, transparency on white), converted to gray or
RGB, cut to their text's columns where the model's data said so (``trim_margins``), resized
to the model's height with their aspect ratio (squashed to its maximum width when wider),
scaled to ``[-1, 1]``, and a batch padded to its widest line by repeating each line's last
column. The training code (``seq2seq_lab.data.ocr``) imports these functions
from here, so the two cannot drift apart.
"""

from __future__ import annotations

import io
import json
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "MAX_PIXELS", "METADATA_KEY", "WIDTH_MULTIPLE", "ImageTooLargeError", "LineReader", "batch_width",
    "ctc_collapse", "decode_ids", "decode_outputs", "decode_image", "displayed_size", "line_array", "oriented_size", "pad_lines", "resize_line", "scaled_width",
    "median3x3", "text_columns", "trim_margins",
]

METADATA_KEY = "seq2seq_lab"
MAX_PIXELS = 50_000_000  # width * height above which decode_image refuses an image (a decompression bomb)
WIDTH_MULTIPLE = 4  # one encoder column per 4 pixels: batch widths snap to whole columns
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
_MODES = {1: "L", 3: "RGB"}
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # 16/32-bit integer and float grayscale


# -- one line image ----------------------------------------------------------------------------

class ImageTooLargeError(ValueError):
    """An image has more than :data:`MAX_PIXELS` pixels; refused before decoding."""


def _open(data: bytes) -> Image.Image:
    """``Image.open`` (header only) that refuses more than :data:`MAX_PIXELS` pixels."""
    limit = f"more than the limit of {MAX_PIXELS:,} pixels (MAX_PIXELS)"
    try:
        with warnings.catch_warnings():  # Pillow's own, higher, limit warns; ours is the one that counts
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:
        raise ImageTooLargeError(f"image too large: {err}; {limit}") from None
    w, h = img.size
    if w * h > MAX_PIXELS:
        img.close()
        raise ImageTooLargeError(f"image too large: {w}x{h} = {w * h:,} pixels, {limit}")
    return img


def _to_8bit(img: Image.Image) -> Image.Image:
    """A 16/32-bit integer or float grayscale image as ``L``, scaled (never clipped) to ``0..255``.

    ``I;16*``: by the dtype (``/ 257``). ``I``: as 16-bit when every value is in
    ``0..65535`` (16-bit PNGs open as ``I``), else by its own ``min..max``. ``F``:
    ``* 255`` when every value is in ``[0, 1]``, else by its ``min..max``. NaN is 0;
    a constant image outside the dtype range is black.
    """
    arr = np.nan_to_num(np.asarray(img, dtype=np.float64))  # (h, w)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if img.mode.startswith("I;16") or (img.mode == "I" and lo >= 0 and hi <= 65535):
        arr = arr / 257.0
    elif img.mode == "F" and lo >= 0 and hi <= 1:
        arr = arr * 255.0
    else:
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
    return Image.fromarray(np.rint(arr).astype(np.uint8), "L")


def decode_image(data: bytes, mode: str) -> Image.Image:
    """Decode encoded image bytes into a fully loaded ``mode`` (``"L"`` / ``"RGB"``) image.

    16-bit and float grayscale are scaled to ``0..255`` (see :func:`_to_8bit`), not clipped.

    Raises:
        ImageTooLargeError: more than :data:`MAX_PIXELS` pixels ("image too large", with the limit).
        PIL.UnidentifiedImageError, OSError, ValueError, ...: the bytes are not a readable image.
    """
    with _open(data) as img:
        img.load()
        img = ImageOps.exif_transpose(img)
        if img.mode in _WIDE_MODES:
            img = _to_8bit(img)
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        return img.convert(mode)


_QUARTER_TURNS = {5, 6, 7, 8}  # EXIF orientations that swap width and height


def displayed_size(img: Image.Image) -> tuple[int, int]:
    """``(w, h)`` of an opened image as :func:`decode_image` gives it (EXIF orientation applied),
    from its header alone."""
    w, h = img.size
    return (h, w) if img.getexif().get(0x0112) in _QUARTER_TURNS else (w, h)


def oriented_size(data: bytes) -> tuple[int, int]:
    """``(w, h)`` of encoded image bytes as :func:`decode_image` gives them (:func:`displayed_size`)."""
    with _open(data) as img:
        return displayed_size(img)


def scaled_width(size: tuple[int, int], height: int, max_width: int) -> int:
    """Width in ``1..max_width`` of an image of ``size = (w, h)`` resized to ``height``."""
    w, h = size
    return min(max_width, max(1, round(w * height / h)))


def resize_line(img: Image.Image, height: int, max_width: int) -> Image.Image:
    """Resize to ``height`` keeping the aspect ratio (area filter when shrinking, bilinear when
    enlarging); squash to ``max_width`` when wider."""
    w, h = img.size
    new_w = scaled_width(img.size, height, max_width)
    if (new_w, height) == (w, h):
        return img
    shrink = new_w < w and height < h
    return img.resize((new_w, height), Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)


TRIM_PAD = 0.25  # paper kept beside the text by trim_margins, as a share of the line's height


# compare-exchanges of a median-of-9 sorting network (Paeth): after them, element 4 is the median
_MEDIAN9 = ((1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3), (5, 8), (4, 7),
            (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2))


def median3x3(a: np.ndarray) -> np.ndarray:
    """3 x 3 median filter of a 2-D array ``(h, w)``, edges replicated: what Pillow's
    ``ImageFilter.MedianFilter(3)`` gives for an ``L`` image (tested), in a tenth of its time (46
    against 462-474 microseconds for a 280 x 32 line on an AVX-512 Zen 5; docs/ocr_zh.md)."""
    h, w = a.shape
    p = np.pad(a, 1, mode="edge")
    v = [p[i:i + h, j:j + w] for i in range(3) for j in range(3)]  # the 9 neighbours of each pixel
    for i, j in _MEDIAN9:
        v[i], v[j] = np.minimum(v[i], v[j]), np.maximum(v[i], v[j])
    return v[4]


def text_columns(img: Image.Image) -> tuple[int, int]:
    """The columns ``[x0, x1)`` between a line's first and last column of text; ``(0, w)`` when it has none.

    A column holds text when its contrast (its darkest pixel against its lightest, after a 3 x 3
    median filter against noise) stands out from the paper's: by at least 15% of the span from
    the 10th to the 90th percentile of the line's column contrasts, and by 12 gray levels. A line
    whose span is under 40 levels (blank, or text too faint to tell from its paper) has none.
    """
    gray = img if img.mode == "L" else img.convert("L")
    a = median3x3(np.asarray(gray))  # (h, w) uint8
    contrast = a.max(axis=0) - a.min(axis=0)  # (w,): never below 0, so uint8 holds it
    low, high = np.percentile(contrast, [10, 90])
    if high - low < 40:
        return 0, img.width
    text = np.flatnonzero(contrast > low + max(12.0, 0.15 * (high - low)))  # non-empty: the 90th is above
    return int(text[0]), int(text[-1]) + 1


def trim_margins(img: Image.Image, pad: float = TRIM_PAD) -> Image.Image:
    """``img`` without the blank paper beside its text (:func:`text_columns`), keeping ``pad`` x its
    height of it on each side; rows are never cut. It lets a model trained on tightly cropped lines
    read loosely cropped ones (docs/ocr_zh.md, "Or cut the blank paper off")."""
    keep = round(pad * img.height)
    x0, x1 = text_columns(img)
    x0, x1 = max(0, x0 - keep), min(img.width, x1 + keep)
    return img if (x0, x1) == (0, img.width) else img.crop((x0, 0, x1, img.height))


def line_array(img: Image.Image) -> np.ndarray:
    """A resized ``L`` or ``RGB`` line -> float32 ``(C, H, w)`` in ``[-1, 1]``."""
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    x = np.ascontiguousarray(arr.transpose(2, 0, 1)).astype(np.float32)
    return x / np.float32(127.5) - np.float32(1.0)


# -- a batch of lines --------------------------------------------------------------------------

def batch_width(widths: Sequence[int], max_width: int | None = None) -> int:
    """Width to pad a batch of images ``widths`` wide to: the widest rounded up to a multiple of
    :data:`WIDTH_MULTIPLE`, but not past ``max_width`` (so the encoder's columns stay within
    those of the maximum width); never narrower than the widest."""
    widest = max(widths)
    rounded = -(-widest // WIDTH_MULTIPLE) * WIDTH_MULTIPLE
    return max(widest, rounded if max_width is None else min(rounded, max_width))


def pad_lines(lines: Sequence[np.ndarray], width: int) -> np.ndarray:
    """Lines ``(C, H, w_i)`` with ``w_i <= width`` -> ``(B, C, H, width)``, each padded on the
    right with copies of its last column."""
    out = []
    for line in lines:
        missing = width - line.shape[-1]
        if missing < 0:
            raise ValueError(f"image is {line.shape[-1]} columns wide, more than the batch width {width}")
        out.append(np.concatenate([line, np.repeat(line[..., -1:], missing, axis=-1)], axis=-1) if missing else line)
    return np.stack(out)


# -- token ids to text -------------------------------------------------------------------------

def decode_ids(ids: Iterable[int], chars: Sequence[str], eos: int, first: int, unk_id: int,
               unk: str = "\ufffd") -> str:
    """Text of ``ids`` up to the first ``eos``: id ``first + i`` is ``chars[i]``, ``unk_id`` shows as
    ``unk``, the other special ids are dropped."""
    out = []
    for i in ids:
        i = int(i)
        if i == eos:
            break
        if first <= i < first + len(chars):
            out.append(chars[i - first])
        elif i == unk_id:
            out.append(unk)
    return "".join(out)


def ctc_collapse(labels: np.ndarray, length: int, blank: int) -> list[int]:
    """CTC best path ``labels (T,)`` over its first ``length`` columns: repeats collapsed, blanks dropped."""
    labels = labels[:length]
    keep = np.ones(len(labels), dtype=bool)
    keep[1:] = labels[1:] != labels[:-1]
    return [int(t) for t, k in zip(labels, keep) if k and t != blank]


def decode_outputs(meta: dict, outputs: Sequence[np.ndarray]) -> list[tuple[str, float]]:
    """``(text, confidence)`` per line from an exported line model's outputs (its ``meta``: kind,
    charset, special ids). Confidence: the geometric mean of the decoded path's probabilities
    (attention: the tokens up to and including EOS; CTC: every valid column's best label)."""
    chars, eos, first, unk = meta["charset"], meta["eos"], meta["first_char"], meta["unk"]
    rows = []
    if meta["kind"] == "attention":
        tokens, log_probs = outputs  # (B, L) ids, (B, L) their log-probabilities
        for ids, lp in zip(np.asarray(tokens), np.asarray(log_probs)):
            ends = np.flatnonzero(ids == eos)
            n = int(ends[0]) + 1 if len(ends) else len(ids)
            rows.append((decode_ids(ids, chars, eos, first, unk), float(np.exp(lp[:n].astype(np.float64).mean()))))
    elif meta["kind"] == "ctc":
        labels, log_probs, lengths = outputs  # (B, T') best labels, (B, T') their log-probabilities, (B,)
        for ids, lp, n in zip(np.asarray(labels), np.asarray(log_probs), np.asarray(lengths)):
            n = int(n)
            text = decode_ids(ctc_collapse(ids, n, meta["blank"]), chars, eos, first, unk)
            rows.append((text, float(np.exp(lp[:n].astype(np.float64).sum() / max(n, 1)))))
    else:
        raise ValueError(f"a {meta['kind']} model does not read text lines")
    return rows


# -- the exported model ------------------------------------------------------------------------

class LineReader:
    """An exported text-line model in an onnxruntime session.

    Args:
        model: the ``.onnx`` file.
        threads: intra-op threads (None: onnxruntime's default, one per core).
    """

    def __init__(self, model: str | Path, threads: int | None = None):
        import onnxruntime as ort  # here, so that the training code can import this module without it

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in meta:
            raise ValueError(f"{model}: no {METADATA_KEY} metadata; was it written by seq2seq_lab.export?")
        self.meta = json.loads(meta[METADATA_KEY])
        self.kind = self.meta["kind"]
        self.chars = self.meta.get("charset", [])
        self.mode = _MODES[self.meta.get("channels", 1)] if self.kind != "classifier" else None

    def run(self, inputs: np.ndarray, widths: np.ndarray | None = None) -> list[np.ndarray]:
        """The graph's raw outputs for ``inputs`` (``(B, C, H, W)`` lines and ``widths (B,)``
        int64, or ``(B, T, F)`` for a classifier)."""
        feed = {"inputs": np.ascontiguousarray(inputs, dtype=np.float32)}
        if self.kind != "classifier":
            feed["widths"] = np.ascontiguousarray(widths, dtype=np.int64)
        return self.session.run(None, feed)

    def decode(self, inputs: np.ndarray, widths: np.ndarray) -> list[tuple[str, float]]:
        """``(text, confidence)`` of each line of a prepared batch (:meth:`prepare`)."""
        return decode_outputs(self.meta, self.run(inputs, widths))

    def classify(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Classes ``(B,)`` and their probabilities ``(B,)`` of ``inputs (B, T, F)``."""
        (logits,) = self.run(inputs)
        z = logits - logits.max(1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        classes = logits.argmax(1)
        return classes, probs[np.arange(len(classes)), classes]

    def load(self, data: bytes) -> np.ndarray:
        """Encoded image bytes -> the model's line ``(C, H, w)``."""
        img = decode_image(data, self.mode)
        if self.meta.get("trim_margins"):
            img = trim_margins(img)
        return line_array(resize_line(img, self.meta["height"], self.meta["width"]))

    def prepare(self, lines: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Lines ``(C, H, w_i)`` -> a padded batch ``(B, C, H, W)`` and widths ``(B,)``."""
        widths = [line.shape[-1] for line in lines]
        width = self.meta["width"] if self.meta.get("fixed_width") else batch_width(widths, self.meta["width"])
        return pad_lines(lines, width), np.asarray(widths, dtype=np.int64)

    def read(self, images: Iterable[str | Path | bytes], batch_size: int = 32) -> list[tuple[str, float]]:
        """``(text, confidence)`` of each image (a path or encoded bytes), in order."""
        out, chunk = [], []
        for image in images:
            chunk.append(self.load(image if isinstance(image, bytes) else Path(image).read_bytes()))
            if len(chunk) == batch_size:
                out += self.decode(*self.prepare(chunk))
                chunk = []
        if chunk:
            out += self.decode(*self.prepare(chunk))
        return out


def _image_paths(specs: Iterable[str]) -> list[Path]:
    paths = []
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            paths += sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
        else:
            paths.append(p)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """``python runtime.py model.onnx image|directory... [--batch-size N] [--threads N]``."""
    import argparse

    parser = argparse.ArgumentParser(description="Read text-line images with an exported seq2seq-lab model.")
    parser.add_argument("model")
    parser.add_argument("images", nargs="+", help="image files or directories (read recursively, sorted)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        reader = LineReader(args.model, args.threads)
    except Exception as err:  # noqa: BLE001 - a missing or foreign model file: one line, no traceback
        print(f"error: {args.model}: {err}", file=sys.stderr)
        return 1
    bad = 0
    paths = _image_paths(args.images)
    for start in range(0, len(paths), args.batch_size):
        lines, names = [], []
        for path in paths[start : start + args.batch_size]:
            try:
                lines.append(reader.load(path.read_bytes()))
                names.append(path)
            except Exception as err:  # noqa: BLE001 - an unreadable image is counted, not fatal
                bad += 1
                print(f"{path}: cannot read image ({type(err).__name__}: {err})", file=sys.stderr)
        if lines:
            for path, (text, conf) in zip(names, reader.decode(*reader.prepare(lines))):
                print(f"{path}\t{text}\t{conf:.4f}", flush=True)
    if bad:
        print(f"{bad} unreadable image(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
