# clip_repro: `make reproduce` (toy scale, every notebook, the site) and `make test` (what CI runs).
# Both create .venv with the pinned dependencies when it is missing, and are quick when it is already set up.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SCALE ?= toy
RUN ?= runs/$(SCALE)
export CLIP_REPRO_QUIET ?=
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# $(call no_leftovers,COMMAND): run COMMAND with TMPDIR set to a fresh folder, and fail when anything but torch's
# inductor cache is left in it: a demo folder a cell forgets stays on the machine after every run, until its disk is full.
define no_leftovers
@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; TMPDIR="$$tmp" $(1); \
	left=$$(ls -A "$$tmp" | grep -v '^torchinductor_' || true); \
	if [ -n "$$left" ]; then echo "left in the temporary folder (clean up what a cell or test creates):" $$left >&2; exit 1; fi
endef

.PHONY: reproduce test run docs docs-check readme export clean-nbs check-export check-clean nbtest smoke pytest bench venv chromium

reproduce: $(VENV)/.runtime ## toy scale: every notebook, then the site
	$(BIN)/clip-repro run --scale $(SCALE) --out $(RUN)
	$(MAKE) --no-print-directory docs RUN=$(RUN)

test: $(VENV)/.test chromium check-export check-clean nbtest smoke pytest ## everything CI runs
	@echo "make test: all checks passed"

venv: $(VENV)/.test

$(VENV)/.runtime: requirements.txt setup.py settings.ini
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	@touch $@

$(VENV)/.test: $(VENV)/.runtime requirements-test.txt
	$(BIN)/pip install -q -r requirements-test.txt
	@touch $@

chromium: ## headless Chromium for the site's browser test (Debian package; installed when missing and run as root)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Chromium is missing: sudo apt-get install chromium" >&2; exit 1; fi; }

check-export: $(VENV)/.runtime ## the library is what the notebooks export
	$(BIN)/nbdev_export
	@if [ -n "$$(git status --porcelain -- clip_repro)" ]; then git status --porcelain -- clip_repro; \
	  echo "nbdev_export changed clip_repro/: export the notebooks and commit both" >&2; exit 1; fi

check-clean: $(VENV)/.runtime ## notebooks are clean (nbdev_clean leaves no diff; the papermill tag survives)
	$(BIN)/nbdev_clean
	@if [ -n "$$(git status --porcelain -- nbs)" ]; then git status --porcelain -- nbs; \
	  echo "nbdev_clean changed nbs/: run nbdev_clean and commit" >&2; exit 1; fi

nbtest: $(VENV)/.runtime ## every notebook at its smoke defaults; fails if one leaves files in the temporary folder
	$(call no_leftovers,CLIP_REPRO_QUIET=1 $(BIN)/nbdev_test --n_workers 2 --timing)

smoke: $(VENV)/.runtime ## the runner over every notebook at smoke scale; same check on the temporary folder
	$(call no_leftovers,CLIP_REPRO_QUIET=1 $(BIN)/clip-repro run --scale smoke --out runs/smoke --no-progress)

pytest: $(VENV)/.test ## tests/ (equivalence, faults, runner, site in Chromium); pytest's tmp_path folders are removed after, and nothing else may be left
	$(call no_leftovers,CLIP_REPRO_QUIET=1 $(BIN)/python -m pytest tests -q -p no:cacheprovider --basetemp="$$tmp/pytest"; rm -rf "$$tmp/pytest")

run: $(VENV)/.runtime
	$(BIN)/clip-repro run --scale $(SCALE) --out $(RUN)

docs: $(VENV)/.runtime ## the site: Quarto where installed, else the nbconvert fallback
	$(BIN)/python -m clip_repro.site build --run $(RUN) --out _site

docs-check: chromium ## open the built site in headless Chromium
	$(BIN)/python -m clip_repro.site check --site _site --screenshot _site/screenshot.png

readme: $(VENV)/.runtime ## regenerate README.md from nbs/index.ipynb (no Quarto needed)
	$(BIN)/python -m clip_repro.site readme

bench: $(VENV)/.test ## benchmarks against peer implementations
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b; done
