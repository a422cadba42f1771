"""The default call store: one SQLite file (DATA_DIR/calls.db), stdlib only.

One connection guarded by a lock: calls save from worker threads, and SQLite
serialises writers anyway, so a pool would only add contention. WAL mode lets QA tools
in other processes read while the server writes; `busy_timeout` makes a second
writing process (say a replay job) wait for the lock instead of failing at once.
`synchronous=NORMAL` is durable across crashes of the process (the index may lose the
last save on power loss, and the transcript file, which is fsynced, still has it).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from voicebot.store import base

#: How long a write waits for another process holding the database lock.
BUSY_TIMEOUT_MS = 5_000


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@contextmanager
def _errors(action: str, path: str) -> Iterator[None]:
    """sqlite3 errors as StoreError, the one failure type callers of any store catch."""
    try:
        yield
    except sqlite3.Error as exc:
        raise base.StoreError(f"{action} {path}: {exc}") from exc


class SqliteCallStore:
    """A CallStore in a SQLite file (or ":memory:")."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with _errors("cannot open", self.path):
            # isolation_level=None: no implicit transactions; every write says BEGIN itself.
            self._db = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("PRAGMA foreign_keys=ON")
                self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS:d}")
                self._create_schema()
            except BaseException:
                self._db.close()
                raise

    @contextmanager
    def _transaction(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """One transaction; IMMEDIATE takes the write lock up front, so two writers
        (threads or processes) queue on busy_timeout instead of failing on upgrade."""
        self._db.execute(begin)
        try:
            yield self._db
        except BaseException:
            if self._db.in_transaction:  # some errors have rolled back already
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _create_schema(self) -> None:
        with self._lock, self._transaction() as db:
            for statement in base.schema_ddl(base.SQLITE_TYPES):
                db.execute(statement)
            (found,) = db.execute(base.SELECT_VERSION).fetchone()
            if base.check_schema_version(found):
                db.execute(base.INSERT_VERSION, (base.SCHEMA_VERSION,))

    def save_call(self, record: Mapping[str, Any], *, directory: str = "") -> None:
        """Upsert the call row and replace its turns, atomically."""
        call = base.call_params(record, directory, _json, base.time_text)
        turns = base.turn_params(record, _json, int)
        with self._lock, _errors("cannot save to", self.path), self._transaction() as db:
            db.execute(base.UPSERT_CALL, call)
            db.execute(base.DELETE_TURNS, (call[0],))
            db.executemany(base.INSERT_TURN, turns)

    def list_calls(
        self, *, limit: int = 50, offset: int = 0, since: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first; the summary but not the record or turns."""
        sql, params = base.list_query(limit, offset, since, base.time_text)
        with self._lock, _errors("cannot read", self.path):
            rows = self._db.execute(sql, params).fetchall()
        return [base.call_row(base.LIST_COLUMNS, row) for row in rows]

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        """The call row, its summary and record, and its turns in order."""
        # One read transaction, so the turns match the call row even mid-save.
        with self._lock, _errors("cannot read", self.path), self._transaction("BEGIN") as db:
            row = db.execute(base.SELECT_CALL, (call_id,)).fetchone()
            turns = db.execute(base.SELECT_TURNS, (call_id,)).fetchall()
        return base.assemble_call(row, turns)

    def close(self) -> None:
        """Close the connection (idempotent); a WAL checkpoint happens on the last close."""
        with self._lock:
            self._db.close()
