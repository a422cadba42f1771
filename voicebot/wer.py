"""Word error rate, on text normalised the way Whisper's own evaluations normalise it.

Published Whisper WERs use `EnglishTextNormalizer` (lower case, punctuation and
fillers removed, British spellings and numbers standardised: "Mr." = "mister",
"twenty five" = "25"), so figures measured here are comparable with them. Without it
a comma or "OK" against "okay" counts as an error and the figure measures style.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache


@cache
def english_normalizer() -> Callable[[str], str]:
    """openai-whisper's `EnglishTextNormalizer` (built once: it reads a spelling table)."""
    from whisper.normalizers import EnglishTextNormalizer

    normalizer: Callable[[str], str] = EnglishTextNormalizer()
    return normalizer


@dataclass(frozen=True, slots=True)
class WordErrors:
    """Edit counts of a hypothesis against a reference; they add up across utterances."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_words: int = 0

    @property
    def errors(self) -> int:
        """Substitutions + deletions + insertions."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        """Errors per reference word (0.0 for an empty reference with an empty hypothesis)."""
        if self.reference_words == 0:
            return float(self.errors > 0)
        return self.errors / self.reference_words

    def __add__(self, other: WordErrors) -> WordErrors:
        return WordErrors(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_words + other.reference_words,
        )


def align(reference: list[str], hypothesis: list[str]) -> WordErrors:
    """Levenshtein alignment of two word lists, counting each kind of edit.

    Among alignments with the fewest edits, ties prefer substitutions, then deletions
    (the usual convention of sclite and jiwer), so the split is deterministic.
    """
    rows, cols = len(reference), len(hypothesis)
    # cost[i][j] = (edits, substitutions, deletions, insertions) for ref[:i] vs hyp[:j]
    previous = [(j, 0, 0, j) for j in range(cols + 1)]
    for i in range(1, rows + 1):
        current = [(i, 0, i, 0)]
        for j in range(1, cols + 1):
            diagonal = previous[j - 1]
            if reference[i - 1] == hypothesis[j - 1]:
                best = diagonal
            else:
                sub = (diagonal[0] + 1, diagonal[1] + 1, diagonal[2], diagonal[3])
                up = previous[j]
                dele = (up[0] + 1, up[1], up[2] + 1, up[3])
                left = current[j - 1]
                ins = (left[0] + 1, left[1], left[2], left[3] + 1)
                best = min((sub[0], 0, sub), (dele[0], 1, dele), (ins[0], 2, ins))[2]
            current.append(best)
        previous = current
    _, substitutions, deletions, insertions = previous[cols]
    return WordErrors(substitutions, deletions, insertions, rows)


def word_errors(
    reference: str, hypothesis: str, normalize: Callable[[str], str] | None = None
) -> WordErrors:
    """Edit counts after normalising both texts (Whisper's English normaliser by default)."""
    norm = normalize or english_normalizer()
    return align(norm(reference).split(), norm(hypothesis).split())
