"""Coqui TTS (the maintained `coqui-tts` fork, `import TTS`) from a model directory.

An alternative to Piper for voices trained with Coqui (VITS, Tacotron2, Glow-TTS...):
`[tts] backend = "coqui"` and `[tts] model = DIR`, where DIR holds the model's
`config.json` and its checkpoint (`model.pth`, `best_model.pth`, ...). No Coqui voice
ships on PyPI and `coqui-tts` only downloads them, so the model is always a local
directory here.

`coqui-tts` is an optional extra (`pip install 'voicebot[coqui]'`): `import TTS` pulls in
torchaudio, which is published pinned to one torch release and cannot sit beside this
project's torch 2.13 (see the project's WEIGHTS notes). So `TTS` is imported only when
this backend is built, never at package import, and a missing package is a clear
`CoquiUnavailable` at start-up rather than an ImportError in a call.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from models.protocols import PCM16, SAMPLE_RATE
from models.tts_piper import fade_edges, trim_leading_silence

log = logging.getLogger(__name__)

#: Checkpoint names Coqui's trainer and its released models use, most specific first.
CHECKPOINT_NAMES = ("model.pth", "best_model.pth", "model_file.pth", "checkpoint.pth")
INSTALL_HINT = "pip install 'voicebot[coqui]' (coqui-tts; torch and torchaudio of one release)"


class CoquiUnavailable(RuntimeError):
    """The Coqui backend is configured but `coqui-tts` cannot be imported here."""


def find_checkpoint(model_dir: Path) -> Path:
    """The model file in a Coqui model directory (a known name, else the only `.pth`)."""
    for name in CHECKPOINT_NAMES:
        if (model_dir / name).is_file():
            return model_dir / name
    candidates = sorted(model_dir.glob("*.pth"))
    if len(candidates) == 1:
        return candidates[0]
    found = ", ".join(p.name for p in candidates) or "none"
    raise FileNotFoundError(f"no single Coqui checkpoint in {model_dir} (.pth files: {found})")


def _import_synthesizer() -> Any:
    """`TTS.utils.synthesizer.Synthesizer`, imported only now (it pulls in torchaudio)."""
    try:
        module = importlib.import_module("TTS.utils.synthesizer")
    except (ImportError, OSError) as exc:  # TTS, or a torchaudio built for another torch
        message = f"[tts] backend = 'coqui' needs coqui-tts: {exc!r}. {INSTALL_HINT}"
        raise CoquiUnavailable(message) from exc
    return module.Synthesizer


class CoquiSynthesizer:
    """A Coqui TTS model loaded once per process; `synthesize` returns 16 kHz PCM16."""

    def __init__(self, model_dir: str | Path, device: str = "cpu") -> None:
        directory = Path(model_dir).expanduser()
        config = directory / "config.json"
        if not config.is_file():
            raise FileNotFoundError(f"Coqui model directory {directory} has no config.json")
        checkpoint = find_checkpoint(directory)
        synthesizer_class = _import_synthesizer()
        started = time.perf_counter()
        self._synth = synthesizer_class(
            tts_checkpoint=str(checkpoint),
            tts_config_path=str(config),
            use_cuda=device.startswith("cuda"),
        )
        # torch modules are not safe to run from two threads at once; the TTS pool has
        # one thread, but a benchmark or a test may call from several.
        self._lock = threading.Lock()
        self.native_rate = int(self._synth.output_sample_rate)
        self.name = directory.name
        log.info(
            "coqui model %s (%s, %d Hz) loaded in %.2f s",
            directory,
            checkpoint.name,
            self.native_rate,
            time.perf_counter() - started,
        )

    def synthesize(self, text: str) -> PCM16:
        """One sentence (or clause) -> 16 kHz PCM16, resampled once from the model's rate."""
        if not text.strip():
            return np.zeros(0, dtype=np.int16)
        with self._lock:
            wav = self._synth.tts(text, split_sentences=False)
        samples = np.asarray(wav, dtype=np.float32).reshape(-1)
        if samples.size == 0:
            return np.zeros(0, dtype=np.int16)
        native = np.asarray(np.clip(samples, -1.0, 1.0) * 32767, dtype=np.int16)
        native = trim_leading_silence(native, self.native_rate)
        if native.size == 0:
            return native
        out = native
        if self.native_rate != SAMPLE_RATE:
            out = np.asarray(
                soxr.resample(native, self.native_rate, SAMPLE_RATE, quality="HQ"), dtype=np.int16
            )
        return fade_edges(out, SAMPLE_RATE)
