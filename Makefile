# ev-ingest: every target sets itself up, so a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test test-fast lint demo demo-big lock bench clean browser bench-tools

setup: $(STAMP) browser

# The HTML report test drives a headless Chromium: Debian's package (a registry install,
# no browser download). As root it is installed here; elsewhere the command is printed.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	  else echo "note: the report test needs Chromium: sudo apt-get install chromium"; fi; }

# uv is bootstrapped with pip (pinned), then installs the exact lock in a few seconds.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip sync --quiet -p $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet -p $(BIN)/python --no-deps -e .
	touch $(STAMP)

lock:
	$(BIN)/uv pip compile --quiet pyproject.toml requirements-dev.txt --extra airflow --extra notebooks \
	  --python-version 3.11 -o requirements.lock

lint: setup
	$(BIN)/ruff check .

test: setup lint
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not chaos"

demo: setup
	$(BIN)/python -m pipelines.demo

demo-big: setup
	$(BIN)/python -m pipelines.demo --cameras 16

# Benchmarks are run on purpose, never by `make test`; each prints same-run ratios.
# The motion benchmark's reference is `ffmpeg -threads 2 -f null` (Debian's ffmpeg; without
# it, PyAV's two-thread decode stands in) and the download benchmark compares with curl.
bench-tools:
	@command -v ffmpeg >/dev/null 2>&1 && command -v curl >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg curl; \
	  else echo "note: the benchmarks want ffmpeg and curl: sudo apt-get install ffmpeg curl"; fi; }

bench: setup bench-tools
	$(BIN)/python benchmarks/motion_throughput.py
	$(BIN)/python benchmarks/client_download.py
	$(BIN)/python benchmarks/store_upload.py
	$(BIN)/python benchmarks/simulator_generation.py
	$(BIN)/python benchmarks/nightly_site.py --cameras 1 2 4 --resolution 320x240 --fps 5 --hours 12

clean:
	rm -rf $(VENV) .airflow-test-home .demo .cache
