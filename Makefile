PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver

.PHONY: run test bench soak lock clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test]'
	touch $(STAMP)

# Re-pin requirements.lock to what the venv holds after a dependency change in pyproject.toml.
lock:
	$(BIN)/python -m pip install --quiet -e '.[test]'
	{ head -2 requirements.lock; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^payerpolicy'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

run: $(STAMP)
	$(BIN)/payerpolicy scrub examples/claims.json; test $$? -le 1

# The HTML report and workbench tests drive headless Chromium (the workbench's through its
# WebDriver, chromium-driver); install both from Debian where apt-get and root allow.
$(CHROMIUM) $(CHROMEDRIVER):
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "Chromium not installed: the browser tests will be skipped"; fi

# The store tests run on SQLite and on a PostgreSQL server they start from Debian's packages.
POSTGRES := /usr/lib/postgresql
$(POSTGRES):
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else echo "PostgreSQL not installed: the store tests will run on SQLite only"; fi

test: $(STAMP) $(CHROMIUM) $(CHROMEDRIVER) $(POSTGRES)
	$(BIN)/python -m pytest

# Heavy fault runs: 400 keys sent twice at once to `serve --workers 2`, 10,000 hostile inputs,
# 8 command-line writers on one store. Prints the figures the README's reliability section quotes.
soak: $(STAMP) $(POSTGRES)
	PAYERPOLICY_SOAK=1 $(BIN)/python -m pytest -n 2 -rP tests/test_soak.py \
		tests/test_store_schema.py::test_eight_command_line_writers_on_one_new_store_lose_no_run

# Heavy: about an hour on 2 cores (a million claims scrubbed twice, a million judged twice for denials).
bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench
	$(BIN)/python -m benchmarks.bench_serve
	$(BIN)/python -m benchmarks.denials_bench --claims 100000 --workers 2
	$(BIN)/python -m benchmarks.denials_bench --claims 1000000 --workers 2
	$(BIN)/python -m benchmarks.reference_bench

clean:
	rm -rf $(VENV) build dist *.egg-info
