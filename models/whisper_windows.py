"""Trimmed Whisper encoder windows: which window holds a turn, and when a decode ran away.

Shared by the two Whisper backends that trim (faster-whisper on the CPU, the batched
PyTorch worker on the GPU) so they choose windows and detect runaway decodes by the same
rules. Why these rules (faster-whisper's eval-asr runs of commit 1802ecf, and
bench/RESULTS.md, "Batched Whisper: trimmed windows"): a window that ends right where
the audio ends, or 5 s steps, makes Whisper repeat itself; 10 s steps with a second of
trailing silence kept WER within an error of the 30 s window's on the real clips, and the
rare decode that still loops is caught by its length or by how well its text
compresses, then redone on the full window.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

#: Whisper's own window: the encoder's positional table covers 30 s (3,000 mel frames).
FULL_WINDOW_S = 30
#: Trailing silence kept after the audio inside a trimmed window.
WINDOW_MARGIN_S = 1.0
#: faster-whisper's (and openai-whisper's) threshold for "this text is a repetition loop".
RUNAWAY_COMPRESSION_RATIO = 2.4


def encoder_window_s(audio_s: float, min_window_s: float) -> float | None:
    """The trimmed encoder window for `audio_s` of audio, or None for the full 30 s path.

    The smallest multiple of `min_window_s` that holds the audio plus `WINDOW_MARGIN_S`;
    None when that is not shorter than 30 s (the plain decode is then the same work, and
    it also handles audio longer than one window).
    """
    if min_window_s <= 0 or min_window_s >= FULL_WINDOW_S:
        return None
    window = math.ceil((audio_s + WINDOW_MARGIN_S) / min_window_s) * min_window_s
    return window if window < FULL_WINDOW_S else None


def step_windows(min_window_s: float) -> tuple[float, ...]:
    """Every window `encoder_window_s` can choose at this step, then the full 30 s one.

    The batched worker's buckets for the `[asr] min_window_s` faster-whisper uses: 10 s
    gives (10, 20, 30); 30 (or 0) gives only Whisper's own window.
    """
    steps = int(FULL_WINDOW_S // min_window_s) if 0 < min_window_s < FULL_WINDOW_S else 0
    trimmed = (k * min_window_s for k in range(1, steps + 1))
    return (*(float(w) for w in trimmed if w < FULL_WINDOW_S), float(FULL_WINDOW_S))


def window_index(
    audio_s: float, windows_s: Sequence[float], margin_s: float = WINDOW_MARGIN_S
) -> int:
    """Index of the shortest of rising `windows_s` that holds the audio plus `margin_s`.

    A full 30 s window holds anything up to 30 s without the margin (it is Whisper's own
    layout, nothing is trimmed); audio that fits no window gets the last one (truncated).
    For windows at multiples of a step this is `encoder_window_s`'s choice.
    """
    for index, window in enumerate(windows_s):
        if audio_s + margin_s <= window or (window >= FULL_WINDOW_S and audio_s <= window):
            return index
    return len(windows_s) - 1


def compression_ratio(text: str) -> float:
    """How well the text compresses: above ~2.4 it is Whisper repeating itself."""
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


def token_budget(audio_s: float) -> int:
    """At most 12 + 7 tokens per second of audio, never over 200.

    Fast English speech is about 4 words, 5-6 tokens, a second, so 7/s leaves room for a
    fast talker while a runaway loop stops (and is recognised) early.
    """
    return min(200, 12 + int(7 * audio_s))


def ran_away(tokens: int, budget: int, text: str) -> bool:
    """A trimmed decode that used its whole budget or whose text loops: redo it on 30 s."""
    return tokens >= budget or compression_ratio(text) > RUNAWAY_COMPRESSION_RATIO
