"""The per-call transcript: ids, and per caller turn what was heard, understood and said.

Written to `DATA_DIR/calls/<callSid>/transcript.json` after every turn (and again when
the turn's audio has been heard or interrupted), atomically (temp file + rename), so a
crash leaves the last complete version rather than half a JSON file, and indexed in the
call store. What is written is redacted (card and account numbers, dates of birth,
PINs). The call id comes from the carrier, so it is sanitised before it becomes a path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def safe_call_dir_name(call_id: str) -> str:
    """A directory name for a carrier call id that cannot escape the calls directory."""
    if _SAFE_ID.match(call_id) and call_id not in (".", ".."):
        return call_id
    return "call-" + hashlib.sha256(call_id.encode("utf-8", "replace")).hexdigest()[:24]


@dataclass
class TurnRecord:
    """One caller turn and the bot's answer to it."""

    index: int
    started_s: float
    ended_s: float
    caller_text: str = ""
    intent: str | None = None
    intent_confidence: float = 0.0
    sentiment: float = 0.0
    outcome: str = ""
    bot_text: str = ""
    heard_text: str = ""
    barge_in: bool = False
    handoff: dict[str, Any] | None = None
    #: When the bot's answer became audible and when it stopped (call clock, seconds).
    bot_started_s: float | None = None
    bot_ended_s: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    #: Slot values read from the caller's words ("amount_of_money": "45.00 GBP"), for QA.
    #: Read after the answer has started where the answer does not depend on them.
    slots: dict[str, str] = field(default_factory=dict)


@dataclass
class PromptRecord:
    """Something the bot said that was not an answer to a turn (greeting, key press)."""

    kind: str
    at_s: float
    bot_text: str
    heard_text: str = ""
    barge_in: bool = False


@dataclass
class CallRecord:
    """The whole call."""

    call_id: str
    stream_id: str
    carrier: str
    account_id: str = ""
    custom_parameters: dict[str, str] = field(default_factory=dict)
    started_at: str = ""
    ended_s: float | None = None
    end_reason: str = ""
    prompts: list[PromptRecord] = field(default_factory=list)
    turns: list[TurnRecord] = field(default_factory=list)
    dtmf: list[dict[str, Any]] = field(default_factory=list)
    handoff: dict[str, Any] | None = None

    def to_json(self) -> str:
        """Stable, human-readable JSON."""
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)


class SavesCalls(Protocol):
    """The part of the call store the writer needs."""

    def save_call(self, record: Mapping[str, Any], *, directory: str = "") -> None: ...


def call_directory(data_dir: Path, call_id: str) -> Path:
    """Where everything kept of one call lives."""
    return data_dir / "calls" / safe_call_dir_name(call_id)


class TranscriptWriter:
    """Writes one call's (redacted) transcript file and store entry on the I/O thread."""

    def __init__(
        self,
        data_dir: Path,
        call_id: str,
        *,
        executor: Executor | None = None,
        redact: Callable[[Any], Any] | None = None,
        store: SavesCalls | None = None,
    ) -> None:
        self.directory = call_directory(data_dir, call_id)
        self.path = self.directory / "transcript.json"
        self._executor = executor
        self._redact = redact
        self._store = store

    def _write(self, text: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def _save(self, data: dict[str, Any]) -> None:
        self._write(json.dumps(data, indent=2, ensure_ascii=False))
        if self._store is not None:
            self._store.save_call(data, directory=str(self.directory))

    def submit(self, record: CallRecord) -> Future[None]:
        """Save the current state of the record: serialised now, written on the I/O thread.

        The call never waits for the disk: one I/O thread for all writes keeps them in
        order, and the returned future says how the write went (the journal logs a
        failing disk or store, and the call goes on). Without an executor the write
        happens here, before returning.
        """
        data = asdict(record)
        if self._redact is not None:
            data = self._redact(data)
        if self._executor is not None:
            return self._executor.submit(self._save, data)
        done: Future[None] = Future()
        try:
            self._save(data)
            done.set_result(None)
        except Exception as exc:
            done.set_exception(exc)
        return done
