# Two commands on a fresh machine: `make run` and `make test`. Only Python 3.11 is needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install run test lint format check lock bench soak clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

## Zero-config: SQLite, filesystem broker; web on :8000 with worker and beat, first ingestion.
run: install
	@bash deploy/run-local.sh

## The whole suite. SQLite unless DATABASE_URL is set; Redis when REDIS_URL is set.
test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check: install
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run

## Re-pin every dependency from pyproject.toml into requirements.lock.
lock:
	rm -rf /tmp/kasparro-lock && $(PYTHON) -m venv /tmp/kasparro-lock
	/tmp/kasparro-lock/bin/pip install --quiet '.[dev]'
	(echo "# Full pinned set (direct + transitive) that CI tests. Regenerate: make lock"; \
	 /tmp/kasparro-lock/bin/pip freeze --exclude-editable | grep -v '^kasparro' | sort -f) > requirements.lock

bench: install
	$(BIN)/python tests/benchmarks/csv_ingest.py

## The whole stack (web, two workers, beat) under injected crashes against local upstreams,
## then its report. SOAK_MINUTES (default 15), SOAK_SEED (default 1); needs the PostgreSQL
## server binaries and redis-server (private instances, nothing shared is touched).
soak: install
	$(BIN)/python -m tests.soak

clean:
	rm -rf .state staticfiles
