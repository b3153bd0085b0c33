# The two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TRIBES := $(VENV)/bin/tribes
DEMO ?= demo
DEMO_CUSTOMERS ?= 20000

.PHONY: install demo test bench lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

# the parity suite runs every stage on PySpark too (local mode, on Java 17); the service
# tests need the service extra, the real-time tests the stream extra (and redis-server)
$(VENV)/.extras: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q -e ".[dev,spark,service,stream]"
	touch $@

install: $(VENV)/.installed

demo: install
	TRIBES=$(TRIBES) DEMO=$(DEMO) DEMO_CUSTOMERS=$(DEMO_CUSTOMERS) bash scripts/demo.sh

test: install $(VENV)/.extras
	bash scripts/system-deps.sh
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: install $(VENV)/.extras
	$(PY) benchmarks/bench_ingest.py
	$(PY) benchmarks/bench_features.py
	$(PY) benchmarks/bench_segment.py
	$(PY) benchmarks/bench_commands.py
	$(PY) benchmarks/bench_analysis.py
	$(PY) benchmarks/bench_clv.py
	$(PY) benchmarks/bench_backends.py
	$(PY) benchmarks/bench_service.py
	$(PY) benchmarks/bench_stream.py

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .mypy_cache .ruff_cache .hypothesis bench-data
