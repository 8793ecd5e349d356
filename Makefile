# Two entry points for a new user: `make run` (the routing service with a demo fleet)
# and `make test` (every test). Each creates what it needs from nothing.

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NATIVE_SOURCES := $(shell find src -name '*.rs') Cargo.toml pyproject.toml

.PHONY: run simulate test test-rust test-python lint bench bench-rust bench-compare bench-service clean

# The routing service with the demo fleet (stand-in model servers on loopback), SQLite
# analytics in ./fleetroute-analytics.db, and a little demo traffic for the dashboard.
run: $(VENV)/.native
	$(VENV)/bin/fleetroute serve --demo --demo-traffic 20

# The 10,000-accelerator simulation of the Rust core.
simulate:
	cargo run --release

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "maturin>=1.7,<2"
	$(PY) -m pip install --quiet numpy "jax[cpu]" httpx pyyaml types-PyYAML types-tqdm \
		fastapi "uvicorn[standard]" pydantic pydantic-settings "sqlalchemy>=2" "psycopg[binary]" \
		redis prometheus-client pyjwt tqdm sniffio \
		pytest pytest-benchmark pytest-timeout hypothesis schemathesis websockets ruff mypy
	touch $(STAMP)

# What only the benchmarks need (plots), kept out of the test set-up.
$(VENV)/.bench: $(STAMP)
	$(PY) -m pip install --quiet matplotlib
	touch $(VENV)/.bench

$(VENV)/.native: $(STAMP) $(NATIVE_SOURCES)
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH \
		$(VENV)/bin/maturin develop --release --quiet
	touch $(VENV)/.native

test: test-rust test-python

test-rust:
	cargo test --all-targets

test-python: $(VENV)/.native
	$(PY) -m pytest -q

lint: $(STAMP)
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	PYO3_PYTHON=$(abspath $(PY)) cargo clippy --all-targets --features python -- -D warnings
	$(VENV)/bin/ruff check python tests benches
	$(VENV)/bin/ruff format --check python tests benches
	$(VENV)/bin/mypy python/fleetroute

bench: $(VENV)/.native $(VENV)/.bench
	$(PY) -m pytest benches -q -p no:cacheprovider --benchmark-only

bench-rust:
	cargo bench --bench routing

# fleetroute vs intelligent-routing 0.1.0 (PyPI, in .venv-baseline, created on first
# use), then the registry's memory footprint. Reports PASS/MISS, asserts nothing.
bench-compare: $(VENV)/.native $(VENV)/.bench
	$(PY) benches/seed003_comparison.py
	$(PY) benches/memory_footprint.py

# The service under wrk: routes/s, latency, peak RSS, proxy overhead (doc/benchmarks.md).
bench-service: $(VENV)/.native
	$(PY) benches/service_load.py

clean:
	rm -rf $(VENV) target
