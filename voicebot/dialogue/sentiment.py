"""Per-turn sentiment with VADER, plus the call-level trajectory.

VADER is a lexicon-and-rules model tuned for short informal text: it costs well under a
millisecond per turn and needs no weights beyond its packaged lexicon, which suits
one transcribed phone utterance. The compound score is in [-1, 1].
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def compound(text: str) -> float:
    """VADER compound score of one utterance (0.0 for empty text)."""
    if not text.strip():
        return 0.0
    return float(_analyzer().polarity_scores(text)["compound"])


def trend(scores: list[float], window: int = 3) -> float:
    """Mean of the last `window` turn scores: how the call is going, not just this turn."""
    recent = scores[-window:]
    return sum(recent) / len(recent) if recent else 0.0
