# Set-up and entry points. Every target builds .venv from nothing when it is missing.
#
#   make train ARGS="experiment=mnist_simple"   train (Hydra overrides in ARGS)
#   make test                                   the test suite (what CI runs)
#
# setup also installs a Chinese font for the synthetic OCR corpus (see fonts, below).
#
# TORCH picks the PyTorch requirement. The default, torch==2.13.0, resolves to a
# small CPU wheel on the project's CI machines; on a GPU machine use
# `make TORCH=torch` (or any CUDA build) to get CUDA kernels.

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
ARGS   ?=
PYTEST_ARGS ?=

BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup train eval bench test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP) fonts

train: setup
	$(BIN)/python -m seq2seq_lab.train $(ARGS)

eval: setup
	$(BIN)/python -m seq2seq_lab.eval $(ARGS)

bench: setup
	$(BIN)/python -m seq2seq_lab.bench $(ARGS)

# pytest-xdist: one worker per core (at most 4), each with one torch thread (tests/conftest.py)
test: setup
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) outputs multirun

# Chinese fonts for the synthetic text lines (python -m seq2seq_lab.synth): Hei (WenQuanYi, Noto Sans
# CJK in 7 weights with -extra, Smiley Sans), Song (Noto Serif CJK in 7 weights, AR PL SungtiL), Kai
# (AR PL KaitiM, LXGW WenKai), FangSong (cwTeX), brush (Kouzan, Aoyagi Kouzan), and the held-out
# family (AR PL UMing, UKai).
# As root with apt-get it installs those missing; otherwise it only says what to install (and
# exits 0), so set-up can depend on it. An apt-get failure does not fail set-up (CJK tests skip).
FONT_PACKAGES = fonts-wqy-microhei fonts-wqy-zenhei fonts-noto-cjk fonts-noto-cjk-extra fonts-arphic-gbsn00lp fonts-arphic-gkai00mp \
	fonts-lxgw-wenkai fonts-cwtex-fs fonts-kouzan-mouhitsu fonts-aoyagi-kouzan-t fonts-smiley-sans \
	fonts-arphic-uming fonts-arphic-ukai
.PHONY: fonts
fonts:
	@missing="$$(for p in $(FONT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done)"; \
	if [ -z "$$missing" ]; then \
		echo "fonts: the CJK fonts are installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			fontconfig $$missing; } || echo "fonts: apt-get failed; CJK rendering will be unavailable"; \
	else \
		echo "fonts: missing $$missing; as root install them:"; \
		echo "  apt-get install --no-install-recommends fontconfig $$missing"; \
	fi
