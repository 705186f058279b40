# Two commands on a fresh machine (as root):
#   make lab    build or reuse the artifacts, boot the lab, converge the full stack
#   make test   the whole test suite (unit, lab end-to-end, smoke)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: lab test unit lab-up lab-down converge status bench bench-alerting clean

# Rebuilt from scratch when the dependencies or these steps change: a venv made
# before a step was fixed would keep what the old step left behind.
$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv --clear $(VENV)
	# grafana-client brings urllib3-future, which would take over the `urllib3` import
	# name (and mangles some request headers); keep the two apart. A venv installed
	# without this keeps urllib3-future's .pth, which copies it over `urllib3` at start.
	URLLIB3_NO_OVERRIDE=1 $(BIN)/pip install --quiet --no-binary urllib3-future -e ".[test,lab]"
	touch $@

lab-up: $(BIN)/.installed
	$(BIN)/python -m lab up

converge: $(BIN)/.installed
	$(BIN)/pyinfra -y inventory/lab.py deploy.py

lab: lab-up converge
	$(BIN)/python -m lab status

# The suite converges freshly booted hosts itself, so it starts from a clean lab.
# The unit tests need no lab host (only the mirror's binaries, there once the lab is up) and the
# lab's drills spend most of their time waiting on alert timers: the two run side by side, the
# unit run in its own session and temporary directory, its report printed after the lab's.
UNIT_LOG := .unit-tests.log
test: $(BIN)/.installed
	$(BIN)/python -m lab down
	$(BIN)/python -m lab up
	$(BIN)/pytest -p no:cacheprovider --basetemp=/tmp/sentinel-unit-tests --durations=10 tests/unit >$(UNIT_LOG) 2>&1 & unit=$$!; \
	$(BIN)/pytest --durations=30 tests/e2e tests/smoke; lab=$$?; \
	wait $$unit; unit_status=$$?; \
	echo "=== unit tests (run beside the lab's) ==="; cat $(UNIT_LOG); \
	echo "lab tests exit $$lab, unit tests exit $$unit_status"; \
	test $$lab -eq 0 && test $$unit_status -eq 0

unit: $(BIN)/.installed
	$(BIN)/pytest tests/unit

status: $(BIN)/.installed
	$(BIN)/python -m lab status

lab-down: $(BIN)/.installed
	$(BIN)/python -m lab down

bench: $(BIN)/.installed
	$(BIN)/python -m lab.bench
	$(BIN)/python -m lab.bench_tracing
	$(BIN)/python -m lab.bench_logs

# Time from fault injection to the Slack stand-in per critical alert, with
# production timers, first occurrence and returning, and the watchers' two cases
# (about 40 minutes a run; RUNS=1 for a quick look).
bench-alerting: $(BIN)/.installed
	$(BIN)/python -m lab.bench_alerting $(or $(RUNS),3)

clean: lab-down
	rm -rf $(VENV)
