# Everything a new user needs starts from python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup browser run test lint schema bench maestro-smoke check-pr chaos soak clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/maestro up

# Three workers on two cores: most tests wait on a real nats-server, a process or a sandboxed command, so at
# -n 2 the suite kept the cores only 62% busy (measured: 314 s at -n 2, 244 s at -n 3, on this 2-core machine;
# -n 4 was slower again, 458 s against 428 s at -n 3 on a loaded machine, and timing tests failed). Work
# stealing: a worker that runs out takes tests queued for another, so the last minute is not one worker
# finishing the slow kill tests it was handed early while the others wait.
test: $(STAMP) browser
	$(BIN)/pytest -q -n 3 --dist worksteal

# The console's tests (tests/console) drive Debian's Chromium with Playwright, whose own browser download is not
# reachable from here. Once per venv: nothing when MAESTRO_BROWSER names a Chromium or one is on PATH; as root
# with apt-get, Debian's is installed (measured here: 16 s, 1 s of it apt-get update; without recommends, which
# are the sandbox helper and desktop services a headless run does not use); otherwise one line says the browser
# tests will skip. Never fails `make test`: a failed install is logged, and tried again next time.
BROWSER_STAMP := $(VENV)/.browser
APT := DEBIAN_FRONTEND=noninteractive apt-get -qq

browser: $(BROWSER_STAMP)

$(BROWSER_STAMP): | $(STAMP)
	@if [ -n "$$MAESTRO_BROWSER" ] && named=$$(command -v "$$MAESTRO_BROWSER") && [ -x "$$named" ]; then \
		touch $@; \
	elif command -v chromium >/dev/null; then \
		touch $@; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium for the browser tests (apt-get, log in $(VENV)/chromium-install.log)"; \
		if { $(APT) update && $(APT) install -y --no-install-recommends chromium; } >$(VENV)/chromium-install.log 2>&1 \
			&& command -v chromium >/dev/null; then touch $@; \
		else echo "The browser tests will skip: apt-get could not install chromium (see $(VENV)/chromium-install.log)"; fi; \
	else \
		echo "The browser tests will skip: no chromium on PATH, and installing it (apt-get install chromium) needs root and apt-get"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

schema: $(STAMP)
	$(BIN)/python -m maestro.schema

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench

maestro-smoke: $(STAMP)
	$(BIN)/maestro smoke

# Fault scenarios against real processes; ARGS="--only kill-agents,poison --repeat 3" pass on.
chaos: $(STAMP)
	$(BIN)/python -m chaos $(ARGS)

# Ten minutes at a steady rate; fails when memory or open files grow past the bound it prints.
soak: $(STAMP)
	$(BIN)/python -m chaos.soak $(ARGS)

# Judge this branch's changes (STAGED=1: what is staged) with the guard's engine, under the bundle pushed to a
# running Maestro, else the shipped one; BASE=ref and ARGS="--format sarif --output x" pass on.
# The guard's own tests hold planted keys and license headers on purpose: they are its test fixtures.
CHECK_PR_EXCLUDE ?= tests/maestro/policy/test_policy_*.py tests/maestro/policy/test_check_pr.py

check-pr: $(STAMP)
	$(BIN)/maestro check-pr $(if $(STAGED),--staged,$(if $(BASE),--base $(BASE))) $(foreach g,$(CHECK_PR_EXCLUDE),--exclude '$(g)') $(ARGS)

clean:
	rm -rf $(VENV) .maestro .pytest_cache .mypy_cache .ruff_cache
