"""Copies of a test list's lines as a looser crop or a softer focus would give them: robustness probes.

    python tools/crop_probes.py <list file> <out dir> [probe ...]

    python tools/crop_probes.py data/scsd_text_heldout_280x32/test.txt data/crop_probes

Each probe writes ``<out dir>/<probe>/test.txt`` and its images (the same relative paths and labels as
the list), read with ``python -m seq2seq_lab.eval ckpt_path=<ckpt> data.test=<out dir>/<probe>/test.txt``.
Blank space is filled with the line's own paper (the median of its border pixels); each image keeps its
size, so a fixed-size model reads the text smaller:

- ``hfill85``: the line squeezed to 85% of its width, left-aligned (blank paper on the right);
- ``hcenter75``: squeezed to 75%, centred;
- ``vpad80`` / ``vpad65``: squeezed to 80% / 65% of its height, centred (blank above and below);
- ``vcrop2``: 2 rows cut from the top and the bottom, the rest stretched back to the height;
- ``blur1``: a gaussian blur of sigma 1 pixel (PIL's, with a kernel that fits it);
- ``up2``: moved up 2 pixels.

Without probe names, all of them. For measuring only: no manifest, never a training corpus.
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter


def paper(image: Image.Image) -> int:
    """The gray level of a grayscale line's border: the median of its outermost rows and columns."""
    a = np.asarray(image)
    return int(np.median(np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])))


def squeezed(image: Image.Image, width_share: float = 1.0, height_share: float = 1.0,
             centred: bool = True) -> Image.Image:
    """``image`` resized to the given shares of its size and pasted on its own paper at its old size."""
    w, h = image.size
    small = image.resize((round(w * width_share), round(h * height_share)), Image.Resampling.BILINEAR)
    canvas = Image.new("L", (w, h), paper(image))
    x = (w - small.width) // 2 if centred else 0
    canvas.paste(small, (x, (h - small.height) // 2))
    return canvas


def cropped(image: Image.Image, rows: int) -> Image.Image:
    w, h = image.size
    return image.crop((0, rows, w, h - rows)).resize((w, h), Image.Resampling.BILINEAR)


def moved_up(image: Image.Image, rows: int) -> Image.Image:
    return image.transform(image.size, Image.Transform.AFFINE, (1, 0, 0, 0, 1, rows), fillcolor=paper(image))


PROBES = {
    "hfill85": lambda im: squeezed(im, width_share=0.85, centred=False),
    "hcenter75": lambda im: squeezed(im, width_share=0.75),
    "vpad80": lambda im: squeezed(im, height_share=0.8),
    "vpad65": lambda im: squeezed(im, height_share=0.65),
    "vcrop2": lambda im: cropped(im, 2),
    "blur1": lambda im: im.filter(ImageFilter.GaussianBlur(1.0)),
    "up2": lambda im: moved_up(im, 2),
}


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 1
    source, out, names = Path(argv[0]), Path(argv[1]), argv[2:] or list(PROBES)
    unknown = sorted(set(names) - set(PROBES))
    if unknown:
        print(f"no probe {', '.join(unknown)}; the probes are: {', '.join(PROBES)}", file=sys.stderr)
        return 1
    if not source.is_file():
        print(f"{source}: no such list file", file=sys.stderr)
        return 1
    lines = [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    for name in names:
        (out / name).mkdir(parents=True, exist_ok=True)
        for number, line in enumerate(lines, 1):
            rel, _, text = line.partition(" ")
            if not text:
                print(f"{source}:{number}: want '<image> <text>', got {line!r}", file=sys.stderr)
                return 1
            target = out / name / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            PROBES[name](Image.open(source.parent / rel).convert("L")).save(target, quality=95)
        (out / name / "test.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{name}: {len(lines)} lines in {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
