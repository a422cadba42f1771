"""The call store, the same suite against SQLite and a real PostgreSQL server.

PostgreSQL cases run when VOICEBOT_TEST_POSTGRES_URL names a server (`.ci/postgres.sh`
prints one); without it they are skipped, unless VOICEBOT_REQUIRE_POSTGRES=1 (as in
CI), where a missing server must fail rather than pass silently. Each PostgreSQL test
gets its own fresh schema (dropped afterwards), so runs never see each other's rows.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from voicebot.store import StoreError, format_call, format_table, open_store, summarize
from voicebot.transcript import CallRecord, PromptRecord, TurnRecord

POSTGRES_ENV = "VOICEBOT_TEST_POSTGRES_URL"
REQUIRE_ENV = "VOICEBOT_REQUIRE_POSTGRES"

HOSTILE_IDS = [
    "'; DROP TABLE calls; --",
    'x"); DELETE FROM turns; --',
    "%s %(name)s ? :1 $1 \\",
    "line\nbreak\tand\x1b[31mescape",
    "通话-☎-ünïcødé",
]

INTENTS = ["card_arrival", "lost_or_stolen_card", "transfer_fee_charged", "top_up_failed"]


def make_record(
    call_id: str = "CA0123456789abcdef0123456789abcdef",
    *,
    turns: int = 3,
    started_at: str = "2026-03-02T09:15:00.250+00:00",
    ended: bool = True,
    tag: str = "",
) -> dict[str, Any]:
    """A realistic finished (or ongoing) call, as the server hands it to the store."""
    said = f"Cards arrive within five working days.{tag}"
    records = [
        TurnRecord(
            index=i,
            started_s=2.0 + 6.0 * (i - 1),
            ended_s=4.4 + 6.0 * (i - 1),
            caller_text=f"My card hasn't arrived yet, turn {i}{tag}",
            intent=INTENTS[(i - 1) % len(INTENTS)],
            intent_confidence=0.9 - 0.1 * (i % 3),
            sentiment=round(0.3 - 0.2 * i, 3),
            outcome="answer" if i % 3 else "clarify",
            bot_text=said,
            heard_text="Cards arrive" if i == 2 else said,  # turn 2 was interrupted
            barge_in=i == 2,
            bot_started_s=5.3 + 6.0 * (i - 1),
            bot_ended_s=6.1 + 6.0 * (i - 1),
            handoff={"state": "offered", "reason": "upset", "at_s": 6.0 * i - 1.5}
            if i == turns >= 3
            else None,
            timings={
                "asr_ms": 480.0 + i,
                "dialogue_ms": 25.5,
                "tts_first_audio_ms": 230.0,
                "voice_to_voice_ms": 900.0 + 100 * i,
            },
        )
        for i in range(1, turns + 1)
    ]
    record = CallRecord(
        call_id=call_id,
        stream_id="MZ" + "0" * 32,
        carrier="twilio",
        account_id="AC" + "1" * 32,
        custom_parameters={"From": "+447700900123", "To": "+441234567890"},
        started_at=started_at,
        ended_s=round(6.0 * turns + 3.0, 3) if ended else None,
        end_reason="stop" if ended else "",
        prompts=[PromptRecord("greeting", 0.002, "Thank you for calling Northbridge Bank.")],
        turns=records,
        dtmf=[{"digit": "1", "at_s": 1.5}],
        handoff=records[-1].handoff if records else None,
    )
    return asdict(record)


def postgres_url_or_skip() -> str:
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if url:
        return url
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {POSTGRES_ENV} is not set (run .ci/postgres.sh)")
    pytest.skip(f"no PostgreSQL server: set {POSTGRES_ENV} (the URL .ci/postgres.sh prints)")


@pytest.fixture
def pg_url():
    """A fresh schema on the test server, as a URL whose search_path points at it."""
    import psycopg
    from psycopg import sql

    server = postgres_url_or_skip()
    schema = f"voicebot_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True, connect_timeout=10) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    joiner = "&" if "?" in server else "?"
    yield f"{server}{joiner}options=-csearch_path%3D{schema}"
    with psycopg.connect(server, autocommit=True, connect_timeout=10) as admin:
        admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/calls.db"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def open_(store_url, tmp_path):
    """Opens stores on the test database; closes them all at the end."""
    opened = []

    def opener():
        store = open_store(store_url, tmp_path)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()


@pytest.fixture
def store(open_):
    return open_()


def execute_raw(url: str, statement: str) -> None:
    """Run SQL on the test database behind the store's back."""
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite://")) as db:
            db.execute(statement)
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


