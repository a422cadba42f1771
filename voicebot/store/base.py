"""What every call store shares: the Protocol, the schema, the summary and the SQL.

The transcript files under `DATA_DIR/calls/` stay the source of truth; the store is an
index over them so QA can list and search calls without opening thousands of JSON
files, and so several servers can share one PostgreSQL. Both backends keep the same
logical schema and run the same DML (written with `?` placeholders; PostgreSQL's
backend swaps them for `%s`), so a query that works on a laptop's SQLite file works on
the shared server. Only the column types differ, and they are named in one place.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

#: Bump with a migration in both backends whenever the tables change.
SCHEMA_VERSION = 1


class StoreError(RuntimeError):
    """The store cannot be used (unreachable server, schema from a newer version)."""


class CallStore(Protocol):
    """An index of calls: written after every turn, read by QA tools."""

    def save_call(self, record: Mapping[str, Any], *, directory: str = "") -> None:
        """Upsert the call and replace its turns in one transaction (idempotent)."""

    def list_calls(
        self, *, limit: int = 50, offset: int = 0, since: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest calls first: the call columns and the summary, without turns."""

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        """One call: its columns, summary, full record and turns in order."""

    def close(self) -> None:
        """Release the connection."""


# ---------------------------------------------------------------- schema

#: Column types per backend; everything else about the schema is shared.
SQLITE_TYPES = {"json": "TEXT", "time": "TEXT", "bool": "INTEGER", "float": "REAL"}
POSTGRES_TYPES = {
    "json": "JSONB",
    "time": "TIMESTAMPTZ",
    "bool": "BOOLEAN",
    "float": "DOUBLE PRECISION",
}

_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS calls (
        call_id TEXT PRIMARY KEY,
        stream_id TEXT NOT NULL DEFAULT '',
        carrier TEXT NOT NULL DEFAULT '',
        account_id TEXT NOT NULL DEFAULT '',
        started_at {time},
        ended_s {float},
        end_reason TEXT NOT NULL DEFAULT '',
        directory TEXT NOT NULL DEFAULT '',
        summary {json} NOT NULL,
        record {json} NOT NULL,
        updated_at {time} NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS calls_started_at ON calls (started_at)",
    """CREATE TABLE IF NOT EXISTS turns (
        call_id TEXT NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        started_s {float},
        ended_s {float},
        caller_text TEXT NOT NULL DEFAULT '',
        intent TEXT,
        intent_confidence {float},
        sentiment {float},
        outcome TEXT NOT NULL DEFAULT '',
        bot_text TEXT NOT NULL DEFAULT '',
        heard_text TEXT NOT NULL DEFAULT '',
        barge_in {bool} NOT NULL,
        handoff {json},
        bot_started_s {float},
        bot_ended_s {float},
        timings {json} NOT NULL,
        PRIMARY KEY (call_id, idx)
    )""",
    "CREATE INDEX IF NOT EXISTS turns_intent ON turns (intent)",
)


def schema_ddl(types: Mapping[str, str]) -> list[str]:
    """The CREATE statements with one backend's column types filled in."""
    return [statement.format(**types) for statement in _DDL]


def check_schema_version(found: int | None) -> bool:
    """True when the version row must be written; refuses a schema newer than this code."""
    if found is not None and found > SCHEMA_VERSION:
        raise StoreError(
            f"the store's schema is version {found}, newer than this code's "
            f"{SCHEMA_VERSION}: upgrade voicebot before using it"
        )
    return found is None


# ---------------------------------------------------------------- shared SQL

CALL_COLUMNS = (
    "call_id",
    "stream_id",
    "carrier",
    "account_id",
    "started_at",
    "ended_s",
    "end_reason",
    "directory",
    "summary",
    "record",
    "updated_at",
)
LIST_COLUMNS = tuple(c for c in CALL_COLUMNS if c != "record")
TURN_COLUMNS = (
    "call_id",
    "idx",
    "started_s",
    "ended_s",
    "caller_text",
    "intent",
    "intent_confidence",
    "sentiment",
    "outcome",
    "bot_text",
    "heard_text",
    "barge_in",
    "handoff",
    "bot_started_s",
    "bot_ended_s",
    "timings",
)


#: Turns a Python value into what one backend's driver stores (JSON text, Jsonb, ...).
Encode = Callable[[Any], Any]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


