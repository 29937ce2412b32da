"""An eval's errors by how far each line's ink stands out from its paper.

    python tools/contrast_bins.py <eval run>/test_lines.tsv [<more test_lines.tsv> ...]

Reads the ``image``, ``edits`` and ``reference`` columns that ``eval`` writes and measures each
image's ink contrast: the larger of ``median - 2nd percentile`` and ``98th percentile - median`` of
its gray levels after a 3 x 3 Gaussian blur (sigma 1), which smooths the paper's grain away but not
the strokes. Prints, per contrast bin, the lines, their CER, line accuracy and the lines with 6 or
more edits. The generator's ``look.contrast`` is the ink's distance from the paper before texture,
blur, noise and JPEG; this measure is what is left of it in the image.
"""
import csv
import sys

import cv2
import numpy as np

BINS = (0, 20, 30, 40, 60, 90, 256)


def ink_contrast(path: str) -> float:
    """Gray levels between the paper (the median) and the ink's tail, dark or light."""
    gray = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if gray is None:
        sys.exit(f"contrast_bins: cannot read image {path}")
    blurred = cv2.GaussianBlur(gray.astype(np.float32), (3, 3), 1.0)
    lo, median, hi = np.percentile(blurred, [2, 50, 98])
    return float(max(median - lo, hi - median))


for tsv in sys.argv[1:]:
    with open(tsv, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    contrast = np.array([ink_contrast(r["image"]) for r in rows])
    edits = np.array([int(r["edits"]) for r in rows])
    chars = np.array([len(r["reference"]) for r in rows])
    print(f"{tsv}: {len(rows)} lines, CER {edits.sum() / chars.sum():.4f}")
    print("| ink contrast | lines | CER | line accuracy | lines with 6+ edits |")
    print("|---|---|---|---|---|")
    for lo, hi in zip(BINS, BINS[1:]):
        k = (contrast >= lo) & (contrast < hi)
        if k.any():
            print(f"| {lo}-{hi - 1} | {k.sum()} | {edits[k].sum() / chars[k].sum():.4f} | "
                  f"{(edits[k] == 0).mean():.3f} | {(edits[k] >= 6).sum()} |")
