"""Prometheus metrics for the server: calls, turns, and per-stage latency.

A registry per server (not the global default) so tests can run several servers in
one process without their counters mixing.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

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
        self.audio_dropped = Counter(
            "voicebot_inbound_audio_dropped",
            "Inbound audio frames dropped on overflow",
            registry=self.registry,
        )

    def observe_ms(self, stage: str, ms: float) -> None:
        """Record one stage latency given in milliseconds."""
        self.stage_latency.labels(stage=stage).observe(ms / 1000)

    def render(self) -> bytes:
        """Prometheus text exposition format."""
        return generate_latest(self.registry)
