"""Piper text-to-speech (VITS on onnxruntime) with the packaged voice, the default.

Piper synthesises a 5-second sentence in about 0.3 s on this CPU, so replies are
synthesised unit by unit (a sentence, or a long first sentence's first clause; see
`voicebot.reply.speech_units`) and the first unit is on the line while the rest is
still being made. Piper 1.8's `PiperVoice.synthesize` does yield `AudioChunk`s, but one
per sentence and only once that sentence's whole VITS pass is done (the model is not
autoregressive: no audio exists before the pass ends), so for a single unit its
"streaming" gives nothing earlier; shorter units do.

Sample rates, end to end: the voice speaks at 22.05 kHz; this backend resamples once
(soxr HQ, about 1-2 ms per second of speech) to the bot's 16 kHz, which the speech
cache, recordings and playout share; the carrier codec converts once more at the edge
(16 -> 8 kHz G.711 for Twilio, Telnyx, Asterisk and SIP; none for Vonage's 16 kHz).
Synthesising straight to 8 kHz would save one resampling pass but give each carrier
rate its own cache and recordings; the pass costs too little for that (bench/RESULTS.md).
Leading silence is trimmed (it would only add to the caller's wait) and both edges get
a few-millisecond fade, so units that follow each other never click at the join.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from models.protocols import PCM16, SAMPLE_RATE
from models.weights import resolve

log = logging.getLogger(__name__)

#: Keep this much of the voice's own leading silence, so onsets are not clipped.
LEAD_IN_S = 0.02
SILENCE_LEVEL = 200
#: Fade at each edge: the trim point is quiet but not silent, and a step there clicks.
FADE_S = 0.005


def trim_leading_silence(pcm: PCM16, sample_rate: int) -> PCM16:
    """Drop leading samples below a small threshold, keeping `LEAD_IN_S` before the onset."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > SILENCE_LEVEL)
    if loud.size == 0:
        return pcm[:0]
    start = max(int(loud[0]) - int(LEAD_IN_S * sample_rate), 0)
    return pcm[start:]


def _load_voice(model: Path, threads: int) -> Any:
    """`PiperVoice.load`, but with the onnxruntime thread count under our control.

    Piper's own loader gives onnxruntime all cores; replay runs one process per core,
    where that oversubscribes the CPU (0 keeps onnxruntime's default).
    """
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig
    from piper.phonemize_espeak import ESPEAK_DATA_DIR

    config = json.loads(Path(f"{model}.json").read_text(encoding="utf-8"))
    options = onnxruntime.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(model), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return PiperVoice(
        config=PiperConfig.from_dict(config),
        session=session,
        espeak_data_dir=Path(ESPEAK_DATA_DIR),
        download_dir=Path.cwd(),
    )


def fade_edges(pcm: PCM16, sample_rate: int, fade_s: float = FADE_S) -> PCM16:
    """Linear fade-in and fade-out of `fade_s` each, so a cut edge never steps."""
    n = min(int(fade_s * sample_rate), pcm.size // 2)
    if n <= 0:
        return pcm
    out = pcm.astype(np.float32)
    ramp = np.linspace(0.0, 1.0, n, endpoint=False, dtype=np.float32)
    out[:n] *= ramp
    out[-n:] *= ramp[::-1]
    return np.asarray(np.rint(out), dtype=np.int16)


class PiperSynthesizer:
    """Piper voice loaded once per process; `synthesize` is thread-safe per onnxruntime."""

    def __init__(
        self,
        voice: str = "en_US-joe-medium",
        *,
        length_scale: float | None = None,
        threads: int = 0,
    ) -> None:
        from piper.config import SynthesisConfig

        weights = resolve("piper", voice)
        started = time.perf_counter()
        self._voice = _load_voice(Path(weights.location), threads)
        self._config = SynthesisConfig(length_scale=length_scale)
        self.native_rate = int(self._voice.config.sample_rate)
        self.name = voice
        log.info(
            "piper voice %s (%s) loaded in %.2f s",
            voice,
            weights.source,
            time.perf_counter() - started,
        )

    def synthesize(self, text: str) -> PCM16:
        """One sentence -> 16 kHz PCM16."""
        chunks = [c.audio_int16_array for c in self._voice.synthesize(text, self._config)]
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        native = trim_leading_silence(np.concatenate(chunks), self.native_rate)
        if native.size == 0:
            return native
        out = soxr.resample(native, self.native_rate, SAMPLE_RATE, quality="HQ")
        return fade_edges(np.asarray(out, dtype=np.int16), SAMPLE_RATE)
