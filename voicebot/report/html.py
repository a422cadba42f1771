"""The QA replay report: one self-contained HTML page per replayed call.

QA replays recorded calls after every change and reads one page per call, often from a
ticket attachment or an offline laptop, so the page needs nothing but itself: inline
CSS, an inline script the page does not depend on, inline SVG charts and the turn clips
as base64 data URIs. Everything taken from a report is HTML-escaped (a caller can say
anything, and ASR can write "<script>"), and the page's Content-Security-Policy refuses
any network access and any script but its own, so even a missed escape cannot run.

Output is deterministic (no timestamps, stable ordering), so two runs' pages diff.
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from voicebot.report.data import (
    CALLER_FIELDS,
    CallReport,
    Comparison,
    Difference,
    Prompt,
    Turn,
    clock,
    ms,
    parse_report,
    signed,
    split_heard,
)
from voicebot.report.index import render_index
from voicebot.report.style import page
from voicebot.report.svg import STAGES, latency_chart, prompt_barge_in_at, sentiment_chart

__all__ = ["render_index", "render_report", "write_report"]

OUTCOMES = frozenset(
    {
        "answer",
        "confirm_intent",
        "clarify",
        "not_heard",
        "handoff_offer",
        "handoff_accepted",
        "handoff_declined",
        "transfer_failed",
        "hung_up",
        "closing",
        "dtmf",
        "apology",
        "greeting",
    }
)


def _e(value: str) -> str:
    return escape(value, quote=True)


def _mime(clip: bytes) -> str:
    """The clip's media type from its magic bytes (the replay writes WAV, but be honest)."""
    if clip[:4] == b"OggS":
        return "audio/ogg"
    if clip[:4] == b"fLaC":
        return "audio/flac"
    if clip[:3] == b"ID3" or clip[:2] in (b"\xff\xfb", b"\xff\xf3"):
        return "audio/mpeg"
    return "audio/wav"


def _audio(index: int, clip: bytes | None) -> str:
    if not clip:
        return '<span class="badge">no clip</span>'
    uri = f"data:{_mime(clip)};base64,{base64.b64encode(clip).decode('ascii')}"
    label = f"Play turn {index}: caller on the left channel, bot on the right"
    return (
        f'<audio controls preload="none" src="{uri}" aria-label="{_e(label)}" '
        f'title="{_e(label)}">Turn {index} audio (your browser cannot play WAV).</audio>'
    )


def _header(r: CallReport) -> str:
    s = r.summary
    stats = [
        ("Duration", clock(r.duration_s)),
        ("Turns", str(s.turns)),
        ("Barge-ins", str(s.barge_ins)),
        ("Handoffs", str(s.handoffs)),
        ("Median voice-to-voice", ms(s.voice_to_voice_ms_median)),
        ("Mean sentiment", signed(s.mean_sentiment)),
    ]
    cards = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in stats)
    intents = " ".join(f'<span class="badge intent">{_e(i)}</span>' for i in s.intents)
    outcomes = " ".join(
        f'<span class="badge o-{k if k in OUTCOMES else "other"}">{_e(k.replace("_", " "))} '
        f"×{n}</span>"
        for k, n in s.outcomes
    )
    return (
        '<header><p class="eyebrow">Call replay report</p>'
        f"<h1>{_e(r.input or r.call_id or 'Unnamed call')}</h1>"
        f'<p class="meta">Call ID <code>{_e(r.call_id or "—")}</code></p>'
        f'<dl class="stats">{cards}</dl>'
        f'<p class="intents">Intents: {intents or "none"}</p>'
        f'<p class="intents">Outcomes: {outcomes or "none"}</p></header>'
    )