def test_round_trip(store):
    record = make_record()
    store.save_call(record, directory="data/calls/CA0123")
    call = store.get_call(record["call_id"])
    assert call is not None
    assert call["record"] == record
    assert call["turns"] == record["turns"]
    assert call["summary"] == summarize(record)
    assert call["directory"] == "data/calls/CA0123"
    assert call["carrier"] == "twilio"
    assert call["ended_s"] == record["ended_s"]
    assert call["started_at"] == "2026-03-02T09:15:00.250000+00:00"
    (row,) = store.list_calls()
    assert "record" not in row and "turns" not in row
    assert row["summary"]["turns"] == 3
    assert store.get_call("CA-no-such-call") is None


def test_save_is_idempotent_and_upsert_replaces_turns(store):
    call_id = "CA-growing"
    for n in range(1, 6):  # saved after every turn while the call goes on
        store.save_call(make_record(call_id, turns=n, ended=False))
        store.save_call(make_record(call_id, turns=n, ended=False))
    assert [t["index"] for t in store.get_call(call_id)["turns"]] == [1, 2, 3, 4, 5]
    final = make_record(call_id, turns=2, tag=" (final)")
    store.save_call(final)
    call = store.get_call(call_id)
    assert call["turns"] == final["turns"]
    assert call["end_reason"] == "stop"
    assert len(store.list_calls()) == 1


def test_listing_is_newest_first_with_limit_offset_and_since(store):
    starts = {
        "CA-a": "2026-03-01T08:00:00+00:00",
        "CA-b": "2026-03-01T12:30:00+02:00",  # 10:30 UTC: an instant, not a string
        "CA-c": "2026-03-01T11:00:00Z",
        "CA-d": "2026-03-01T09:00:00",  # naive: taken as UTC
        "CA-e": "",  # never started properly: listed last
    }
    for call_id, started_at in starts.items():
        store.save_call(make_record(call_id, started_at=started_at))
    order = [r["call_id"] for r in store.list_calls()]
    assert order == ["CA-c", "CA-b", "CA-d", "CA-a", "CA-e"]
    assert [r["call_id"] for r in store.list_calls(limit=2)] == ["CA-c", "CA-b"]
    assert [r["call_id"] for r in store.list_calls(limit=2, offset=2)] == ["CA-d", "CA-a"]
    assert store.list_calls(offset=10) == []
    since = store.list_calls(since="2026-03-01T10:30:00+00:00")
    assert [r["call_id"] for r in since] == ["CA-c", "CA-b"]
    with pytest.raises(ValueError, match="since"):
        store.list_calls(since="yesterday")
    with pytest.raises(ValueError):
        store.list_calls(limit=-1)


def test_summary_numbers(store):
    record = make_record(turns=4)
    record["turns"][3]["handoff"] = {"state": "declined", "reason": "upset", "at_s": 30.0}
    record["turns"][0]["timings"].pop("voice_to_voice_ms")  # a turn cut short
    record["prompts"][0]["barge_in"] = True
    summary = summarize(record)
    assert summary["turns"] == 4
    assert summary["barge_ins"] == 2  # turn 2 and the greeting
    assert summary["handoff"] == "declined" and summary["handoff_reason"] == "upset"
    assert summary["intents"] == INTENTS
    assert summary["sentiment_mean"] == pytest.approx((0.1 - 0.1 - 0.3 - 0.5) / 4, abs=1e-3)
    assert summary["sentiment_min"] == -0.5
    assert summary["voice_to_voice_ms_median"] == 1200.0  # of 1100, 1200, 1300
    assert summary["duration_s"] == 27.0
    assert summary["outcomes"] == {"answer": 3, "clarify": 1}
    assert summary["dtmf_keys"] == 1
    store.save_call(record)
    assert store.list_calls()[0]["summary"] == summary

    empty = summarize(make_record(turns=0, ended=False))
    assert empty["turns"] == 0 and empty["intents"] == [] and empty["handoff"] is None
    assert empty["sentiment_mean"] is None and empty["voice_to_voice_ms_median"] is None
    assert empty["duration_s"] is None