SELECT_VERSION = "SELECT MAX(version) FROM schema_version"
INSERT_VERSION = "INSERT INTO schema_version (version) VALUES (?)"
UPSERT_CALL = (
    f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}) VALUES ({_marks(len(CALL_COLUMNS))}) "
    "ON CONFLICT (call_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in CALL_COLUMNS[1:])
)
DELETE_TURNS = "DELETE FROM turns WHERE call_id = ?"
INSERT_TURN = f"INSERT INTO turns ({', '.join(TURN_COLUMNS)}) VALUES ({_marks(len(TURN_COLUMNS))})"
SELECT_CALL = f"SELECT {', '.join(CALL_COLUMNS)} FROM calls WHERE call_id = ?"
SELECT_TURNS = f"SELECT {', '.join(TURN_COLUMNS[1:])} FROM turns WHERE call_id = ? ORDER BY idx"
_ORDER = "ORDER BY started_at DESC NULLS LAST, call_id DESC LIMIT ? OFFSET ?"
LIST_CALLS = f"SELECT {', '.join(LIST_COLUMNS)} FROM calls {_ORDER}"
LIST_CALLS_SINCE = f"SELECT {', '.join(LIST_COLUMNS)} FROM calls WHERE started_at >= ? {_ORDER}"


def list_query(
    limit: int, offset: int, since: str | None, encode_time: Encode
) -> tuple[str, list[Any]]:
    """The listing statement and its parameters (checked here so both backends agree)."""
    if limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must be >= 0 (got {limit}, {offset})")
    if since is None:
        return LIST_CALLS, [limit, offset]
    return LIST_CALLS_SINCE, [encode_time(since_time(since)), limit, offset]


# ---------------------------------------------------------------- values in and out


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 time as an aware UTC datetime (naive means UTC); None if unusable.

    Both backends store the normalised instant, so calls from servers in different
    time zones sort correctly and `since` compares instants, not strings.
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value.strip():
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def since_time(since: str) -> datetime:
    """`list_calls(since=...)` as an instant, with a clear error for a bad value."""
    parsed = parse_time(since)
    if parsed is None:
        raise ValueError(f"since must be an ISO-8601 time such as 2026-01-31T09:00Z, got {since!r}")
    return parsed


def time_text(value: datetime | None) -> str | None:
    """The one text form of an instant (sorts correctly as text, used by SQLite)."""
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")


def clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become null (JSONB rejects them), odd objects become text."""
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def call_params(
    record: Mapping[str, Any], directory: str, encode_json: Encode, encode_time: Encode
) -> list[Any]:
    """Parameters for UPSERT_CALL, in CALL_COLUMNS order."""
    call_id = record.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise ValueError(f"a call record needs a non-empty string call_id, got {call_id!r}")
    body = clean(record)
    return [
        call_id,
        str(record.get("stream_id") or ""),
        str(record.get("carrier") or ""),
        str(record.get("account_id") or ""),
        encode_time(parse_time(record.get("started_at"))),
        _number(record.get("ended_s")),
        str(record.get("end_reason") or ""),
        directory,
        encode_json(summarize(body)),
        encode_json(body),
        encode_time(datetime.now(UTC)),
    ]


def turn_params(
    record: Mapping[str, Any], encode_json: Encode, encode_bool: Encode = bool
) -> list[list[Any]]:
    """Parameters for INSERT_TURN, one list per turn, by index (a repeated index: last wins)."""
    by_index: dict[int, list[Any]] = {}
    for position, turn in enumerate(record.get("turns") or [], start=1):
        index = turn.get("index")
        idx = index if isinstance(index, int) and not isinstance(index, bool) else position
        handoff = turn.get("handoff")
        by_index[idx] = [
            record["call_id"],
            idx,
            _number(turn.get("started_s")),
            _number(turn.get("ended_s")),
            str(turn.get("caller_text") or ""),
            None if turn.get("intent") is None else str(turn["intent"]),
            _number(turn.get("intent_confidence")),
            _number(turn.get("sentiment")),
            str(turn.get("outcome") or ""),
            str(turn.get("bot_text") or ""),
            str(turn.get("heard_text") or ""),
            encode_bool(bool(turn.get("barge_in"))),
            None if handoff is None else encode_json(clean(handoff)),
            _number(turn.get("bot_started_s")),
            _number(turn.get("bot_ended_s")),
            encode_json(clean(turn.get("timings") or {})),
        ]
    return [by_index[i] for i in sorted(by_index)]


def _decoded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _time_out(value: Any) -> str | None:
    if isinstance(value, datetime):
        return time_text(value)
    return None if value is None else str(value)


def call_row(columns: Iterable[str], values: Iterable[Any]) -> dict[str, Any]:
    """A calls row as plain Python values, identical for both backends."""
    row = dict(zip(columns, values, strict=True))
    for key in ("started_at", "updated_at"):
        row[key] = _time_out(row[key])
    for key in ("summary", "record"):
        if key in row:
            row[key] = _decoded(row[key])
    return row


def assemble_call(
    row: Iterable[Any] | None, turns: Iterable[Iterable[Any]]
) -> dict[str, Any] | None:
    """`get_call`'s answer from the call row and its turn rows (None: no such call)."""
    if row is None:
        return None
    call = call_row(CALL_COLUMNS, row)
    call["turns"] = turn_rows(turns, call["record"])
    return call


