"""The shared call store: PostgreSQL through psycopg 3 (sync API).

Several servers point at one database. Each store object holds one autocommit
connection guarded by a lock; every save is one explicit transaction (upsert the call
row, delete its turns, insert the new ones). The upsert takes the call row's lock first,
so two servers saving the same call serialise on that row and the later commit wins
whole; saves of different calls never wait for each other. A connection the server
dropped (restart, failover, idle timeout) is replaced once and the operation retried,
which is safe because every operation is idempotent.

psycopg is imported when a store is opened, never at package import, so SQLite users
do not load it at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from voicebot.store import base

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")

#: Key of the advisory lock that serialises schema creation across servers starting at once.
_SCHEMA_LOCK = 0x766F6963  # "voic"
# Saves run on the server's one I/O thread, behind the transcript files: a database
# that is down or unreachable must cost seconds, once, not stall every call's writes.
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 5_000
#: After a failed connection attempt, operations fail at once for this long.
RETRY_AFTER_S = 5.0
#: libpq settings (unless the URL sets them) so a silently vanished server is noticed:
#: keepalives for an idle or waiting connection, tcp_user_timeout for unacked sends.
_NETWORK_DEFAULTS = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
    "application_name": "voicebot",
}


def _pg(sql: str) -> str:
    """The shared `?` placeholders as psycopg's `%s` (the shared SQL has no other ? or %)."""
    return sql.replace("?", "%s")


_UPSERT_CALL = _pg(base.UPSERT_CALL)
_DELETE_TURNS = _pg(base.DELETE_TURNS)
_INSERT_TURN = _pg(base.INSERT_TURN)
_SELECT_CALL = _pg(base.SELECT_CALL)
_SELECT_TURNS = _pg(base.SELECT_TURNS)
_INSERT_VERSION = _pg(base.INSERT_VERSION)


def _same(value: Any) -> Any:
    return value


def check_url(url: str) -> None:
    """Reject a PostgreSQL URL libpq cannot parse, before any connection attempt."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    redacted = base.redact_url(url)
    try:
        parts = urlsplit(url)
        password = parts.password or ""
        _ = parts.port  # a non-numeric or out-of-range port raises here
    except ValueError as exc:
        raise ValueError(f"bad PostgreSQL URL {redacted}: {exc}") from None
    try:
        conninfo_to_dict(url)
    except psycopg.Error as exc:
        text = str(exc).replace(password, "***") if password else str(exc)
        raise ValueError(f"bad PostgreSQL URL {redacted}: {text}") from None


class PostgresCallStore:
    """A CallStore in a PostgreSQL database, shareable by many servers."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: int = CONNECT_TIMEOUT_S,
        statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
    ) -> None:
        from psycopg.conninfo import conninfo_to_dict

        self._url = url
        self._redacted = base.redact_url(url)
        info = conninfo_to_dict(url)
        self._password = str(info.get("password") or "")
        self._extra: dict[str, Any] = {"connect_timeout": connect_timeout_s}
        self._extra.update({k: v for k, v in _NETWORK_DEFAULTS.items() if k not in info})
        self._statement_timeout_ms = statement_timeout_ms
        self._retry_at = 0.0
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        with self._lock:
            self._conn = self._connect()
        try:
            self._run(self._create_schema)
        except BaseException:
            self.close()
            raise

    def _error(self, action: str, exc: Exception) -> base.StoreError:
        """A StoreError naming the server but never the password."""
        text = str(exc).strip()
        if self._password:
            text = text.replace(self._password, "***")
        return base.StoreError(f"{action} {self._redacted}: {text}")

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        wait = self._retry_at - time.monotonic()
        if wait > 0:
            raise base.StoreError(f"{self._redacted} is unavailable; next try in {wait:.1f} s")
        try:
            conn = psycopg.connect(self._url, autocommit=True, **self._extra)
        except psycopg.Error as exc:
            self._retry_at = time.monotonic() + RETRY_AFTER_S
            raise self._error("cannot connect to", exc) from None
        try:
            conn.execute(
                "SELECT set_config('statement_timeout', %s, false)",
                (str(self._statement_timeout_ms),),
            )
        except BaseException:
            conn.close()
            raise
        return conn

    def _run(self, operation: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run one operation under the lock, reconnecting once if the connection died."""
        import psycopg

        with self._lock:
            for attempt in (1, 2):
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                try:
                    return operation(self._conn)
                except psycopg.OperationalError as exc:
                    if attempt == 1 and self._conn.broken:
                        self._conn.close()
                        self._conn = None
                        continue
                    raise self._error("database error on", exc) from exc
                except psycopg.Error as exc:
                    raise self._error("database error on", exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _create_schema(conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            # Two servers starting on an empty database would otherwise race in CREATE.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in base.schema_ddl(base.POSTGRES_TYPES):
                conn.execute(statement)
            row = conn.execute(base.SELECT_VERSION).fetchone()
            if base.check_schema_version(None if row is None else row[0]):
                conn.execute(_INSERT_VERSION, (base.SCHEMA_VERSION,))

    def save_call(self, record: Mapping[str, Any], *, directory: str = "") -> None:
        """Upsert the call row and replace its turns, in one transaction."""
        from psycopg.types.json import Jsonb

        call = base.call_params(record, directory, Jsonb, _same)
        turns = base.turn_params(record, Jsonb)

        def save(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(_UPSERT_CALL, call)
                cur.execute(_DELETE_TURNS, (call[0],))
                if turns:
                    cur.executemany(_INSERT_TURN, turns)

        self._run(save)

    def list_calls(
        self, *, limit: int = 50, offset: int = 0, since: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first; the summary but not the record or turns."""
        sql, params = base.list_query(limit, offset, since, _same)

        def fetch(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            return conn.execute(_pg(sql), params).fetchall()

        return [base.call_row(base.LIST_COLUMNS, row) for row in self._run(fetch)]

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        """The call row, its summary and record, and its turns in order."""

        def fetch(
            conn: psycopg.Connection[Any],
        ) -> tuple[tuple[Any, ...] | None, list[tuple[Any, ...]]]:
            with conn.transaction():
                # One snapshot, so the turns match the call row even mid-save.
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                row = conn.execute(_SELECT_CALL, (call_id,)).fetchone()
                turns = conn.execute(_SELECT_TURNS, (call_id,)).fetchall()
            return row, turns

        return base.assemble_call(*self._run(fetch))

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