def _banner(c: Comparison, turn_indexes: set[int]) -> str:
    kind = {True: "pass", False: "fail", None: "unknown"}[c.passed]
    headline = {
        "pass": "✓ Replay matches the original",
        "fail": "✗ Replay differs from the original",
        "unknown": "? Comparison inconclusive",
    }[kind]
    parts = [
        f'<section class="banner {kind}" role="status" aria-label="Comparison with the original">'
        f"<p><strong>{headline}</strong></p>"
        f"<p>Compared with <code>{_e(c.original or 'the original')}</code>"
    ]
    if c.rules_broken:
        parts.append(f" · rules broken: <b>{_e(', '.join(c.rules_broken))}</b>")
    parts.append(f" · {len(c.differences)} difference{'s' if len(c.differences) != 1 else ''}</p>")
    if c.differences:
        rows = []
        for d in c.differences:
            if d.turn is None:
                where = "call"
            elif d.turn in turn_indexes:
                where = f'<a href="#turn-{d.turn}">turn {d.turn}</a>'
            else:
                where = f"turn {d.turn} (not in replay)"
            rows.append(
                f"<tr><td>{where}</td><td><code>{_e(d.field)}</code></td>"
                f'<td><del class="was">{_e(d.original or "—")}</del></td>'
                f'<td><ins class="now">{_e(d.replayed or "—")}</ins></td></tr>'
            )
        parts.append(
            '<details open><summary>Differences</summary><div class="scroll"><table>'
            "<thead><tr><th>Where</th><th>Field</th><th>Original</th><th>Replayed</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div></details>"
        )
    parts.append("</section>")
    return "".join(parts)


def _latency_table(turns: Sequence[Turn]) -> str:
    head = "".join(f'<th class="num">{_e(label)}</th>' for _, label, _ in STAGES)
    rows = []
    for t in turns:
        cells = "".join(
            f'<td class="num">{_e(ms(getattr(t.timings, key)))}</td>' for key, _, _ in STAGES
        )
        v2v = ms(t.timings.voice_to_voice_ms)
        rows.append(f"<tr><td>Turn {t.index}</td>{cells}<td class='num'>{_e(v2v)}</td></tr>")
    return (
        '<details><summary>Latency table</summary><div class="scroll"><table>'
        f'<thead><tr><th>Turn</th>{head}<th class="num">Voice-to-voice</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div></details>"
    )


def _charts(r: CallReport) -> str:
    modelled = ""
    if r.modelled_latency_ms:
        stages = ", ".join(f"{name} {value:,.0f} ms" for name, value in r.modelled_latency_ms)
        modelled = f" Modelled by the replay, not measured: {_e(stages)}."
    return (
        '<section aria-labelledby="overview-h"><h2 id="overview-h">Overview</h2>'
        '<figure class="card"><figcaption><h3>Sentiment and speech over the call</h3>'
        '<p class="hint">Caller sentiment per turn (−1 to +1) above; who was speaking '
        "below; dashed lines mark barge-ins (⚡) and handoffs (☎). Click a point to jump "
        "to its turn.</p></figcaption>"
        f'<div class="scroll">{sentiment_chart(r)}</div></figure>'
        '<figure class="card"><figcaption><h3>Latency per turn by stage</h3>'
        '<p class="hint">Stacked stages; the black tick is the voice-to-voice time the '
        f"caller waited, the dashed line the call's median.{modelled}</p></figcaption>"
        f'<div class="scroll">{latency_chart(r)}</div>{_latency_table(r.turns)}</figure></section>'
    )


def _diff_list(diffs: Sequence[Difference]) -> str:
    if not diffs:
        return ""
    items = "".join(
        f'<li><span class="field">{_e(d.field)}</span>'
        f'original <del class="was">{_e(d.original or "—")}</del> → '
        f'replayed <ins class="now">{_e(d.replayed or "—")}</ins></li>'
        for d in diffs
    )
    return f'<ul class="diffs" aria-label="Differences from the original">{items}</ul>'