def turn_rows(rows: Iterable[Iterable[Any]], record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Turns rows with TurnRecord's field names (`idx` is `index`), as in transcript.json.

    Fields a newer TurnRecord has and the table does not (yet) come from the stored
    record, so nothing the server saved is lost on the way back.
    """
    saved = {t.get("index"): t for t in record.get("turns") or [] if isinstance(t, Mapping)}
    turns = []
    for values in rows:
        row = dict(zip(("index", *TURN_COLUMNS[2:]), values, strict=True))
        row["barge_in"] = bool(row["barge_in"])
        row["handoff"] = _decoded(row["handoff"])
        row["timings"] = _decoded(row["timings"])
        turns.append({**saved.get(row["index"], {}), **row})
    return turns


# ---------------------------------------------------------------- summary


def latest_handoff(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The most recent handoff event of the call (turn-level or call-level)."""
    candidates = [t.get("handoff") for t in record.get("turns") or []]
    candidates.append(record.get("handoff"))
    latest: Mapping[str, Any] | None = None
    for handoff in candidates:
        if not isinstance(handoff, Mapping):
            continue
        # ">=": on a tie (or no times at all) the later entry wins.
        if latest is None or _at(handoff) >= _at(latest):
            latest = handoff
    return None if latest is None else dict(latest)


def _at(handoff: Mapping[str, Any]) -> float:
    return _number(handoff.get("at_s")) or 0.0


def summarize(record: Mapping[str, Any]) -> dict[str, Any]:
    """The numbers QA sorts and filters by, computed once when the call is saved."""
    turns = [t for t in record.get("turns") or [] if isinstance(t, Mapping)]
    prompts = [p for p in record.get("prompts") or [] if isinstance(p, Mapping)]
    sentiments = [s for s in (_number(t.get("sentiment")) for t in turns) if s is not None]
    v2v = [
        v
        for v in (_number((t.get("timings") or {}).get("voice_to_voice_ms")) for t in turns)
        if v is not None
    ]
    outcomes: dict[str, int] = {}
    for turn in turns:
        outcome = str(turn.get("outcome") or "")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    handoff = latest_handoff(record)
    return {
        "turns": len(turns),
        # Interrupted replies and interrupted prompts (a caller talking over the greeting).
        "barge_ins": sum(bool(x.get("barge_in")) for x in (*turns, *prompts)),
        "handoff": None if handoff is None else handoff.get("state"),
        "handoff_reason": None if handoff is None else handoff.get("reason"),
        "intents": [str(t["intent"]) for t in turns if t.get("intent")],
        "sentiment_mean": round(statistics.fmean(sentiments), 3) if sentiments else None,
        "sentiment_min": round(min(sentiments), 3) if sentiments else None,
        "voice_to_voice_ms_median": round(statistics.median(v2v), 1) if v2v else None,
        # None while the call is still going.
        "duration_s": _number(record.get("ended_s")),
        "outcomes": outcomes,
        "dtmf_keys": len(record.get("dtmf") or []),
    }


# ---------------------------------------------------------------- URLs

_PASSWORD_PARAM = re.compile(r"(password=)[^&#\s]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, safe for logs and error messages.

    Done by hand rather than with urlsplit so that even a malformed URL (an unescaped
    "/" or "@" in the password) never leaks part of the secret.
    """
    scheme, sep, rest = url.partition("://")
    if sep:
        query_at = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
        at = rest.rfind("@", 0, query_at)
        if at >= 0 and ":" in rest[:at]:
            rest = rest[:at].split(":", 1)[0] + ":***" + rest[at:]
        url = scheme + sep + rest
    return _PASSWORD_PARAM.sub(r"\1***", url)
