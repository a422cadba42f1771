# Two commands on a fresh machine: `make serve` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

# The Coqui TTS test's own environment: `import TTS` needs torchaudio of torch's release,
# and PyPI's torchaudio stops at 2.11 (a CUDA build, ~4.6 GB with its libraries, run on the
# CPU here), so not beside .venv's torch 2.13. Every other pin is the project's.
COQUI_VENV := .venv-coqui
COQUI_BIN := $(COQUI_VENV)/bin
COQUI_STAMP := $(COQUI_VENV)/.installed
COQUI_TORCH := torch==2.11.0 torchaudio==2.11.0 torchcodec==0.11.1

.PHONY: setup serve test lint pytest bench clean test-coqui

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

$(COQUI_STAMP): pyproject.toml
	$(PYTHON) -m venv $(COQUI_VENV)
	$(COQUI_BIN)/pip install --quiet --upgrade pip
	$(COQUI_BIN)/pip install --quiet $(COQUI_TORCH)
	# The project's requirements (dev and coqui extras) less its torch pin.
	$(COQUI_BIN)/python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; x = p["optional-dependencies"]; print("\n".join(r for r in p["dependencies"] + x["dev"] + x["coqui"] if not r.startswith("torch==")))' > $(COQUI_VENV)/requirements.txt
	$(COQUI_BIN)/pip install --quiet -r $(COQUI_VENV)/requirements.txt
	touch $(COQUI_STAMP)

# Fails, never skips, where coqui-tts cannot run (VOICEBOT_REQUIRE_COQUI=1).
test-coqui: $(COQUI_STAMP)
	VOICEBOT_REQUIRE_COQUI=1 $(COQUI_BIN)/pytest -q tests/models/test_tts_coqui.py

bench: setup
	$(BIN)/python bench/voice_to_voice.py $(ARGS)

clean:
	rm -rf $(VENV) $(COQUI_VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
