"""The report's two charts as inline SVG: sentiment over the call, latency by stage.

Inline SVG rather than a charting library because the page must open from a QA
ticket or an air-gapped laptop with no network and no JavaScript, and a few dozen
shapes per call need no library. Coordinates live in a fixed viewBox; CSS scales the
drawing to the page width. Every shape carries a `<title>` (a hover tooltip) and each
chart a `<desc>` that says in words what the picture shows, for screen readers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from voicebot.report.data import CallReport, Prompt, Timings, Turn, clock, ms, signed

# Stage colours (a colour-blind-safe Tableau palette); the HTML legend reuses them.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("asr_ms", "ASR", "#4e79a7"),
    ("dialogue_ms", "Dialogue", "#f28e2b"),
    ("tts_first_audio_ms", "TTS first audio", "#59a14f"),
    ("other_ms", "Waiting/other", "#bab0ac"),
)
CALLER_COLOUR = "#4e79a7"
BOT_COLOUR = "#59a14f"
BARGE_COLOUR = "#e8590c"
HANDOFF_COLOUR = "#7048e8"
WIDTH = 720


def _f(x: float) -> str:
    """Short coordinates keep the page small and diffs of two reports readable."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, label: str, cls: str = "", anchor: str = "middle") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}"{klass}>{escape(label)}</text>'


