"""Everything kept of one call, written as it happens: stereo audio, events, raw capture.

- `recording.wav`: caller on the left, bot on the right, 16 kHz (the audio the bot's VAD
  and ASR actually processed, so a replay from it reproduces the call), both on the call
  clock: the caller leg is laid down frame after frame from its first frame's arrival,
  bot frames at the moment the carrier is due to play them, so overlap and barge-in are
  audible. `recording.wav.enc` instead when a recording key is configured.
- `events.jsonl`: one JSON object per line, `{"t": call-clock seconds, "event": ...}`, text
  fields redacted.
- `capture.jsonl` (opt-in): every raw carrier message in and out, for exact replay; it
  holds audio and key presses, so it is encrypted like the recording when a key is set.

Memory does not grow with call length: audio lives in a fixed window that is written
out every `flush_s`; events and capture lines are buffered only until the next flush.
All file I/O runs on one shared writer thread (in order), never on the event loop, and
a failing disk is counted and logged while the call goes on.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np

from telephony.events import BOT_FRAME_SAMPLES, BOT_SAMPLE_RATE, PCM16, WireMessage
from voicebot.recording.files import EncryptedWav, GrowingWav, SealedFile

log = logging.getLogger(__name__)

#: Audio kept in memory before it must be written (bot frames run ahead by the playout lead).
WINDOW_S = 8.0
#: Audio younger than this is not final yet (late bot frames may still land in it).
SETTLE_S = 0.25


class Redacts(Protocol):
    """What the recorder needs of the PII redactor."""

    def redact_json(self, value: Any) -> Any: ...


class _Appender(Protocol):
    def append(self, data: bytes) -> None: ...
    def close(self) -> None: ...


class _PlainLines:
    """An append-only text file of lines."""

    def __init__(self, path: Path) -> None:
        self._handle: BinaryIO = open(path, "ab")  # noqa: SIM115 (kept open for the call)

    def append(self, data: bytes) -> None:
        self._handle.write(data)
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


class _Stereo:
    """A fixed window of the two legs, [base, base + size) in samples."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.base = 0
        self.buffer = np.zeros((size, 2), dtype=np.int16)
        self.end = 0  # furthest sample written so far

    def write(self, channel: int, start: int, pcm: PCM16) -> int:
        """Place samples; returns how many landed too late (before the window) and were lost."""
        lost = max(self.base - start, 0)
        if lost >= pcm.size:
            return pcm.size
        pcm, start = pcm[lost:], start + lost
        offset = start - self.base
        self.buffer[offset : offset + pcm.size, channel] = pcm
        self.end = max(self.end, start + pcm.size)
        return lost

    def needs_room(self, until: int) -> bool:
        return until > self.base + self.size

    def take(self, until: int) -> bytes:
        """Remove and return interleaved samples [base, until)."""
        count = min(max(until - self.base, 0), self.size)
        if count == 0:
            return b""
        out = self.buffer[:count].tobytes()
        self.buffer[: self.size - count] = self.buffer[count:]
        self.buffer[self.size - count :] = 0
        self.base += count
        return out