def _badges(t: Turn, changed: set[str]) -> str:
    def mark(*fields: str) -> str:
        return " changed" if changed.intersection(fields) else ""

    out = []
    if t.intent:
        conf = t.intent_confidence
        low = " low" if conf is not None and conf < 0.5 else ""
        pct = f'<span class="conf">{conf:.0%}</span>' if conf is not None else ""
        out.append(
            f'<span class="badge intent{low}{mark("intent", "intent_confidence")}" '
            f'title="Intent and confidence">{_e(t.intent)}{pct}</span>'
        )
    if t.outcome:
        cls = t.outcome if t.outcome in OUTCOMES else "other"
        out.append(
            f'<span class="badge o-{cls}{mark("outcome")}" title="Outcome">'
            f"{_e(t.outcome.replace('_', ' '))}</span>"
        )
    if t.sentiment is not None:
        mood = "neg" if t.sentiment < -0.3 else ("pos" if t.sentiment > 0.3 else "")
        out.append(
            f'<span class="badge {mood}{mark("sentiment")}" title="Caller sentiment, -1 to +1">'
            f"sentiment {signed(t.sentiment)}</span>"
        )
    return f'<div class="badges">{"".join(out)}</div>' if out else ""


def _said(bot_text: str, heard_text: str | None, barge_in: bool) -> str:
    """What the bot said, with the part the caller never heard struck through.

    An empty `heard_text` without a barge-in means "not tracked" (transcripts start it
    empty until the audio's marks come back), not "nothing heard".
    """
    if not bot_text and heard_text:
        bot_text = heard_text
    if not heard_text and not barge_in:
        heard_text = None
    heard, unheard, matched = split_heard(bot_text, heard_text)
    body = _e(heard)
    if unheard:
        body += f'<s class="unheard">{_e(unheard)}</s>'
    cls = "text" if bot_text else "text none"
    out = f'<p class="{cls}" data-field="bot_text">{body or "(nothing said)"}</p>'
    if unheard:
        why = "the caller barged in" if barge_in else "playback stopped"
        out += f'<p class="heard-note">Struck-through text was never heard: {why}.</p>'
    elif not matched:
        out += f'<p class="heard-note">Heard: {_e(heard_text or "")}</p>'
    return out


def _barge_flag(at: float | None) -> str:
    when = f" at {clock(at)}" if at is not None else ""
    return (
        '<span class="flag barge" role="note"><span aria-hidden="true">⚡ </span>'
        f"Barge-in{when}: the caller interrupted</span>"
    )


def _timings(t: Turn) -> str:
    if t.timings.empty:
        return ""
    rows = "".join(
        f"<dt>{_e(label)}</dt><dd>{_e(ms(getattr(t.timings, key)))}</dd>"
        for key, label, _ in STAGES
    )
    return (
        f'<details class="timings"><summary>Voice-to-voice {_e(ms(t.timings.voice_to_voice_ms))}'
        f"</summary><dl>{rows}</dl></details>"
    )


def _span(start: float | None, end: float | None) -> str:
    if start is None:
        return ""
    return f"{clock(start)}–{clock(end)}" if end is not None else clock(start)


def _turn(t: Turn, clip: bytes | None, diffs: Sequence[Difference]) -> str:
    caller_diffs = [d for d in diffs if d.field in CALLER_FIELDS]
    bot_diffs = [d for d in diffs if d.field not in CALLER_FIELDS]
    changed = {d.field for d in caller_diffs}
    caller_cls = "bubble caller has-diff" if caller_diffs else "bubble caller"
    said = (
        f'<p class="text" data-field="caller_text">{_e(t.caller_text)}</p>'
        if t.caller_text
        else '<p class="text none" data-field="caller_text">(nothing recognised)</p>'
    )
    caller = (
        f'<div class="{caller_cls}" role="group" aria-label="Caller, turn {t.index}">'
        f'<div class="who"><b>Caller</b><span>turn {t.index}</span>'
        f"<time>{_span(t.started_s, t.ended_s)}</time></div>{said}{_badges(t, changed)}"
        f"{_diff_list(caller_diffs)}"
        f'<div class="foot">{_audio(t.index, clip)}</div></div>'
    )
    flags = ""
    if t.barge_in:
        flags += _barge_flag(t.barge_in_at_s)
    if t.handoff is not None:
        h = t.handoff
        reason = f" — {_e(h.reason)}" if h.reason else ""
        when = f" at {clock(h.at_s)}" if h.at_s is not None else ""
        flags += (
            '<span class="flag handoff" role="note"><span aria-hidden="true">☎ </span>'
            f"Handoff {_e(h.state)}{when}{reason}</span>"
        )
    bot = ""
    if t.bot_text or t.heard_text or flags or bot_diffs or not t.timings.empty:
        bot_cls = "bubble bot has-diff" if bot_diffs else "bubble bot"
        bot = (
            f'<div class="{bot_cls}" role="group" aria-label="Bot, answer to turn {t.index}">'
            f'<div class="who"><b>Bot</b><time>{_span(t.bot_started_s, t.bot_ended_s)}</time></div>'
            f"{_said(t.bot_text, t.heard_text, t.barge_in)}<div>{flags}</div>"
            f"{_diff_list(bot_diffs)}{_timings(t)}</div>"
        )
    return (
        f'<article class="turn" id="turn-{t.index}" data-turn="{t.index}" '
        f'aria-label="Turn {t.index}">{caller}{bot}</article>'
    )


