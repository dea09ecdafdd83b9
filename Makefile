# Two commands do everything: `make book` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# The stored outputs were made with two threads. nbval compares only the outputs that do not depend
# on the thread count (trained figures are asserted within calibrated bands instead), so any count
# passes: set OMP_NUM_THREADS to run with another. CI runs the notebooks with one.
OMP_NUM_THREADS ?= 2
MKL_NUM_THREADS ?= $(OMP_NUM_THREADS)
export OMP_NUM_THREADS MKL_NUM_THREADS

.PHONY: all book test unit nbval execute lab bench calibrate check-book clean distclean

all: test book

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

## venv: create .venv with the pinned packages and course_lib (editable)
venv: $(STAMP)

## book: build the static book into _build/html, executing every notebook
book: $(STAMP)
	$(BIN)/jupyter-book build . --warningiserror --keep-going --path-output .
	@echo "Open the book: $(CURDIR)/_build/html/index.html"

## test: unit tests, then the stored notebook outputs compared cell by cell (nbval)
test: unit nbval

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests

nbval: $(STAMP)
	$(BIN)/python -m pytest -q --nbval notebooks --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=900

## execute: re-run every lesson top to bottom in a fresh kernel and store its outputs (no progress bars)
execute: $(STAMP)
	COURSE_PROGRESS=0 $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	  --ExecutePreprocessor.timeout=1800 $(or $(LESSONS),notebooks/[0-9][0-9]_*.ipynb)

## lab: open the lessons in JupyterLab from the same .venv
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

## bench: speed goals, printed as ratios against baselines measured in the same run
bench: $(STAMP)
	@for f in $(filter-out benchmarks/calibrate.py,$(wildcard benchmarks/[!_]*.py)); do \
	  echo "== $$f"; $(BIN)/python $$f || exit 1; done

## calibrate: run the trained lessons over seeds and thread counts, then rewrite their bands
## (hours on 2 cores; see benchmarks/calibration.md). SEEDS, THREADS and JOBS override the defaults.
SEEDS ?= 0 1 2 3 4
THREADS ?= 1 2
JOBS ?= 1
calibrate: $(STAMP)
	$(BIN)/python benchmarks/calibrate.py run --lessons 01 02 03 04 --seeds $(SEEDS) --threads $(THREADS) --jobs $(JOBS)
	$(BIN)/python benchmarks/calibrate.py summarise

## check-book: open every page of the built book in headless Chromium, offline (screenshots in _build/screens)
check-book: $(STAMP)
	@test -f _build/html/index.html || $(MAKE) book
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "check-book: Chromium is missing; install it (Debian: sudo apt-get install -y chromium)" >&2; exit 2; fi; }
	$(BIN)/python tests/browser/check_book.py --book . --html _build/html --screens _build/screens

clean:
	rm -rf _build

distclean: clean
	rm -rf $(VENV)
