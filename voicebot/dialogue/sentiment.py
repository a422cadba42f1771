"""Per-turn sentiment with VADER, plus the call-level trajectory.

VADER is a lexicon-and-rules model tuned for short informal text: it costs well under a
millisecond per turn and needs no weights beyond its packaged lexicon, which suits
one transcribed phone utterance. The compound score is in [-1, 1].
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from typing import Any

from voicebot.dialogue.plan import Tone


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


def trend_falling(scores: tuple[float, ...] | list[float], drop: float, window: int = 3) -> bool:
    """The caller is getting steadily more upset: over the last `window` turns each score
    is no higher than the one before, the fall from the best is at least `drop`, and the
    latest turn is negative. One angry outburst is `upset_sentiment`'s job; this catches
    the caller who starts polite and sours turn by turn."""
    recent = list(scores[-window:])
    if len(recent) < window:
        return False
    steady = all(later <= earlier for earlier, later in itertools.pairwise(recent))
    return steady and recent[0] - recent[-1] >= drop and recent[-1] < -0.3


def tone_for(scores: tuple[float, ...] | list[float]) -> Tone:
    """Tone guidance for the reply: apologise to an unhappy caller, be brief with an
    impatient one (negative now, or negative on average over the last turns)."""
    latest = scores[-1] if scores else 0.0
    mood = trend(list(scores))
    return Tone(apologize=latest <= -0.4, brief=latest <= -0.2 or mood <= -0.2)
