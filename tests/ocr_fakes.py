"""Tiny text-line corpora drawn with Pillow, in the list-file layout the OCR data module reads."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont


def write_text_lines(root: Path, charset: str = "abcde", length: int = 3,
                     counts: dict[str, int] | None = None, size: tuple[int, int] = (96, 32), seed: int = 0) -> Path:
    """Write ``root/{images/, train.txt, val.txt, test.txt, charset.txt}``.

    Each split gets ``counts[split]`` (default 8) images of random ``length``-character
    labels over ``charset``, black text on light grey. Returns ``root``.
    """
    counts = counts or {"train": 8, "val": 8, "test": 8}
    rng = random.Random(seed)
    font = ImageFont.load_default(size=size[1] * 5 // 8)
    (root / "images").mkdir(parents=True, exist_ok=True)
    for split, n in counts.items():
        rows = []
        for i in range(n):
            label = "".join(rng.choice(charset) for _ in range(length))
            image = Image.new("RGB", size, (225, 225, 220))
            ImageDraw.Draw(image).text((4, size[1] // 8), label, fill=(20, 20, 20), font=font)
            name = f"images/{split}_{i:03d}.png"
            image.save(root / name)
            rows.append(f"{name} {label}\n")
        (root / f"{split}.txt").write_text("".join(rows), encoding="utf-8")
    (root / "charset.txt").write_text("".join(c + "\n" for c in charset), encoding="utf-8")
    return root


CJK = "的一是了我不人在他有这个上们来到时大地为子中你说生国年着就那和要她出也得里后自以会"  # common characters


def installed_cjk_faces() -> list:
    """The installed font faces that cover :data:`CJK` (``make fonts`` installs them); [] when none."""
    from seq2seq_lab.data.synth.faces import coverage, resolve_faces
    from seq2seq_lab.data.synth.fonts import NoFontError

    try:
        faces = resolve_faces([])
    except NoFontError:
        return []
    return [f for f in faces if set(CJK) <= coverage(f)]
