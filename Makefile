# The two commands: `make run` (demo service on embedded defaults) and `make test` (the suite).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install install-bench run reset test lint format audit bench bench-full chaos cluster fuzz

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required: set PYTHON=/path/to/python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

# `make run PORT=9000 HOST=0.0.0.0`: 127.0.0.1:8000 unless given. PORT from the command line or
# the environment (as `make cluster`'s, whose own default, 8080, is the file's PORT below); HOST
# from the command line only, as tcsh exports HOST as the machine's name.
RUN_PORT := $(if $(filter command line environment,$(origin PORT)),$(PORT),8000)
RUN_HOST := $(if $(filter command line,$(origin HOST)),$(HOST),127.0.0.1)
# The address to open: loopback for a wildcard bind, brackets around an IPv6 address.
RUN_URL_HOST := $(if $(filter 0.0.0.0,$(RUN_HOST)),127.0.0.1,$(if $(filter ::,$(RUN_HOST)),[::1],$(if $(findstring :,$(RUN_HOST)),[$(RUN_HOST)],$(RUN_HOST))))
RUN_URL := http://$(RUN_URL_HOST):$(RUN_PORT)

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py seed_demo
	@echo
	@echo "TripSage Realtime on $(RUN_URL)/ (admin: /admin/, schema: /api/schema/)"
	@echo "Edit trip 1 together: $(RUN_URL)/trips/1/edit (alice, bob or carol; password tripsage-demo)"
	@echo "Get a token:  curl -s -X POST -H 'Content-Type: application/json' \\"
	@echo "  -d '{\"username\": \"alice\", \"password\": \"tripsage-demo\"}' $(RUN_URL)/api/auth/token/"
	@echo "Then open ws://$(RUN_URL_HOST):$(RUN_PORT)/ws/trips/1/ and send {\"token\": \"<access>\"} first."
	$(if $(filter 127.0.0.1 localhost ::1,$(RUN_HOST)),,@echo "From another machine: list the name it uses for this one, e.g. make run HOST=$(RUN_HOST) ALLOWED_HOSTS=127.0.0.1,192.0.2.10")
	@echo
	$(BIN)/daphne -b $(RUN_HOST) -p $(RUN_PORT) tripsage.asgi:application

# What `make run` creates, so that the next one starts over: the demo database (settings'
# SQLite file; with DATABASE_URL set the data is in that database, which this leaves alone) and
# the collected static files.
DEMO_DB := db.sqlite3
reset:
	@if [ -n "$$DATABASE_URL" ]; then echo "DATABASE_URL is set: make run used that database, not $(DEMO_DB); drop it yourself (make reset deletes only the SQLite demo files)." >&2; exit 1; fi
	rm -f $(DEMO_DB) $(DEMO_DB)-journal $(DEMO_DB)-wal $(DEMO_DB)-shm
	rm -rf staticfiles
	@echo "Removed the demo database and static files: the next make run migrates and seeds anew."

# The deployment's topology on loopback (docs/deployment.md): nginx on PORT in front of N daphne
# processes, Redis with a replica and three Sentinels, PostgreSQL when it answers (else SQLite).
# Prints the URL; Ctrl-C stops everything.
N ?= 3
PORT ?= 8080
cluster: install
	$(BIN)/python -m deploy.cluster --processes $(N) --port $(PORT) $(ARGS)

# COVERAGE=1 (CI): the same run, measured in every Python process it starts, the daphne servers
# included ([tool.coverage] in pyproject.toml), then one report. The whole suite fails under the
# floor (fail_under); a part of it (ARGS) only reports.
test: install
ifeq ($(COVERAGE),1)
	rm -f .coverage .coverage.*
	COVERAGE_PROCESS_START=$(CURDIR)/pyproject.toml $(BIN)/python scripts/run_tests.py $(ARGS)
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report $(if $(ARGS),--fail-under=0)
	@echo "Coverage: $$($(BIN)/coverage report --format=total --precision=2 --fail-under=0)% of the service packages' statements and branches"
else
	$(BIN)/python scripts/run_tests.py $(ARGS)
endif

$(VENV)/.installed-bench: $(STAMP) requirements-bench.txt
	$(BIN)/python -m pip install --quiet -r requirements-bench.txt
	touch $(VENV)/.installed-bench

install-bench: $(VENV)/.installed-bench

# Benchmarks against a raw ASGI app and a plain Channels app (needs Redis; PostgreSQL if it
# answers on 127.0.0.1:5432, else SQLite). Short mode: under 3 minutes. Full: docs/performance.md.
bench: install-bench
	$(BIN)/python bench/harness.py $(ARGS)

bench-full: install-bench
	$(BIN)/python bench/harness.py --full $(ARGS)

# Fault runs (docs/reliability.md, docs/deployment.md): tests/chaos and the Redis failover on
# the local topology under each timer profile (production: the defaults), RUNS times, recording
# how long each fault took to converge; then the table.
# About 6 minutes a run with production timers, 2 with the suite's short ones.
RUNS ?= 2
PROFILES ?= production short
chaos: install
	mkdir -p bench/results
	rm -f bench/results/chaos.jsonl
	for profile in $(PROFILES); do for run in $$(seq $(RUNS)); do \
		CHAOS_PROFILE=$$profile CHAOS_REPORT=$(CURDIR)/bench/results/chaos.jsonl \
		$(BIN)/python scripts/run_tests.py tests/chaos tests/deploy/test_failover.py -q $(ARGS) \
		|| exit 1; done; done
	$(BIN)/python bench/chaos_report.py bench/results/chaos.jsonl

# The fuzz tests' long form: 20,000 socket frames and 50 requests per REST operation and mode,
# where the suite sends 2,400 and 5 (docs/checks.md). REST_FUZZ_EXAMPLES and FUZZ_FRAMES override.
REST_FUZZ_EXAMPLES ?= 50
FUZZ_FRAMES ?= 20000
fuzz: install
	REST_FUZZ_EXAMPLES=$(REST_FUZZ_EXAMPLES) FUZZ_FRAMES=$(FUZZ_FRAMES) \
		$(BIN)/python scripts/run_tests.py tests/test_rest_fuzz.py tests/realtime/test_fuzz.py -q -s $(ARGS)

# ruff, then mypy on the service packages ([tool.mypy] in pyproject.toml; docs/checks.md).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Known advisories in the pinned dependencies (docs/audit.md): pip-audit and PyPI's JSON for the
# requirements files, npm audit for clients/js/package-lock.json, against audit-allow.toml.
# Exit 0 clean, 1 advisories not written down (or stale allowances), 2 an unreadable allow-list,
# 3 part not audited (a service did not answer); ARGS=--not-audited-ok (CI) turns 3 into 0.
audit: install
	$(BIN)/python scripts/audit.py $(ARGS)

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
