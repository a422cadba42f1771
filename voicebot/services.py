"""What every call shares: models, dialogue core, metrics, storage and the clock.

Built once per process by `voicebot.app` (the only place that knows concrete classes)
and handed to each `Call`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from models.protocols import VoiceActivityDetector
from voicebot.clock import Clock, MonotonicClock
from voicebot.config import Config
from voicebot.dialogue.core import DialogueCore
from voicebot.metrics import Metrics
from voicebot.workers import ModelWorkers


@dataclass
class CallServices:
    """Shared, process-wide parts of the bot."""

    config: Config
    workers: ModelWorkers
    dialogue: DialogueCore
    make_vad: Callable[[], VoiceActivityDetector]
    metrics: Metrics = field(default_factory=Metrics)
    clock: Clock = field(default_factory=MonotonicClock)

    @property
    def data_dir(self) -> Path:
        """Where transcripts (and later recordings) go."""
        return Path(self.config.server.data_dir)
