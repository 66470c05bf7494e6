# ev-ingest: every target sets itself up, so a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup check test test-fast test-clock stack image lint docs demo demo-open demo-big lock bench clean system-packages bench-tools

setup: $(STAMP) system-packages

# Debian packages the suite uses: Chromium drives the HTML report test (a registry install, no
# browser download); faketime runs the pure client/simulator modules a year ahead. As root they
# are installed here; elsewhere the command is printed.
SYSTEM_PACKAGES := chromium faketime
system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "note: the suite needs:$$missing (sudo apt-get install$$missing)"; fi; fi

# uv is bootstrapped with pip (pinned), then installs the exact lock in a few seconds.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.8
	@echo "setup: installing the $$(grep -c '^[a-z0-9].*==' requirements.lock) pinned packages of requirements.lock into $(VENV) (a few minutes the first time; uv reports each phase)"
	$(BIN)/uv pip sync -p $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet -p $(BIN)/python --no-deps -e .
	touch $(STAMP)

# requirements.lock: everything for development, tests and the demo (what `make setup` installs).
# requirements-runtime.lock: what a production Airflow image needs (docs/deploy.md), nothing more:
# no test tools, notebook packages or embedded SeaweedFS.
lock:
	$(BIN)/uv pip compile --quiet pyproject.toml requirements-dev.txt --extra airflow --extra celery --extra notebooks \
	  --extra embedded --python-version 3.11 -o requirements.lock
	$(BIN)/uv pip compile --quiet pyproject.toml --extra airflow --extra celery -c requirements.lock \
	  --python-version 3.11 -o requirements-runtime.lock

# ruff, and the layering rules (dags -> pipelines -> ev_ingest), checked on every import.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_layering.py

# Two workers (pytest-xdist), each test module whole on one (its fixtures and order kept);
# every worker has its own Airflow home, database and signing key (tests/conftest.py).
XDIST := -n 2 --dist loadfile --no-loadscope-reorder

test: setup lint docs
	$(BIN)/python -m pytest -q $(XDIST) -m "not stack"
	$(MAKE) --no-print-directory test-clock

# Nothing may depend on today's date or the hour of day. The date-sensitive modules run again
# with the product's clock a year ahead and at 00:30 UTC (EV_CLOCK_SHIFT_DAYS and
# EV_CLOCK_SHIFT_SECONDS: retention, "has the interval ended", audit dates and the tests'
# simulator clock all move together; the static SeaweedFS binary keeps the real time, as a
# real store would). The modules without a store also run under libfaketime, which moves the
# whole process's clock, there to 01:59 UTC a year ahead (a suite once failed only before 02:00).
CLOCK_MODULES := tests/test_pipeline_steps.py tests/test_report.py tests/test_datasets.py tests/test_archive_identity.py \
  tests/test_night_selection.py
FAKETIME_MODULES := tests/test_client.py tests/test_simulator_api.py tests/test_client_edges.py tests/test_cli.py
# The documentation site (mkdocs.yml, docs/): strict, so a broken link or anchor fails the build
# (not --quiet: it hides the warnings that strict mode counts, and the build then passes).
docs: setup
	$(BIN)/mkdocs build --strict

test-clock: setup
	EV_CLOCK_SHIFT_DAYS=365 EV_CLOCK_SHIFT_SECONDS=$$($(BIN)/python -m ev_ingest.clock --seconds-until 00:30) \
	  $(BIN)/python -m pytest -q -p no:cacheprovider $(XDIST) $(CLOCK_MODULES)
	TZ=UTC faketime "$$(date -u -d '+365 days' +%F) 01:59:00" $(BIN)/python -m pytest -q -p no:cacheprovider $(XDIST) $(FAKETIME_MODULES)

test-fast: setup
	$(BIN)/python -m pytest -q $(XDIST) -m "not slow and not chaos and not stack"

# The inner loop (issue 27): ruff, the layering rules and every test not marked slow, chaos,
# stack or airflow (no Airflow DAG runs, no fault-injection, no long video decodes), on two
# workers: about 2 minutes on 2 cores. `make test` (CI's command) still runs everything.
check: setup lint
	$(BIN)/python -m pytest -q -p no:cacheprovider $(XDIST) -m "not slow and not chaos and not stack and not airflow"

# The distributed mode, tested: a CeleryExecutor deployment (Debian's postgresql and
# redis-server, two Celery workers) runs a scheduled night and stops (tests/test_celery_stack.py).
STACK_PACKAGES := postgresql redis-server
stack: setup
	@command -v redis-server >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(STACK_PACKAGES); \
	  else echo "note: make stack needs: sudo apt-get install $(STACK_PACKAGES)"; exit 1; fi; }
	$(BIN)/python -m pytest -q -p no:cacheprovider -m stack

demo: setup
	$(BIN)/python dags/ev_demo.py

# Reopen the last demo's archive (its S3 store, on the port .demo/ev.yaml names) to try the CLI on it.
demo-open: setup
	$(BIN)/python dags/ev_demo.py --open

demo-big: setup
	$(BIN)/python dags/ev_demo.py --cameras 16

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

# The production image (deploy/Dockerfile), built and smoke-tested where a Docker engine runs.
# Without one, tests/test_runtime_image.py checks the same lock in a fresh virtualenv.
image:
	@docker info >/dev/null 2>&1 || { echo "no Docker engine here: see docs/deploy.md (the runtime lock is tested by make test)"; exit 1; }
	docker build -f deploy/Dockerfile -t ev-ingest-airflow .
	docker run --rm ev-ingest-airflow airflow providers list | grep -q ev-ingest
	docker run --rm ev-ingest-airflow python -c "import sys; sys.path.insert(0, '/opt/airflow/dags'); \
	  import ev_nightly_archive, ev_motion_summary, ev_thumbnails, ev_retention, pipelines.nightly.run"

clean:
	rm -rf $(VENV) .airflow-test-home .demo .cache
