# Two commands on a fresh machine: `make serve` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: setup serve test lint pytest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: the CPU wheel on this machine's disk (a bare `torch` pulls GBs of CUDA).
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

serve: setup
	$(BIN)/voicebot serve $(ARGS)

lint: setup
	$(BIN)/ruff check telephony voicebot models tests bench
	$(BIN)/ruff format --check telephony voicebot models tests bench
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest -q $(ARGS)

test: lint pytest

bench: setup
	$(BIN)/python bench/voice_to_voice.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
