# Everything a fresh machine needs: `make demo` and `make test` set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup test lint demo bench clean lock

$(STAMP): pyproject.toml requirements.lock recoup/web/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	# the back office's scripts (htmx, Chart.js) and axe-core for its tests, from the lock file
	npm ci --prefix recoup/web --no-audit --no-fund --loglevel=error
	touch $(STAMP)

setup: $(STAMP)

test: setup
	$(BIN)/pytest -n 2 -q

lint: setup
	$(BIN)/ruff check recoup tests benchmarks
	$(BIN)/ruff format --check recoup tests benchmarks
	$(BIN)/mypy recoup/domain
	$(BIN)/lint-imports

demo: setup
	$(BIN)/recoup demo

bench: setup
	$(BIN)/python benchmarks/run_bench.py

# Re-pin after changing dependencies in pyproject.toml.
lock: setup
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip freeze --exclude-editable | grep -v '^recoup' > requirements.lock

clean:
	rm -rf $(VENV) recoup/web/node_modules recoup.db recoup.db-* recoup-data demo-data
