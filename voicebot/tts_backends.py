"""Choosing a speech synthesizer by name: the one place that maps `[tts] backend` to a class.

The server and `bench/tts_latency.py` build voices through this, so a benchmark
measures what a call would run. Each backend is imported only when chosen: Coqui's
`TTS` package (an optional extra) is never imported unless configured.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from models.protocols import SpeechSynthesizer
from models.weights import resolve
from voicebot.config import TtsConfig

#: piper: the default, packaged voice. coqui: a local Coqui model directory (optional extra).
TTS_BACKENDS = ("piper", "coqui")
#: Said once at start-up: the first inference of a voice costs several times a later
#: one (onnxruntime and torch allocate on first use), and with the prompts read from the
#: disk cache nothing else would synthesise before the first caller's answer.
WARM_UP_TEXT = "Thank you for calling."


def build_synthesizer(tts: TtsConfig, *, warm_up: bool = True) -> SpeechSynthesizer:
    """Load the voice `tts` asks for (seconds) and, by default, synthesise once to warm it."""
    voice: SpeechSynthesizer
    if tts.backend == "piper":
        from models.tts_piper import PiperSynthesizer

        voice = PiperSynthesizer(tts.voice, length_scale=tts.length_scale, threads=tts.threads)
    elif tts.backend == "coqui":
        from models.tts_coqui import CoquiSynthesizer

        if not tts.model:
            raise ValueError("[tts] backend = 'coqui' needs [tts] model = a model directory")
        voice = CoquiSynthesizer(tts.model, device=tts.device)
    else:
        raise ValueError(f"unknown TTS backend {tts.backend!r} (known: {', '.join(TTS_BACKENDS)})")
    if warm_up and voice.synthesize(WARM_UP_TEXT).size == 0:
        raise RuntimeError(f"TTS backend {tts.backend!r} produced no audio for {WARM_UP_TEXT!r}")
    return voice


def voice_key(tts: TtsConfig) -> tuple[str, str]:
    """(name, digest) of the configured voice for the speech cache's directory.

    A changed voice file, model checkpoint or speed never reuses audio cached earlier.
    """
    if tts.backend == "coqui":
        directory = Path(tts.model).expanduser()
        files = sorted(p for p in directory.iterdir() if p.is_file())
        parts = [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
        key = f"coqui:{directory.resolve()}:{';'.join(parts)}"
        name = f"coqui-{directory.name}"
    else:
        voice = Path(resolve("piper", tts.voice).location)
        stat = voice.stat()
        key = f"{voice}:{stat.st_size}:{stat.st_mtime_ns}:{tts.length_scale}"
        name = voice.stem
    return name, hashlib.sha256(key.encode()).hexdigest()[:12]
