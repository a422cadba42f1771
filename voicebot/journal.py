"""Everything a call leaves behind, behind one small object: recording, events, transcript.

The Call reports what happens (audio in and out, carrier events, decisions); the
journal decides where it goes: the stereo recording and events log (`CallRecorder`),
the redacted transcript file and the call store (`TranscriptWriter`). Keeping this
out of the Call keeps the call loop about turn-taking and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import Future
from functools import partial
from typing import Any

from telephony.connection import CallConnection
from telephony.events import PCM16, CallStarted
from voicebot.recording.recorder import CallRecorder
from voicebot.services import CallServices
from voicebot.transcript import CallRecord, TranscriptWriter, call_directory

log = logging.getLogger(__name__)


class CallJournal:
    """Recording, events log, transcript and store entry of one call."""

    def __init__(self, services: CallServices, conn: CallConnection, now: Any) -> None:
        self.services = services
        self.writer: TranscriptWriter | None = None
        self.recorder: CallRecorder | None = None
        self._saving: Future[None] | None = None  # the latest transcript write
        settings = services.config.recording
        if settings.enabled:
            self.recorder = CallRecorder(
                None,
                now=now,
                executor=services.io_pool,
                redactor=services.redactor,
                key=services.recording_key,
                capture=settings.capture,
                flush_s=settings.flush_ms / 1000,
                on_error=lambda _exc: services.metrics.recording_failed(),
            )
            if settings.capture:
                conn.tap = self.recorder.raw  # from the first message, `connected` included

    def start(self, event: CallStarted) -> None:
        """The carrier said who the call is: files can be opened now."""
        redactor = self.services.redactor
        self.writer = TranscriptWriter(
            self.services.data_dir,
            event.call_id,
            executor=self.services.io_pool,
            redact=redactor.redact_json if redactor is not None else None,
            store=self.services.store,
        )
        if self.recorder is not None:
            self.recorder.directory = call_directory(self.services.data_dir, event.call_id)
        self.log(
            "start",
            call_id=event.call_id,
            stream_id=event.stream_id,
            carrier=event.carrier,
            custom_parameters=dict(event.custom_parameters),
            media_format=event.media_format.encoding,
            sample_rate=event.media_format.sample_rate,
        )

    def log(self, kind: str, /, **fields: Any) -> None:
        """One line of the events log (redacted there); a failure never ends the call."""
        if self.recorder is not None:
            try:
                self.recorder.event(kind, **fields)
            except Exception:
                self.services.metrics.recording_failed()
                log.exception("events log entry %r not written", kind)

    def caller_audio(self, frame: PCM16) -> None:
        """A frame of caller audio, as the bot processed it."""
        if self.recorder is not None:
            self.recorder.caller_audio(frame)

    def bot_audio(self, frame: PCM16, play_at: float) -> None:
        """A frame of bot audio, at its call-clock play time."""
        if self.recorder is not None:
            self.recorder.bot_audio(frame, play_at)

    def dtmf(self, digit: str, *, secret: bool = False) -> str:
        """A key press as it may be kept (masked per the privacy settings). Keys pressed
        while the caller enters an account number or PIN are always masked, 0 included."""
        redactor = self.services.redactor
        if secret:
            shown = "".join("*" if c.isdigit() else c for c in digit)
        else:
            shown = redactor.redact_dtmf(digit) if redactor is not None else digit
        self.log("dtmf", digit=shown)
        return shown

    def save(self, record: CallRecord) -> None:
        """Queue a write of the transcript and store entry; never blocks, never raises."""
        if self.writer is None:
            return
        try:
            self._saving = self.writer.submit(record)
        except Exception as exc:
            self._save_failed(record.call_id, exc)
            return
        self._saving.add_done_callback(partial(self._on_saved, record.call_id))

    def _on_saved(self, call_id: str, done: Future[None]) -> None:
        """Runs on the I/O thread when a write has finished."""
        exc = done.exception()
        if exc is not None:
            self._save_failed(call_id, exc)

    def _save_failed(self, call_id: str, exc: BaseException) -> None:
        """A full disk or a lost database: counted and logged; the call goes on."""
        self.services.metrics.recording_failed()
        log.error("call %s: transcript not saved: %r", call_id, exc)

    async def close(self, reason: str, record: CallRecord | None = None) -> None:
        """Close the recording (its last event says why), then write the final transcript.

        In that order, so a transcript with `ended_s` means every file of the call is
        complete: QA tools (and tests) can wait on the transcript alone.
        """
        if self.recorder is not None:
            self.recorder.event("end", reason=reason)
            try:
                await asyncio.wrap_future(self.recorder.close())
            except OSError as exc:
                self.services.metrics.recording_failed()
                log.error("recording in %s not closed: %r", self.recorder.directory, exc)
        if record is not None:
            self.save(record)
        if self._saving is not None:
            with contextlib.suppress(Exception):  # a failure was logged by its callback
                await asyncio.wrap_future(self._saving)
