# Everything a fresh machine needs goes through these targets: `make test` and `make demo` create .venv,
# install the project into it, and bring up the real local stack.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
export CONCERTOPS_STATE_DIR ?= $(CURDIR)/.devstack
# rich output wraps at a fixed width so test expectations hold on every terminal.
export COLUMNS ?= 100

.PHONY: install lint test test-unit alerts demo stack-up stack-down clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

lint: install
	$(BIN)/ruff check concertops tests bench
	$(BIN)/ruff format --check concertops tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test-unit: install
	$(BIN)/pytest tests/unit -q

# The devstack is taken down again whatever the tests did. It also installs promtool (Debian package).
test: lint
	$(BIN)/concertops devstack up
	status=0; $(MAKE) --no-print-directory alerts && $(BIN)/pytest -q || status=$$?; \
	$(BIN)/concertops devstack down; exit $$status

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

clean: stack-down
	rm -rf $(CONCERTOPS_STATE_DIR) .pytest_cache .mypy_cache .ruff_cache
