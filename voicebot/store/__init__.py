"""The call store: an index of every call for QA, in SQLite by default or PostgreSQL.

`open_store(config.store.url, data_dir)` picks the backend from the URL; the server
calls `save_call(asdict(record), directory=...)` after every turn and at the end of the
call, and `voicebot calls list/show` read it back through `list_calls`/`get_call` and
print with `format_table`/`format_call`. The transcript files remain the source of
truth; the store can be rebuilt from them.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from voicebot.store.base import CallStore, StoreError, redact_url, summarize

__all__ = [
    "CallStore",
    "StoreError",
    "format_call",
    "format_table",
    "open_store",
    "redact_url",
    "summarize",
]

_HINT = "use sqlite:///abs/path.db, sqlite:relative.db or postgresql://user:pass@host:port/db"


def _sqlite_path(url: str, rest: str, data_dir: Path) -> str:
    """`sqlite:///abs.db` -> /abs.db; `sqlite:rel.db` -> DATA_DIR/rel.db (like the default)."""
    if rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        if authority or not slash:
            raise ValueError(f"bad SQLite URL {redact_url(url)!r}: {_HINT}")
        rest = "/" + path
    if "?" in rest or "#" in rest:
        raise ValueError(f"SQLite URL {redact_url(url)!r} takes no options: {_HINT}")
    path = unquote(rest)
    if path == ":memory:":
        return path
    if not path.strip("/"):
        raise ValueError(f"SQLite URL {redact_url(url)!r} names no file: {_HINT}")
    return str(Path(path) if Path(path).is_absolute() else data_dir / path)


def open_store(url: str, data_dir: Path) -> CallStore:
    """The store a URL names ("" = SQLite at DATA_DIR/calls.db); ValueError if malformed.

    Connection problems raise StoreError. Messages never contain the password.
    """
    url = url.strip()
    if not url:
        from voicebot.store.sqlite import SqliteCallStore

        return SqliteCallStore(Path(data_dir) / "calls.db")
    scheme, sep, rest = url.partition(":")
    scheme = scheme.lower()
    if not sep or not scheme:
        raise ValueError(f"store URL {redact_url(url)!r} has no scheme: {_HINT}")
    if scheme == "sqlite":
        from voicebot.store.sqlite import SqliteCallStore

        return SqliteCallStore(_sqlite_path(url, rest, Path(data_dir)))
    if scheme in ("postgresql", "postgres"):
        from voicebot.store.postgres import PostgresCallStore, check_url

        check_url(url)
        return PostgresCallStore(url)
    raise ValueError(f"unknown store URL scheme {scheme!r} in {redact_url(url)!r}: {_HINT}")


# ---------------------------------------------------------------- display


def _show(value: Any) -> str:
    """Text safe for a terminal: control characters (from carrier ids) are escaped."""
    text = "" if value is None else str(value)
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _started(value: Any) -> str:
    from voicebot.store.base import parse_time

    when = parse_time(value)
    return "-" if when is None else when.strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:.1f}s"


def _summary(call: Mapping[str, Any]) -> dict[str, Any]:
    summary = call.get("summary")
    if isinstance(summary, Mapping):
        return dict(summary)
    return summarize(call.get("record") or call)


def _intents(intents: list[str]) -> str:
    """In order, with a repeated intent shown once per run of turns."""
    shown = [i for n, i in enumerate(intents) if n == 0 or intents[n - 1] != i]
    return ", ".join(shown) or "-"


_COLUMNS = (  # header, width cap
    ("CALL ID", 36),
    ("STARTED (UTC)", 19),
    ("DURATION", 8),
    ("TURNS", 5),
    ("INTENTS", 44),
    ("HANDOFF", 10),
    ("END", 24),
)


def format_table(rows: list[dict[str, Any]]) -> str:
    """`voicebot calls list`: one fixed-width line per call, newest first as given."""
    if not rows:
        return "(no calls)"
    table = []
    for row in rows:
        summary = _summary(row)
        cells = (
            _show(row.get("call_id")),
            _started(row.get("started_at")),
            _seconds(summary.get("duration_s")),
            str(summary.get("turns", 0)),
            _show(_intents(list(summary.get("intents") or []))),
            _show(summary.get("handoff") or "-"),
            _show(row.get("end_reason") or ("live" if summary.get("duration_s") is None else "-")),
        )
        table.append([_cut(c, cap) for c, (_, cap) in zip(cells, _COLUMNS, strict=True)])
    headers = [h for h, _ in _COLUMNS]
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(headers)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()
        for cells in (headers, *table)
    ]
    return "\n".join(lines)


def _wrapped(label: str, text: str, width: int = 100) -> list[str]:
    lead = f"  {label + ':':<9}"
    if not text:
        return [lead + "(nothing)"]
    return textwrap.wrap(
        _show(text), width, initial_indent=lead, subsequent_indent=" " * len(lead)
    ) or [lead]


_STAGES = ("asr_ms", "dialogue_ms", "tts_first_audio_ms", "voice_to_voice_ms")


def _ms(value: Any) -> str:
    return f"{value:.0f} ms" if isinstance(value, int | float) else _show(value)


def _turn_block(turn: Mapping[str, Any]) -> list[str]:
    started, ended = turn.get("started_s"), turn.get("ended_s")
    span = (
        f"{started:.2f}-{ended:.2f} s"
        if isinstance(started, float | int) and isinstance(ended, float | int)
        else ""
    )
    bot_start, bot_end = turn.get("bot_started_s"), turn.get("bot_ended_s")
    if isinstance(bot_start, float | int):
        end = f"{bot_end:.2f}" if isinstance(bot_end, float | int) else "..."
        span += f", bot audible {bot_start:.2f}-{end} s"
    lines = [f"Turn {turn.get('index')}  {span}".rstrip()]
    lines += _wrapped("caller", str(turn.get("caller_text") or ""))
    confidence = turn.get("intent_confidence")
    intent = _show(turn.get("intent") or "-")
    if isinstance(confidence, int | float):
        intent += f" ({confidence:.2f})"
    sentiment = turn.get("sentiment")
    feeling = f"{sentiment:+.2f}" if isinstance(sentiment, int | float) else "-"
    lines.append(
        f"  {'intent:':<9}{intent}   sentiment {feeling}   outcome {_show(turn.get('outcome'))}"
    )
    bot, heard = str(turn.get("bot_text") or ""), str(turn.get("heard_text") or "")
    lines += _wrapped("bot", bot)
    if heard != bot:
        lines += _wrapped("heard", heard)
    flags = []
    if turn.get("barge_in"):
        flags.append("BARGE-IN")
    handoff = turn.get("handoff")
    if isinstance(handoff, Mapping):
        flags.append(f"HANDOFF {_show(handoff.get('state'))} ({_show(handoff.get('reason'))})")
    if flags:
        lines.append(f"  {'flags:':<9}{', '.join(flags)}")
    timings = turn.get("timings") or {}
    if timings:
        # Pipeline order (JSONB does not keep key order, so both backends print alike).
        keys = sorted(timings, key=lambda k: (_STAGES.index(k) if k in _STAGES else 99, k))
        shown = ", ".join(f"{_show(k).removesuffix('_ms')} {_ms(timings[k])}" for k in keys)
        lines.append(f"  {'timings:':<9}{shown}")
    return lines


def format_call(call: dict[str, Any]) -> str:
    """`voicebot calls show ID`: the call's header, then one block per turn."""
    summary = _summary(call)
    record = call.get("record") or {}
    handoff = summary.get("handoff")
    reason = summary.get("handoff_reason")
    mean, low = summary.get("sentiment_mean"), summary.get("sentiment_min")
    v2v = summary.get("voice_to_voice_ms_median")
    outcomes = summary.get("outcomes") or {}
    lines = [
        f"Call {_show(call.get('call_id'))}  ({_show(call.get('carrier') or '?')})",
        f"  stream {_show(call.get('stream_id') or '-')}, account "
        f"{_show(call.get('account_id') or '-')}",
        f"  started {_started(call.get('started_at'))} UTC, duration "
        f"{_seconds(summary.get('duration_s'))}, end: {_show(call.get('end_reason') or '-')}",
        f"  turns {summary.get('turns', 0)}, barge-ins {summary.get('barge_ins', 0)}, handoff "
        + (f"{_show(handoff)} ({_show(reason)})" if handoff else "none"),
        "  sentiment "
        + (f"mean {mean:+.2f}, min {low:+.2f}" if mean is not None and low is not None else "-")
        + ", voice-to-voice median "
        + (f"{v2v:.0f} ms" if v2v is not None else "-"),
        "  outcomes " + (", ".join(f"{_show(k or '-')} {v}" for k, v in outcomes.items()) or "-"),
    ]
    parameters = record.get("custom_parameters") or {}
    if parameters:
        lines.append(
            "  parameters " + ", ".join(f"{_show(k)}={_show(v)}" for k, v in parameters.items())
        )
    if call.get("directory"):
        lines.append(f"  directory {_show(call['directory'])}")
    for turn in call.get("turns") or record.get("turns") or []:
        lines.append("")
        lines += _turn_block(turn)
    return "\n".join(lines)
