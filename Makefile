# The two commands a newcomer needs: `make run` and `make test`. Each sets up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck unit bench install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/crm run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck unit

# The performance table of docs/benchmarks.md, each figure beside its baseline from the same run.
# Embedded servers by default; BENCH_DATABASE_URL=postgresql://... uses an existing PostgreSQL.
BENCH_DB := $(if $(BENCH_DATABASE_URL),--database-url $(BENCH_DATABASE_URL))
bench: $(STAMP)
	$(BIN)/python -m bench.append $(BENCH_DB)
	$(BIN)/python -m bench.rebuild --events 200000 --no-each $(BENCH_DB)
	$(BIN)/python -m bench.visible --rate 500 $(BENCH_DB)
	$(BIN)/python -m bench.relay
	$(BIN)/python -m bench.api_load --read-rate 500 --command-rate 100 $(BENCH_DB)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
