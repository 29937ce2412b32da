"""Every face of ocr_zh_cpu's fonts cut down to the glyphs of its charset, one file per face and one
directory per family, small enough to carry to a machine without the font packages.

    python tools/offline_gpu_check/subset_fonts.py <out dir> [family ...]

Family names as the experiment writes them (default: its training families, whose styles are also
written to ``<out dir>/styles.txt``: one line per style, its family directories comma-separated, for
``run.sh`` to build ``synth.fonts`` from). Each directory stands in for its family name in
``synth.fonts`` (a directory entry is one family). The faces keep their names, so ``fonts.tsv`` and
the by-font tables read as before. Subsets draw the
same glyphs but not byte-identical images: of 300 real-text lines drawn in UMing/UKai subsets, 288
differed from the full fonts' (some by one column of width).
"""
import os
import re
import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection, TTFont
from omegaconf import OmegaConf

from seq2seq_lab.data.synth.faces import font_names, resolve_faces
from seq2seq_lab.data.synth.text import load_charset

EXPERIMENT = Path(__file__).resolve().parents[2] / "conf" / "experiment" / "ocr_zh_cpu.yaml"


def _folder(family: str) -> str:
    return re.sub(r"\W", "_", family)


def main(out: str, families: list[str]) -> None:
    if not families:
        styles = OmegaConf.to_container(OmegaConf.load(EXPERIMENT).synth.fonts)
        families = font_names(styles)
        os.makedirs(out, exist_ok=True)
        Path(out, "styles.txt").write_text("".join(",".join(_folder(f) for f in font_names([style])) + "\n"
                                                   for style in styles), encoding="utf-8")
    keep = [ord(c) for c in set(load_charset("builtin:char_std_5990")) | {chr(c) for c in range(32, 127)} | {"\u3000"}]
    options = subset.Options(name_IDs=["*"], name_languages=["*"], notdef_outline=True, layout_features=["*"])
    options.drop_tables += ["gasp", "mort", "morx"]  # tables fontTools cannot subset (or read, in one Kouzan font)
    for family in families:
        folder = os.path.join(out, _folder(family))
        os.makedirs(folder, exist_ok=True)
        for face in resolve_faces([family]):
            font = (TTCollection(face.path).fonts[face.index] if face.path.lower().endswith((".ttc", ".otc"))
                    else TTFont(face.path))
            cut = subset.Subsetter(options)
            cut.populate(unicodes=keep)
            cut.subset(font)
            path = os.path.join(folder, re.sub(r"\W", "_", face.name) + (".otf" if "CFF " in font else ".ttf"))
            font.save(path)
            print(f"{family}: {face} -> {path} ({os.path.getsize(path) // 1024} KiB)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
