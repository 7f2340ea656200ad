# Everything a fresh machine needs goes through these targets: `make test` and `make demo` create .venv,
# install the project into it (at the versions in constraints.txt), and bring up the real local stack.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
export CONCERTOPS_STATE_DIR ?= $(CURDIR)/.devstack
# rich output wraps at a fixed width so test expectations hold on every terminal.
export COLUMNS ?= 100
# pytest-xdist workers; each runs on a devstack of its own (tests/workers.py). 1 runs them in one process.
WORKERS ?= 3
PYTEST_PARALLEL := $(if $(filter-out 1,$(WORKERS)),-n $(WORKERS) --dist worksteal,-p no:xdist)

.PHONY: install constraints lint test test-quick test-unit alerts demo stack-up stack-down workers-down clean

$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# The versions the suite was proven with, for `make install`: run after changing a dependency in
# pyproject.toml (it resolves the newest allowed versions in a fresh venv, then pins them).
constraints:
	rm -rf .constraints-venv
	$(PYTHON) -m venv .constraints-venv
	.constraints-venv/bin/pip install -q --upgrade pip
	.constraints-venv/bin/pip install -q -e '.[dev]'
	(echo "# pip install -c constraints.txt -e '.[dev]': written by \`make constraints\`"; \
	 .constraints-venv/bin/pip freeze --exclude-editable) > constraints.txt
	rm -rf .constraints-venv

lint: install
	$(BIN)/ruff check concertops tests bench
	$(BIN)/ruff format --check concertops tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test-unit: install
	$(BIN)/pytest tests/unit -q -p no:xdist

# The devstack is taken down again whatever the tests did, the workers' own stacks too. It also installs
# promtool (Debian package).
test: lint
	$(BIN)/concertops devstack up
	status=0; $(MAKE) --no-print-directory alerts && \
	  $(BIN)/pytest -q $(PYTEST_PARALLEL) --durations=15 || status=$$?; \
	$(MAKE) --no-print-directory workers-down; $(BIN)/concertops devstack down; exit $$status

# The daily loop, in about two minutes: the unit tests and one integration test per source kind (tests
# marked `quick`). `make test` is what CI runs and what a change must pass before it lands.
test-quick: install
	$(BIN)/concertops devstack up
	status=0; $(BIN)/pytest -q $(PYTEST_PARALLEL) --durations=5 -m "quick or not (integration or gameday)" \
	  || status=$$?; \
	$(MAKE) --no-print-directory workers-down; $(BIN)/concertops devstack down; exit $$status

# The stacks of workers that did not get to stop their own (a worker killed mid-run).
workers-down:
	@for dir in $(CONCERTOPS_STATE_DIR)/workers/*/; do \
	  [ -d "$$dir" ] && CONCERTOPS_STATE_DIR="$$dir" $(BIN)/concertops devstack down > /dev/null || true; \
	done

# Alert rules: syntax, and the promtool unit tests of every alert.
alerts:
	promtool check rules alerts/*.yml
	promtool test rules alerts/tests/*.yml

# The incident story on the embedded default (SQLite, embedded Redis, Tansu, direct scrape): nothing else
# to install, nothing left running afterwards.
demo: install
	$(BIN)/concertops demo

stack-up: install
	$(BIN)/concertops devstack up

stack-down: install
	$(BIN)/concertops devstack down

clean: stack-down workers-down
	rm -rf $(CONCERTOPS_STATE_DIR) .pytest_cache .mypy_cache .ruff_cache