def _prompt(p: Prompt, number: int, turns: Sequence[Turn]) -> str:
    flag = _barge_flag(prompt_barge_in_at(p, turns)) if p.barge_in else ""
    kind = p.kind if p.kind in OUTCOMES else "other"
    return (
        f'<div class="prompt" id="prompt-{number}" data-prompt="{_e(p.kind)}">'
        f'<div class="bubble bot" role="group" aria-label="Bot prompt: {_e(p.kind)}">'
        f'<div class="who"><b>Bot</b><span class="badge o-{kind}">'
        f"{_e(p.kind)}</span><time>{clock(p.at_s) if p.at_s is not None else ''}</time></div>"
        f"{_said(p.bot_text, p.heard_text, p.barge_in)}<div>{flag}</div></div></div>"
    )


def _conversation(r: CallReport, clips: Mapping[int, bytes]) -> str:
    """Turns in order, with each prompt placed before the first turn that starts after it."""
    diffs: defaultdict[int, list[Difference]] = defaultdict(list)
    for d in r.comparison.differences if r.comparison else ():
        if d.turn is not None:
            diffs[d.turn].append(d)
    pending = sorted(
        enumerate(r.prompts, start=1),
        key=lambda ip: ip[1].at_s if ip[1].at_s is not None else float("inf"),
    )
    parts: list[str] = []
    for t in r.turns:
        while pending and t.started_s is not None and (pending[0][1].at_s or 0.0) <= t.started_s:
            number, p = pending.pop(0)
            parts.append(_prompt(p, number, r.turns))
        parts.append(_turn(t, clips.get(t.index), diffs.get(t.index, [])))
    parts.extend(_prompt(p, number, r.turns) for number, p in pending)
    if not parts:
        parts.append('<p class="text none">No turns or prompts in this call.</p>')
    return (
        '<section aria-labelledby="conv-h"><h2 id="conv-h">Conversation</h2>'
        f'<div class="conversation">{"".join(parts)}</div></section>'
    )


def render_report(
    report: Mapping[str, Any], clips: Mapping[int, bytes] | None = None, *, title: str | None = None
) -> str:
    """One replayed call as a self-contained HTML page (see the module docstring)."""
    r = parse_report(report)
    page_title = title or f"Call replay · {r.input or r.call_id or 'call'}"
    body = _header(r)
    if r.comparison is not None:
        body += _banner(r.comparison, {t.index for t in r.turns})
    body += _charts(r) + _conversation(r, clips or {})
    body += "<footer>Self-contained replay report: no network, clips embedded.</footer>"
    return page(page_title, body, script=True)


def _atomic_write(path: Path, content: str) -> None:
    """Write via a temp file in the same folder + rename: readers never see half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp makes the file private (0600); a report is meant to be shared and served.
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(
    path: Path,
    report: Mapping[str, Any],
    clips: Mapping[int, bytes] | None = None,
    *,
    title: str | None = None,
) -> None:
    """Render and write a call's page atomically (a crashed replay leaves the old page)."""
    _atomic_write(Path(path), render_report(report, clips, title=title))
