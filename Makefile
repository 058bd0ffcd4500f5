# GhostProbe Studio. Quick start: `make run` (dashboard) and `make test` (every test).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test test-fast bench chromium clean worker-env

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all,dev]'
	touch $(STAMP)

# Browser tests drive Debian's Chromium through Playwright (Playwright cannot download its own here).
chromium:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing Chromium from Debian's packages for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "Chromium not found at $(CHROMIUM) and cannot install it (not root): browser tests will be skipped"; fi

run: $(STAMP)
	$(VENV)/bin/ghostprobe serve

test: $(STAMP) chromium
	$(PY) -m pytest -q -p no:cacheprovider

# The inner loop: everything but the browser tests and the tests marked slow (under a minute on two cores).
test-fast: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m "not browser and not slow"

# Every bench/bench_*.py: one JSON line per figure with its target and passed, a wall time per bench and a
# summary line (under 10 minutes on two cores). BENCH_ARGS="--full" runs the long versions; names pick benches.
bench: $(STAMP) chromium
	$(PY) bench/run.py $(BENCH_ARGS)

# The VideoLLaMA2 GPU worker's own environment (official package, transformers 4.40), cached by a stamp.
# VIDEOLLAMA2_SRC: a VideoLLaMA2 clone or a pip requirement (git+https://...); WORKER_TORCH: the torch build.
WORKER_VENV     ?= .venv-worker
VIDEOLLAMA2_SRC ?= ../shared/vendor/VideoLLaMA2
worker-env:
	$(PYTHON) engines/llm/worker/setup_env.py --venv $(WORKER_VENV) --videollama2 $(VIDEOLLAMA2_SRC)

clean:
	rm -rf $(VENV) .pytest_cache
