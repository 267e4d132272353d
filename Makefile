# Every target does its own set-up: a fresh clone needs only Python 3.11+ (with its headers), a C compiler,
# Java 17+ and Maven.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all install native kafka-jars lint types test unit demo soak bench clean

all: test

$(STAMP): pyproject.toml examples/institution-enhancement/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet -e examples/institution-enhancement
	touch $(STAMP)

# The record fast path compiled with mypyc (scripts/build_native.py, docs/throughput.md), built again whenever
# its sources change; a build from other sources is never used (records/native.py), and the tests require a current
# one. The suffix is $(PYTHON)'s, the interpreter the virtualenv is made with.
NATIVE := src/neotool_common/records/_fast_native$(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
NATIVE_SOURCES := $(addprefix src/neotool_common/records/,fast.py decoding.py payload_struct.py native.py)
$(NATIVE): $(STAMP) $(NATIVE_SOURCES) scripts/build_native.py
	$(BIN)/python scripts/build_native.py

native: $(NATIVE)

install: $(STAMP) $(NATIVE)

# Resolves the Kafka broker jars from Maven Central once (cached under ~/.cache/neotool-common).
kafka-jars: $(STAMP)
	$(BIN)/python -m neotool_common.testing.kafka classpath > /dev/null

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

types: $(STAMP)
	$(BIN)/mypy src
	$(BIN)/mypy examples/institution-enhancement/src

unit: $(NATIVE)
	$(BIN)/pytest tests/unit

# Two workers, each with its own broker: most of the suite waits on brokers and processes, not on the CPU.
PYTEST_WORKERS ?= 2
test: lint types kafka-jars $(NATIVE)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=25

demo: kafka-jars $(NATIVE)
	$(BIN)/python scripts/demo.py

# The fault-injection and bad-input suite (soak/README.md), every scenario at full size (about 50 minutes);
# the report table lands in soak/results/latest.md. `make test` runs its quick subset (scenarios 1, 3, 5, 12).
soak: kafka-jars $(NATIVE)
	$(BIN)/pytest soak --soak-profile=full --soak-report=soak/results/latest.md

# Benchmarks (bench/README.md): the peer frameworks go into their own virtualenv, never into the project's.
# `make bench BENCH_RECORDS=200000` for a shorter run; results land in bench/results/.
PEERS         := bench/.venv-peers
PEERS_STAMP   := $(PEERS)/.installed
BENCH_RECORDS ?= 1000000
BENCH_NOTE    ?=
.PHONY: bench-smoke bench-modes bench-instructions

$(PEERS_STAMP): bench/requirements-peers.txt
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install --quiet -r bench/requirements-peers.txt
	touch $(PEERS_STAMP)

# The profiles of `make bench` are sampled with py-spy, which goes into the project's virtualenv beside Python.
$(BIN)/py-spy: $(STAMP)
	$(BIN)/pip install --quiet "py-spy>=0.3.14"

bench: kafka-jars $(NATIVE) $(PEERS_STAMP) $(BIN)/py-spy
	$(BIN)/python -m bench.run --records $(BENCH_RECORDS) --rounds 3 --rss-check --scaling --profile runner,runner-schema,runner-pydantic,runner-poison,runner-tier-fail \
		--note "$(BENCH_NOTE)"

# The throughput modes (docs/throughput.md): I/O-bound and no-op handlers, sequential against key-ordered,
# unordered and async; results in bench/results/throughput-modes.{md,json}.
bench-modes: kafka-jars $(NATIVE)
	$(BIN)/python -m bench.throughput_modes

# Instructions a record, counted by valgrind's callgrind (no broker, and no noise from other work on the machine):
# bench/results/instructions.{md,json}. Needs valgrind.
bench-instructions: $(NATIVE)
	$(BIN)/python -m bench.instructions

# The harness on 2,000 records with the in-tree variants only (also part of `make test`).
bench-smoke: kafka-jars $(NATIVE)
	$(BIN)/pytest tests/integration/test_bench_smoke.py

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache
	rm -f src/neotool_common/records/_fast_native*.so
