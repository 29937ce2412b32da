"""CER by how much resizing to a fixed size stretched each line, at that size and at natural width.

    python tools/stretch_buckets.py <list file> <resized predictions.tsv> <natural predictions.tsv> [width height]

``<list file>`` is a ``path text`` test split at natural width; the two ``predictions.tsv`` come
from ``python -m seq2seq_lab.predict`` on that split resized by ``tools/fixed_size_split.py``
and on the split itself. A line's stretch is the fixed size's aspect ratio over its own
(``(width / height) / (w / h)``): above 1 the resize widened its glyphs. Lines are matched by
file name. For measuring only.
"""
import csv
import sys
from pathlib import Path

from PIL import Image
from torchmetrics.functional.text import char_error_rate

BUCKETS = [(0.0, 0.9), (0.9, 1.1), (1.1, 1.3), (1.3, 1.6), (1.6, float("inf"))]


def read_predictions(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8", newline="") as f:
        return {Path(r["path"]).name: r["text"] for r in csv.DictReader(f, delimiter="\t")}


src_list = Path(sys.argv[1])
resized, natural = read_predictions(sys.argv[2]), read_predictions(sys.argv[3])
width, height = (int(v) for v in sys.argv[4:6]) if len(sys.argv) > 5 else (280, 32)
rows: dict[tuple[float, float], list[tuple[str, str, str]]] = {b: [] for b in BUCKETS}
for line in src_list.read_text(encoding="utf-8").splitlines():
    if not line.strip():
        continue
    name, _, text = line.partition(" ")
    with Image.open(src_list.parent / name) as im:
        stretch = (width / height) / (im.width / im.height)
    key = Path(name).name
    bucket = next(b for b in BUCKETS if b[0] <= stretch < b[1])
    rows[bucket].append((text, resized[key], natural[key]))
print("stretch\tlines\tCER resized\tCER natural")
for (lo, hi), v in rows.items():
    if v:
        refs = [t for t, _, _ in v]
        cer_resized = char_error_rate([p for _, p, _ in v], refs).item()
        cer_natural = char_error_rate([p for _, _, p in v], refs).item()
        print(f"{lo:g}-{hi:g}\t{len(v)}\t{cer_resized:.3f}\t{cer_natural:.3f}")
