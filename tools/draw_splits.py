"""Some splits of an experiment's corpus, drawn alone: the same images the whole corpus would hold.

    python tools/draw_splits.py <out dir> <split>[,<split>...] [train overrides...]

    python tools/draw_splits.py data/gen_looks_tests test,test_heldout experiment=ocr_zh_cpu \
        trainer.precision=32-true synth.ascii_twins=null synth.twin_share=null

Composes the ``train`` config with the overrides and draws only the named splits of its ``synth``
block (``val``, ``test``, ``test_heldout``; sample ``i`` of a split is the corpus's sample ``i``,
so its label, face and looks are the ones ``generate_corpus`` would draw), into ``<out dir>/images``,
``<out dir>/<split>.txt`` and ``<out dir>/fonts.tsv``. A test split of a corpus that is not at hand
takes seconds instead of the minutes of all its training lines. One process. For measuring only: no
manifest is written, and ``train`` does not reuse the directory as a corpus.
"""
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

import seq2seq_lab.configs  # noqa: F401  (registers the config resolvers)
from seq2seq_lab.data.synth.corpus import draw_samples, image_name, spec_from_config
from seq2seq_lab.data.synth.drawer import make_drawer

out, wanted = Path(sys.argv[1]), sys.argv[2].split(",")
conf = Path(__file__).resolve().parents[1] / "conf"
with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
    cfg = compose("train", overrides=[*sys.argv[3:], f"synth.out_dir={out}"])
spec = spec_from_config(cfg.synth)
counts = spec.counts()
unknown = sorted(set(wanted) - set(counts))
if unknown:
    sys.exit(f"draw_splits: no split {unknown} in this corpus; it has {sorted(counts)}")
drawer = make_drawer(spec, with_heldout="test_heldout" in wanted)
first_heldout = sum(counts.values()) - counts.get("test_heldout", 0)
(out / "images").mkdir(parents=True, exist_ok=True)
fonts, start = [], 0
for split, n in counts.items():
    if split in wanted:
        rows = draw_samples(drawer, range(start, start + n), first_heldout, out, spec.format, spec.quality)
        (out / f"{split}.txt").write_text("".join(f"{image_name(i, spec.format)} {label}\n" for i, label, _ in rows),
                                          encoding="utf-8")
        fonts += [f"{image_name(i, spec.format)}\t{face}\n" for i, _, face in rows]
        print(f"{split}: {n} lines, samples {start}-{start + n - 1}")
    start += n
(out / "fonts.tsv").write_text("".join(fonts), encoding="utf-8")
