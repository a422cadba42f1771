"""What every call shares: models, dialogue core, metrics, storage and the clock.

Built once per process by `voicebot.app` (the only place that knows concrete classes)
and handed to each `Call`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from models.protocols import VoiceActivityDetector
from voicebot.clock import Clock, MonotonicClock
from voicebot.config import Config
from voicebot.dialogue.core import DialogueCore
from voicebot.dialogue.engines import LlmEngines
from voicebot.metrics import Metrics
from voicebot.store.base import CallStore
from voicebot.workers import ModelWorkers


class Redaction(Protocol):
    """What calls need of the PII redactor (voicebot.privacy.Redactor)."""

    def redact(self, text: str) -> str: ...
    def redact_json(self, value: Any) -> Any: ...
    def redact_dtmf(self, digit: str) -> str: ...


class Activity:
    """How many calls are in progress, with an event that is set while there are none."""

    def __init__(self) -> None:
        self.active = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def call_started(self) -> None:
        """A call began."""
        self.active += 1
        self.idle.clear()

    def call_ended(self) -> None:
        """A call finished."""
        self.active = max(self.active - 1, 0)
        if self.active == 0:
            self.idle.set()


@dataclass
class CallServices:
    """Shared, process-wide parts of the bot."""

    config: Config
    workers: ModelWorkers
    dialogue: DialogueCore
    make_vad: Callable[[], VoiceActivityDetector]
    metrics: Metrics = field(default_factory=Metrics)
    clock: Clock = field(default_factory=MonotonicClock)
    activity: Activity = field(default_factory=Activity)
    redactor: Redaction | None = None
    #: The call store (voicebot.store.CallStore); None keeps only the files.
    store: CallStore | None = None
    #: 32-byte key for recordings at rest (from the environment), or None.
    recording_key: bytes | None = None
    #: One thread for all recording, transcript and store writes: in order, off the loop.
    io_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="call-io")
    )
    #: The LLM reply engines when `[llm] engine` is set; None speaks the templates.
    reply_engines: LlmEngines | None = None
    #: Set once every prompt and grounded answer has been synthesised (see app.prepare_answers).
    speech_ready: bool = False

    @property
    def data_dir(self) -> Path:
        """Where transcripts (and later recordings) go."""
        return Path(self.config.server.data_dir)
