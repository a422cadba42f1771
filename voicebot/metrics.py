"""Prometheus metrics for the server: calls, turns, and per-stage latency.

A registry per server (not the global default) so tests can run several servers in
one process without their counters mixing.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

#: A recording write that failed this recently makes /healthz say "degraded".
RECENT_ERROR_S = 300.0
LATENCY_BUCKETS_S = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0, 5.0)


class Metrics:
    """All of the server's metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # process_cpu_seconds_total, process_resident_memory_bytes: what a load test
        # (and an operator) watches for capacity and leaks.
        ProcessCollector(registry=self.registry)
        self.active_calls = Gauge(
            "voicebot_active_calls", "Calls in progress", registry=self.registry
        )
        self.calls = Counter(
            "voicebot_calls", "Calls finished, by how they ended", ["end"], registry=self.registry
        )
        self.turns = Counter(
            "voicebot_turns",
            "Caller turns answered, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.barge_ins = Counter(
            "voicebot_barge_ins", "Times the caller interrupted the bot", registry=self.registry
        )
        self.handoffs = Counter(
            "voicebot_handoffs",
            "Transfers to a person offered or accepted",
            ["state"],
            registry=self.registry,
        )
        self.stage_latency = Histogram(
            "voicebot_stage_latency_seconds",
            "Latency of each stage of answering a turn",
            ["stage"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.partial_transcripts = Counter(
            "voicebot_partial_transcripts",
            "Running transcripts of a caller still speaking: heard (the words came back), "
            "dropped (outdated first: the caller paused, the turn ended)",
            ["outcome"],
            registry=self.registry,
        )
        self.model_errors = Counter(
            "voicebot_model_errors",
            "Model calls that failed or timed out",
            ["stage"],
            registry=self.registry,
        )
        self.recording_errors = Counter(
            "voicebot_recording_errors",
            "Recording, transcript or store writes that failed (the call went on)",
            registry=self.registry,
        )
        self.last_recording_error: float | None = None
        self.recording_error_count = 0
        self._lock = threading.Lock()
        self.audio_dropped = Counter(
            "voicebot_inbound_audio_dropped",
            "Inbound audio frames dropped on overflow",
            registry=self.registry,
        )

    def observe_ms(self, stage: str, ms: float) -> None:
        """Record one stage latency given in milliseconds."""
        self.stage_latency.labels(stage=stage).observe(ms / 1000)

    def recording_failed(self) -> None:
        """A recording, transcript or store write failed (any thread may call this)."""
        with self._lock:
            self.recording_errors.inc()
            self.recording_error_count += 1
            self.last_recording_error = time.time()

    def recording_health(self, recent_s: float = RECENT_ERROR_S) -> dict[str, Any]:
        """For /healthz: failed writes so far, and whether one happened recently."""
        last = self.last_recording_error
        ago = None if last is None else round(time.time() - last, 1)
        return {
            "ok": ago is None or ago > recent_s,
            "errors": self.recording_error_count,
            "last_error_s_ago": ago,
        }

    def render(self) -> bytes:
        """Prometheus text exposition format."""
        return generate_latest(self.registry)
