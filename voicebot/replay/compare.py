"""What the bot now hears, understands and says differently from the recorded call.

Turns are paired by when the caller stopped speaking (within a second), not by index,
so one turn added or lost does not make every later turn look different. A change in a
field named in `[replay] fail_on` (default: intent, outcome; "turns" for added or
missing turns) breaks the rule, and `voicebot replay --compare` exits non-zero so a
QA pipeline can gate on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

COMPARED = ("caller_text", "intent", "outcome", "bot_text", "barge_in", "handoff_state")
PAIRING_WINDOW_S = 1.0


def _value(turn: Mapping[str, Any], field: str) -> Any:
    if field == "handoff_state":
        handoff = turn.get("handoff")
        return handoff.get("state") if isinstance(handoff, Mapping) else None
    return turn.get(field)


def _pair(
    original: Sequence[Mapping[str, Any]], replayed: Sequence[Mapping[str, Any]]
) -> list[tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]]:
    pairs: list[tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]] = []
    remaining = list(replayed)
    for turn in original:
        end = float(turn.get("ended_s") or 0.0)
        match = min(
            (r for r in remaining if abs(float(r.get("ended_s") or 0.0) - end) <= PAIRING_WINDOW_S),
            key=lambda r: abs(float(r.get("ended_s") or 0.0) - end),
            default=None,
        )
        if match is not None:
            remaining.remove(match)
        pairs.append((turn, match))
    pairs += [(None, r) for r in remaining]
    pairs.sort(key=lambda p: float((p[0] or p[1] or {}).get("ended_s") or 0.0))
    return pairs


def parse_rules(text: str) -> set[str]:
    """`fail_on` as a set of field names ("intent,outcome" -> {"intent", "outcome"})."""
    rules = {part.strip() for part in text.split(",") if part.strip()}
    unknown = rules - set(COMPARED) - {"turns"}
    if unknown:
        raise ValueError(
            f"unknown compare rule(s) {sorted(unknown)}; known: turns, {', '.join(COMPARED)}"
        )
    return rules


def compare(
    original: Mapping[str, Any],
    replayed: Mapping[str, Any],
    fail_on: Iterable[str],
    *,
    original_path: str = "",
) -> dict[str, Any]:
    """Per-field differences between the original call's turns and the replay's."""
    rules = set(fail_on)
    differences: list[dict[str, Any]] = []
    for before, after in _pair(original.get("turns") or [], replayed.get("turns") or []):
        if before is None or after is None:
            present = before or after or {}
            differences.append(
                {
                    "turn": present.get("index"),
                    "field": "turns",
                    "original": "present" if before else "missing",
                    "replayed": "present" if after else "missing",
                }
            )
            continue
        for field in COMPARED:
            old, new = _value(before, field), _value(after, field)
            if old != new:
                differences.append(
                    {"turn": after.get("index"), "field": field, "original": old, "replayed": new}
                )
    broken = sorted({d["field"] for d in differences if d["field"] in rules})
    return {
        "original": original_path,
        "passed": not broken,
        "rules": sorted(rules),
        "rules_broken": broken,
        "differences": differences,
    }
