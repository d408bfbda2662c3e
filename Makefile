# ZeroCloud build and test harness. `make test` is what CI runs (.ci/run).

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# What `make run` needs: the runtime requirements only (no linters, no browser driver).
RUNTIME_STAMP := $(VENV)/.runtime

PACKAGES := libs/zc_common services/api services/ingestor services/scheduler \
            services/notifier services/reaper cli
PYPROJECTS := $(addsuffix /pyproject.toml,$(PACKAGES))

# Only these flags keep index URLs, find-links and hosts out of the compiled files.
PIP_COMPILE := $(BIN)/pip-compile --quiet --resolver=backtracking --strip-extras --no-header \
               --no-emit-index-url --no-emit-find-links --no-emit-trusted-host --no-emit-options

.PHONY: venv services tools lint test test-reliability run bench requirements clean

# Programs the tests drive, from the distribution's packages (never a downloaded browser):
# Chromium for the web UI, docker-compose to check the compose file, kubectl for kustomize.
SYSTEM_TOOLS := chromium:chromium docker-compose:docker-compose kubectl:kubectl

venv: $(STAMP)

# Rebuilt only when a requirement or pyproject file changes. dev.txt pins all of
# runtime.txt too, so a dev install also counts as the runtime one.
$(STAMP): requirements/dev.txt requirements/runtime.txt $(PYPROJECTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements/dev.txt
	$(BIN)/pip install --quiet --no-deps $(addprefix -e ,$(PACKAGES))
	touch $@ $(RUNTIME_STAMP)

# The product alone: on a venv that already has the dev requirements this adds nothing.
$(RUNTIME_STAMP): requirements/runtime.txt $(PYPROJECTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements/runtime.txt
	$(BIN)/pip install --quiet --no-deps $(addprefix -e ,$(PACKAGES))
	touch $@

services:
	scripts/ensure-services.sh

tools:
	scripts/ensure-tools.sh $(SYSTEM_TOOLS)

# mypy: every package, the migrations' revision files excluded ([tool.mypy] in pyproject.toml).
lint: venv
	$(BIN)/ruff check libs services cli tests bench
	$(BIN)/mypy --strict

# The suite on TEST_WORKERS processes (pytest-xdist; each has its own database and each
# test its own exchange, so they are independent), a file's tests on one worker; then
# what stops a shared server (the broker restart), alone. TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 3
# The fault suite's short case runs here too; the whole of it is `make test-reliability`.
test: venv services tools lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --durations=15 -m "not serial and (not reliability or reliability_short)"
	$(BIN)/pytest -m serial

# The fault suite (tests/reliability): ZeroCloud's five processes under steady load, one
# fault per case (kill -9 of each service, replicas, AWS failing, SMTP down), then every
# invariant read from the database, moto, the mail sink and the dead letters.
test-reliability: venv services
	$(BIN)/pytest -n $(TEST_WORKERS) -m reliability tests/reliability

# The sandbox. Options pass through, e.g. make run SANDBOX_ARGS="--port 8080 --data-dir /tmp/zc"
# (or set ZC_SANDBOX_PORT, ZC_SANDBOX_MOTO_PORT, ZC_SANDBOX_DIR).
SANDBOX_ARGS ?=
run: $(RUNTIME_STAMP)
	$(BIN)/zerocloud-cli sandbox run $(SANDBOX_ARGS)

# The side-by-side bench (bench/side_by_side.py; not part of `make test`): ZeroCloud's
# services as processes beside Cloud Custodian, which runs from its own virtualenv (it
# pins its own boto3), on one call-counting moto server. Writes bench/results/.
# Options pass through, e.g. make bench BENCH_ARGS="--sizes 1000 --runs 1".
C7N_VENV    := bench/.venv-c7n
BENCH_STAMP := $(VENV)/.bench
BENCH_ARGS  ?=
$(C7N_VENV)/.installed: requirements/c7n.txt
	test -x $(C7N_VENV)/bin/python || $(PYTHON) -m venv $(C7N_VENV)
	$(C7N_VENV)/bin/pip install --quiet -r requirements/c7n.txt
	touch $@

$(BENCH_STAMP): $(STAMP) requirements/bench.txt
	$(BIN)/pip install --quiet -r requirements/bench.txt
	touch $@

bench: $(BENCH_STAMP) $(C7N_VENV)/.installed services
	$(BIN)/python bench/side_by_side.py --custodian $(C7N_VENV)/bin/custodian $(BENCH_ARGS)

# Recompile the pinned files from the .in files (needs only pip-tools).
requirements:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/pip-compile || $(BIN)/pip install --quiet pip-tools
	$(PIP_COMPILE) --output-file requirements/runtime.txt requirements/runtime.in
	$(PIP_COMPILE) --output-file requirements/dev.txt requirements/dev.in
	$(PIP_COMPILE) --output-file requirements/bench.txt requirements/bench.in
	$(PIP_COMPILE) --output-file requirements/c7n.txt requirements/c7n.in
	! grep -nE 'https?://|^ *--(index-url|extra-index-url|find-links|trusted-host)' requirements/*.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