class CallRecorder:
    """The recording of one call (see module docstring)."""

    def __init__(
        self,
        directory: Path | None,
        *,
        now: Callable[[], float],
        executor: Executor,
        redactor: Redacts | None = None,
        key: bytes | None = None,
        capture: bool = False,
        flush_s: float = 0.5,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.directory = directory
        self.now = now
        self.key = key
        self.capture = capture
        self.flush_s = flush_s
        self.failures = 0
        self.samples_lost = 0
        self._executor = executor
        self._redactor = redactor
        self._on_error = on_error
        self._stereo = _Stereo(int(WINDOW_S * BOT_SAMPLE_RATE))
        self._caller_next: int | None = None
        self._events: list[bytes] = []
        self._raw: list[bytes] = []
        self._last_flush = 0.0
        self._files: dict[str, _Appender] | None = None
        self._closed = False
        self._pending: Future[None] | None = None

    # ----------------------------------------------------------------- input

    def caller_audio(self, frame: PCM16) -> None:
        """One frame of caller audio as processed by the bot (laid down back to back)."""
        if self._caller_next is None:
            first = round(self.now() * BOT_SAMPLE_RATE / BOT_FRAME_SAMPLES)
            self._caller_next = first * BOT_FRAME_SAMPLES
        self._place(0, self._caller_next, frame)
        self._caller_next += frame.size
        if self.now() - self._last_flush >= self.flush_s:
            self.flush()

    def bot_audio(self, frame: PCM16, play_at: float) -> None:
        """One frame of bot audio, at the call-clock time the carrier plays it."""
        self._place(1, round(play_at * BOT_SAMPLE_RATE), frame)

    def event(self, kind: str, /, **fields: Any) -> None:
        """One line of the events log (text redacted)."""
        if self._redactor is not None:
            fields = self._redactor.redact_json(fields)
        line = {"t": round(self.now(), 3), "event": kind, **fields}
        self._events.append(json.dumps(line, ensure_ascii=False).encode() + b"\n")

    def raw(self, direction: str, message: WireMessage) -> None:
        """One raw carrier message (capture only)."""
        if not self.capture:
            return
        entry: dict[str, Any] = {"t": round(self.now(), 3), "dir": direction}
        if isinstance(message, bytes):
            entry["b64"] = base64.b64encode(message).decode("ascii")
        else:
            entry["text"] = message
        self._raw.append(json.dumps(entry).encode() + b"\n")

    def _place(self, channel: int, start: int, pcm: PCM16) -> None:
        # A loop, not one take: a frame more than a window past the last one (the bot
        # speaking after a long stretch with no caller audio, as when a SIP caller stops
        # sending RTP) needs the silence in between written out window by window.
        while self._stereo.needs_room(start + pcm.size):
            self._write(self._stereo.take(start + pcm.size - self._stereo.size))
        self.samples_lost += self._stereo.write(channel, start, pcm)

    # ---------------------------------------------------------------- output

    def flush(self, final: bool = False) -> None:
        """Hand everything that is final to the writer thread."""
        self._last_flush = self.now()
        if final:
            until = self._stereo.end
        else:
            caller_end = self._caller_next or 0
            until = min(caller_end, int(self.now() * BOT_SAMPLE_RATE)) - int(
                SETTLE_S * BOT_SAMPLE_RATE
            )
        self._write(self._stereo.take(until))

    def _write(self, audio: bytes) -> None:
        if self.directory is None:
            return  # the call has not said who it is yet: keep events and capture buffered
        events, raw = b"".join(self._events), b"".join(self._raw)
        self._events.clear()
        self._raw.clear()
        if not (audio or events or raw) or self._closed:
            return
        self._pending = self._executor.submit(self._write_files, self.directory, audio, events, raw)

    def _open(self, directory: Path) -> dict[str, _Appender]:
        directory.mkdir(parents=True, exist_ok=True)
        files: dict[str, _Appender] = {}
        if self.key is not None:
            files["audio"] = EncryptedWav(
                directory / "recording.wav.enc", BOT_SAMPLE_RATE, 2, self.key
            )
        else:
            files["audio"] = GrowingWav(directory / "recording.wav", BOT_SAMPLE_RATE, 2)
        files["events"] = _PlainLines(directory / "events.jsonl")
        if self.capture:
            files["raw"] = (
                SealedFile(directory / "capture.jsonl.enc", self.key)
                if self.key is not None
                else _PlainLines(directory / "capture.jsonl")
            )
        return files

    def _write_files(self, directory: Path, audio: bytes, events: bytes, raw: bytes) -> None:
        """Runs on the writer thread."""
        try:
            if self._files is None:
                self._files = self._open(directory)
        except OSError as exc:
            self._failed(exc)
            return
        # Each file on its own: a failing audio write must not take the events with it.
        for name, data in (("audio", audio), ("events", events), ("raw", raw)):
            if data and name in self._files:
                try:
                    self._files[name].append(data)
                except OSError as exc:
                    self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        """Count every failed write; log the first and then every 20th (a full disk repeats)."""
        self.failures += 1
        if self.failures == 1 or self.failures % 20 == 0:
            log.error(
                "recording write to %s failed (%d so far): %r", self.directory, self.failures, exc
            )
        if self._on_error is not None:
            self._on_error(exc)

    def close(self) -> Future[None]:
        """Write the rest and close the files; the future completes when they are on disk."""
        self.flush(final=True)
        self._closed = True
        return self._executor.submit(self._close_files)

    def _close_files(self) -> None:
        if self._files is None:
            return
        for handle in self._files.values():
            try:
                handle.close()
            except OSError as exc:
                self.failures += 1
                log.error("closing recording in %s failed: %r", self.directory, exc)