def _line(x1: float, x2: float, y1: float, y2: float, cls: str = "", stroke: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    colour = f' stroke="{stroke}"' if stroke else ""
    return f'<line{klass} x1="{_f(x1)}" x2="{_f(x2)}" y1="{_f(y1)}" y2="{_f(y2)}"{colour}/>'


def _rect(
    x: float, y: float, w: float, h: float, fill: str = "", cls: str = "", tip: str = ""
) -> str:
    klass = f' class="{cls}"' if cls else ""
    colour = f' fill="{fill}"' if fill else ""
    inner = f"<title>{escape(tip)}</title>" if tip else ""
    size = f'x="{_f(x)}" y="{_f(y)}" width="{_f(w)}" height="{_f(h)}"'
    return f"<rect{klass} {size}{colour}>{inner}</rect>"


def _nice_step(span: float, ticks: int) -> float:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) giving about `ticks` ticks."""
    raw = max(span / ticks, 1e-9)
    power = 10 ** math.floor(math.log10(raw))
    return float(next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw))


def _time_step(span: float) -> float:
    return next((s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600) if span / s <= 8), 1200)


def _svg_open(name: str, height: int, title: str, desc: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{name}-title {name}-desc" focusable="false">'
        f'<title id="{name}-title">{escape(title)}</title>'
        f'<desc id="{name}-desc">{escape(desc)}</desc>'
    )


def prompt_barge_in_at(prompt: Prompt, turns: Sequence[Turn]) -> float | None:
    """A prompt has no end time; the caller who cut it off started their next turn then."""
    if prompt.at_s is None:
        return None
    later = [t.started_s for t in turns if t.started_s is not None and t.started_s >= prompt.at_s]
    return min(later) if later else prompt.at_s


def _handoff_at(turn: Turn) -> float | None:
    assert turn.handoff is not None
    for t in (turn.handoff.at_s, turn.bot_started_s, turn.ended_s, turn.started_s):
        if t is not None:
            return t
    return None


def _markers(report: CallReport) -> list[tuple[float, str, str, str]]:
    """(time, kind, short label, tooltip) for every barge-in and handoff on the call."""
    marks: list[tuple[float, str, str, str]] = []
    for p in report.prompts:
        at = prompt_barge_in_at(p, report.turns)
        if p.barge_in and at is not None:
            tip = f"Barge-in: the caller cut off the {p.kind} at {clock(at)}"
            marks.append((at, "barge", f"⚡ {p.kind}", tip))
    for t in report.turns:
        if t.barge_in and t.barge_in_at_s is not None:
            when = clock(t.barge_in_at_s)
            tip = f"Barge-in: the caller cut off the answer to turn {t.index} at {when}"
            marks.append((t.barge_in_at_s, "barge", f"⚡ T{t.index}", tip))
        handoff_at = _handoff_at(t) if t.handoff else None
        if t.handoff and handoff_at is not None:
            tip = f"Handoff {t.handoff.state} at turn {t.index} ({clock(handoff_at)})"
            if t.handoff.reason:
                tip += f": {t.handoff.reason}"
            marks.append((handoff_at, "handoff", f"☎ {t.handoff.state}", tip))
    return sorted(marks, key=lambda m: m[0])


def sentiment_chart(report: CallReport) -> str:
    """Caller sentiment (-1..1) per turn over call time, with speech lanes and markers.

    Below the curve, two lanes show when the caller and the bot were speaking, so a
    drop in mood can be read against long waits or interrupted answers; barge-ins and
    handoffs are vertical lines across both.
    """
    left, right, top, bottom, height = 58.0, WIDTH - 16.0, 36.0, 166.0, 236
    times = [
        t
        for turn in report.turns
        for t in (turn.started_s, turn.ended_s, turn.bot_started_s, turn.bot_ended_s)
        if t is not None
    ] + [p.at_s for p in report.prompts if p.at_s is not None]
    span = max([report.duration_s or 0.0, *times, 1.0])

    def x(t: float) -> float:
        return left + max(0.0, min(t, span)) / span * (right - left)

    def y(v: float) -> float:
        return top + (1 - (max(-1.0, min(1.0, v)) + 1) / 2) * (bottom - top)

    points = [
        (turn, turn.sentiment_at_s, turn.sentiment)
        for turn in report.turns
        if turn.sentiment is not None and turn.sentiment_at_s is not None
    ]
    markers = _markers(report)
    said = "; ".join(f"turn {t.index} {signed(v)} at {clock(at)}" for t, at, v in points)
    desc = f"Sentiment per turn from -1 (negative) to +1 (positive): {said or 'no data'}."
    if markers:
        desc += " Markers: " + "; ".join(m[3] for m in markers) + "."
    parts = [_svg_open("sentiment", height, "Caller sentiment and speech over the call", desc)]
    for v in (-1.0, -0.5, 0.0, 0.5, 1.0):
        parts.append(_line(left, right, y(v), y(v), "zero" if v == 0 else "grid"))
        parts.append(_text(left - 6, y(v) + 4, "0" if v == 0 else f"{v:+g}", "tick", "end"))
    step = _time_step(span)
    for i in range(int(span // step) + 1):
        t = i * step
        parts.append(_line(x(t), x(t), bottom, bottom + 4, "zero"))
        label = f"{int(t // 60)}:{int(t % 60):02d}"
        parts.append(_text(x(t), bottom + 17, label, "tick", "start" if i == 0 else "middle"))
    for name, lane_y in (("caller", 190.0), ("bot", 210.0)):
        parts.append(_rect(left, lane_y, right - left, 12, cls="lane"))
        parts.append(_text(left - 6, lane_y + 10, name, "tick", "end"))
    for turn in report.turns:
        spans = (
            (turn.started_s, turn.ended_s, 190.0, CALLER_COLOUR, "caller speaks"),
            (turn.bot_started_s, turn.bot_ended_s, 210.0, BOT_COLOUR, "bot answers"),
        )
        for start, end, lane_y, colour, what in spans:
            if start is None:
                continue
            stop = end if end is not None and end >= start else start
            tip = f"Turn {turn.index}: {what} {clock(start)}–{clock(end)}"
            bar = _rect(x(start), lane_y, max(2.0, x(stop) - x(start)), 12, colour, tip=tip)
            parts.append(f'<a href="#turn-{turn.index}">{bar}</a>')
    for p in report.prompts:
        if p.at_s is not None:
            tip = f"Prompt ({p.kind}) at {clock(p.at_s)}"
            parts.append(_rect(x(p.at_s) - 1.5, 210, 3, 12, BOT_COLOUR, tip=tip))
    for at, kind, label, tip in markers:
        colour = BARGE_COLOUR if kind == "barge" else HANDOFF_COLOUR
        row = 12.0 if kind == "barge" else 26.0
        anchor = "end" if x(at) > right - 50 else ("start" if x(at) < left + 30 else "middle")
        parts.append(
            f'<g class="marker {kind}"><title>{escape(tip)}</title>'
            f"{_line(x(at), x(at), row + 4, 224, stroke=colour)}"
            f'<text x="{_f(x(at))}" y="{_f(row)}" text-anchor="{anchor}" fill="{colour}">'
            f"{escape(label)}</text></g>"
        )
    if len(points) > 1:
        ordered = sorted(points, key=lambda p: p[1])
        coords = " ".join(f"{_f(x(at))},{_f(y(v))}" for _, at, v in ordered)
        parts.append(f'<polyline class="curve" points="{coords}"/>')
    for turn, at, v in points:
        cls = "neg" if v < -0.3 else ("pos" if v > 0.3 else "neutral")
        label_y = y(v) + 16 if v > 0.75 else y(v) - 8
        tip = f"Turn {turn.index}: sentiment {signed(v)} at {clock(at)}"
        parts.append(
            f'<a href="#turn-{turn.index}"><g class="point {cls}"><title>{escape(tip)}</title>'
            f'<circle cx="{_f(x(at))}" cy="{_f(y(v))}" r="4.5"/>'
            f"{_text(x(at), label_y, f'T{turn.index}', 'plabel')}</g></a>"
        )
    if not points:
        parts.append(
            _text((left + right) / 2, (top + bottom) / 2, "No sentiment recorded", "empty")
        )
    parts.append("</svg>")
    return "".join(parts)


def stage_values(timings: Timings) -> list[tuple[str, str, float]]:
    """(label, colour, ms) for each measured, non-zero stage, bottom of the stack first."""
    out = []
    for key, label, colour in STAGES:
        value: float | None = getattr(timings, key)
        if value:
            out.append((label, colour, value))
    return out


def _legend(x: float, y: float) -> list[str]:
    parts = []
    for _, label, colour in STAGES:
        parts.append(_rect(x, y - 10, 12, 12, colour))
        parts.append(_text(x + 17, y, label, "legend", "start"))
        x += 30 + 7 * len(label)
    for cls, label in (("v2v", "Voice-to-voice"), ("median", "Median")):
        parts.append(_line(x, x + 16, y - 4, y - 4, cls))
        parts.append(_text(x + 21, y, label, "legend", "start"))
        x += 30 + 7 * len(label)
    return parts


def latency_chart(report: CallReport) -> str:
    """Stacked per-turn bars: ASR, dialogue, TTS first audio and the unexplained rest.

    The stack is what each stage cost; the black tick is the voice-to-voice time the
    caller felt (they differ when stages overlap the caller's speech), and the dashed
    line is the call's median, so slow turns stand out.
    """
    left, right, top, bottom, height = 62.0, WIDTH - 16.0, 30.0, 214.0, 272
    turns = report.turns
    totals = [
        max(sum(v for _, _, v in stage_values(t.timings)), t.timings.voice_to_voice_ms or 0.0)
        for t in turns
    ]
    step = _nice_step(max([*totals, 1.0]), 5)
    top_ms = max(step, math.ceil(max([*totals, 1.0]) / step) * step)

    def y(v: float) -> float:
        return bottom - v / top_ms * (bottom - top)

    said = "; ".join(
        f"turn {t.index}: voice-to-voice {ms(t.timings.voice_to_voice_ms)}"
        + "".join(f", {label} {v:.0f} ms" for label, _, v in stage_values(t.timings))
        for t in turns
    )
    desc = f"Latency per turn by stage, in milliseconds. {said or 'No turns.'}"
    parts = [_svg_open("latency", height, "Latency per turn by stage", desc)]
    parts.append(_text(left - 8, top - 14, "ms", "tick", "end"))
    for i in range(round(top_ms / step) + 1):
        parts.append(_line(left, right, y(i * step), y(i * step), "zero" if i == 0 else "grid"))
        parts.append(_text(left - 8, y(i * step) + 4, f"{i * step:,.0f}", "tick", "end"))
    slot = (right - left) / max(len(turns), 1)
    bar = min(44.0, slot * 0.62)
    every = max(1, math.ceil(24 / slot))
    for i, turn in enumerate(turns):
        cx = left + (i + 0.5) * slot
        base = 0.0
        for label, colour, value in stage_values(turn.timings):
            tip = f"Turn {turn.index} {label}: {value:,.0f} ms"
            h = y(base) - y(base + value)
            parts.append(_rect(cx - bar / 2, y(base + value), bar, h, colour, tip=tip))
            base += value
        v2v = turn.timings.voice_to_voice_ms
        if v2v is not None:
            tip = f"Turn {turn.index} voice-to-voice: {v2v:,.0f} ms"
            tick = _line(cx - bar / 2 - 4, cx + bar / 2 + 4, y(v2v), y(v2v))
            parts.append(f'<g class="v2v"><title>{escape(tip)}</title>{tick}</g>')
        peak = max(base, v2v or 0.0)
        if turn.timings.empty:
            parts.append(_text(cx, bottom - 6, "n/a", "empty small"))
        elif slot >= 34:
            parts.append(_text(cx, y(peak) - 5, f"{peak:,.0f}", "vlabel"))
        if i % every == 0:
            label = _text(cx, bottom + 16, f"T{turn.index}", "tick")
            parts.append(f'<a href="#turn-{turn.index}">{label}</a>')
    median = report.summary.voice_to_voice_ms_median
    if median is not None and turns:
        parts.append(
            f'<g class="median"><title>Median voice-to-voice {median:,.0f} ms</title>'
            f"{_line(left, right, y(median), y(median))}"
            f"{_text(right, y(median) - 4, f'median {median:,.0f} ms', 'mlabel', 'end')}</g>"
        )
    if not turns:
        parts.append(_text((left + right) / 2, (top + bottom) / 2, "No turns", "empty"))
    parts.extend(_legend(left, height - 8))
    parts.append("</svg>")
    return "".join(parts)