def test_hostile_call_ids_are_stored_verbatim_and_harmless(store):
    for call_id in HOSTILE_IDS:
        store.save_call(make_record(call_id))
    assert sorted(r["call_id"] for r in store.list_calls()) == sorted(HOSTILE_IDS)
    for call_id in HOSTILE_IDS:
        call = store.get_call(call_id)
        assert call is not None and call["call_id"] == call_id
        assert len(call["turns"]) == 3
    table = format_table(store.list_calls())
    assert len(table.splitlines()) == len(HOSTILE_IDS) + 1  # control characters escaped
    assert "\x1b" not in table and "\\x1b" in table


def test_unicode_and_odd_values_round_trip(store):
    record = make_record("CA-odd")
    record["turns"][0]["caller_text"] = "Ma carte est bloquée 😡 — 我的卡被锁了 — בנק"
    record["turns"][0]["bot_text"] = "I'm sorry. The fee is £2.50 (€3)."
    record["custom_parameters"]["name"] = "Zoë Ångström"
    record["turns"][1]["sentiment"] = float("nan")  # JSONB refuses NaN: stored as null
    record["turns"][2]["timings"]["asr_ms"] = float("inf")
    record["turns"][2]["added_later"] = {"by": "a newer TurnRecord"}  # not a column
    store.save_call(record)
    call = store.get_call("CA-odd")
    for key in ("caller_text", "bot_text"):
        assert call["turns"][0][key] == record["turns"][0][key]
    assert call["record"]["custom_parameters"]["name"] == "Zoë Ångström"
    assert call["turns"][1]["sentiment"] is None
    assert call["turns"][2]["timings"]["asr_ms"] is None
    assert call["summary"]["sentiment_min"] == -0.3  # of the two finite values
    assert call["turns"][2]["added_later"] == {"by": "a newer TurnRecord"}
    with pytest.raises(ValueError, match="call_id"):
        store.save_call({"call_id": "", "turns": []})


def test_concurrent_saves_from_threads_and_two_stores(open_):
    """Two stores (two servers), four threads each; every call lands complete."""
    first, second = open_(), open_()
    errors: list[BaseException] = []

    def worker(store, prefix: str) -> None:
        try:
            for n in range(6):
                call_id = f"{prefix}-{n}"
                for turns in range(1, 5):
                    store.save_call(make_record(call_id, turns=turns, ended=turns == 4))
                store.save_call(make_record("CA-shared", turns=4, tag=f" {prefix}"))
        except BaseException as exc:  # collected, so a failure is not lost in a thread
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=(store, f"{name}{i}"))
        for name, store in (("a", first), ("b", second))
        for i in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    rows = first.list_calls(limit=1000)
    assert len(rows) == 8 * 6 + 1
    for row in rows:
        call = second.get_call(row["call_id"])
        assert [t["index"] for t in call["turns"]] == [1, 2, 3, 4]
        # The turns and the stored record are always one and the same version.
        assert call["turns"] == call["record"]["turns"]


def test_latest_save_wins_across_stores(open_):
    first, second = open_(), open_()
    first.save_call(make_record("CA-1", turns=2, ended=False, tag=" v1"))
    second.save_call(make_record("CA-1", turns=4, tag=" v2"))
    call = first.get_call("CA-1")
    assert len(call["turns"]) == 4 and call["turns"][0]["caller_text"].endswith(" v2")
    first.save_call(make_record("CA-1", turns=3, tag=" v3"))
    assert second.get_call("CA-1")["turns"][2]["bot_text"].endswith(" v3")


def test_reopening_keeps_data_and_refuses_a_newer_schema(store, open_, store_url):
    store.save_call(make_record("CA-kept"))
    store.close()
    assert open_().get_call("CA-kept") is not None
    execute_raw(store_url, "INSERT INTO schema_version (version) VALUES (999)")
    with pytest.raises(StoreError, match="999"):
        open_()


