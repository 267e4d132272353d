# Every target does its own set-up: a fresh clone needs only Python 3.11+, Java 17+ and Maven.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all install kafka-jars lint types test unit demo soak bench clean

all: test

$(STAMP): pyproject.toml examples/institution-enhancement/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet -e examples/institution-enhancement
	touch $(STAMP)

install: $(STAMP)

# Resolves the Kafka broker jars from Maven Central once (cached under ~/.cache/neotool-common).
kafka-jars: $(STAMP)
	$(BIN)/python -m neotool_common.testing.kafka classpath > /dev/null

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy src

unit: $(STAMP)
	$(BIN)/pytest tests/unit

test: lint types kafka-jars
	$(BIN)/pytest

demo: kafka-jars
	$(BIN)/python scripts/demo.py

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache
