"""A test split's lines resized to one fixed size, as the classic corpus ships its lines (280 x 32).

    python tools/fixed_size_split.py <list file> <out dir> [width height]

Reads a ``path text`` list file, writes every image resized to ``width x height`` (aspect ratio
not kept: a line of narrow characters is stretched, one of wide ones condensed) under
``<out dir>/images``, and ``<out dir>/test.txt``; copies ``fonts.tsv`` from beside the list when
it is there, so ``eval`` still reports by font. For measuring only.
"""
import shutil
import sys
from pathlib import Path

from PIL import Image

src_list, out = Path(sys.argv[1]), Path(sys.argv[2])
width, height = (int(v) for v in sys.argv[3:5]) if len(sys.argv) > 4 else (280, 32)
root = src_list.parent
(out / "images").mkdir(parents=True, exist_ok=True)
rows = []
for line in src_list.read_text(encoding="utf-8").splitlines():
    if not line.strip():
        continue
    name, _, text = line.partition(" ")
    with Image.open(root / name) as im:
        im.resize((width, height), Image.Resampling.BICUBIC).save(out / "images" / Path(name).name, quality=95)
    rows.append(f"images/{Path(name).name} {text}")
(out / "test.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
if (root / "fonts.tsv").is_file():  # keyed by the list's image paths: images/<name>, as here
    shutil.copy(root / "fonts.tsv", out / "fonts.tsv")
print(f"{len(rows)} lines at {width} x {height}: {out / 'test.txt'}")