def test_formatting_shows_the_key_fields(store):
    record = make_record("CA-format", turns=3)
    store.save_call(record)
    table = format_table(store.list_calls())
    header, line = table.splitlines()
    for word in ("CALL ID", "STARTED", "DURATION", "TURNS", "INTENTS", "HANDOFF", "END"):
        assert word in header
    for value in ("CA-format", "2026-03-02 09:15:00", "21.0s", "card_arrival", "offered", "stop"):
        assert value in line
    text = format_call(store.get_call("CA-format"))
    for value in (
        "CA-format",
        "twilio",
        "Turn 1",
        "Turn 3  14.00-16.40 s, bot audible 17.30-18.10 s",
        "My card hasn't arrived yet, turn 2",
        "lost_or_stolen_card (0.70)",
        "outcome clarify",
        "heard:   Cards arrive\n",  # turn 2 was cut off: what was heard is shown
        "BARGE-IN",
        "HANDOFF offered (upset)",
        "asr 482 ms, dialogue 26 ms, tts_first_audio 230 ms, voice_to_voice 1100 ms",
    ):
        assert value in text
    assert text.count("heard:") == 1  # only where it differs from what was said
    assert format_table([]) == "(no calls)"


def test_default_and_sqlite_urls(tmp_path):
    for url, path in (
        ("", tmp_path / "calls.db"),
        ("sqlite:rel/index.db", tmp_path / "rel" / "index.db"),
        (f"sqlite:///{tmp_path}/abs.db", tmp_path / "abs.db"),
    ):
        store = open_store(url, tmp_path)
        store.save_call(make_record())
        store.close()
        assert path.exists(), url
    memory = open_store("sqlite::memory:", tmp_path)
    memory.save_call(make_record())
    assert len(memory.list_calls()) == 1
    memory.close()


@pytest.mark.parametrize(
    ("url", "error", "match"),
    [
        ("mysql://root:hunter2secret@db/calls", ValueError, "unknown store URL scheme 'mysql'"),
        ("calls.db", ValueError, "no scheme"),
        ("sqlite://somehost/calls.db", ValueError, "bad SQLite URL"),
        ("sqlite:", ValueError, "names no file"),
        ("postgresql://voicebot:hunter2secret@db:notaport/calls", ValueError, "bad PostgreSQL"),
        ("postgresql://voicebot:hunter2secret@db/calls?bogus=1", ValueError, "bad PostgreSQL"),
        # Port 1 on 127.0.0.1 refuses at once: no server needed.
        ("postgresql://voicebot:hunter2secret@127.0.0.1:1/x", StoreError, "cannot connect"),
    ],
)
def test_bad_urls_are_clear_errors_without_the_password(url, error, match, tmp_path):
    with pytest.raises(error, match=match) as caught:
        open_store(url, tmp_path)
    assert "hunter2secret" not in str(caught.value)


def test_postgres_reconnects_then_fails_fast_while_the_server_is_gone(pg_url, tmp_path):
    import psycopg

    def drop_connection(store) -> None:  # reaches in to kill exactly this store's backend
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (store._conn.info.backend_pid,))

    store = open_store(pg_url, tmp_path)
    try:
        store.save_call(make_record("CA-before"))
        drop_connection(store)
        store.save_call(make_record("CA-after"))  # reconnected once, transparently
        assert {r["call_id"] for r in store.list_calls()} == {"CA-before", "CA-after"}
        drop_connection(store)
        store._url = "postgresql://voicebot:hunter2secret@127.0.0.1:1/gone"  # now unreachable
        with pytest.raises(StoreError, match="cannot connect") as caught:
            store.save_call(make_record("CA-lost"))
        with pytest.raises(StoreError, match="unavailable"):  # no second wait for a timeout
            store.save_call(make_record("CA-lost"))
        assert "hunter2secret" not in str(caught.value)
    finally:
        store.close()


def test_sqlite_users_never_load_psycopg(tmp_path):
    code = (
        "import sys; from pathlib import Path; from voicebot.store import open_store; "
        f"s = open_store('', Path({str(tmp_path)!r})); s.list_calls(); s.close(); "
        "assert 'psycopg' not in sys.modules, 'psycopg was imported'"
    )
    root = Path(__file__).resolve().parents[3]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=60)
