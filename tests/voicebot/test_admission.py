"""How many calls the server admits: a configured number, or an estimate from the hardware."""

from __future__ import annotations

from dataclasses import replace

from voicebot.app import CALLS_PER_GPU, estimated_max_calls
from voicebot.config import Config


def with_calls(max_calls: int, device: str = "cpu") -> Config:
    base = Config()
    return replace(
        base,
        server=replace(base.server, max_calls=max_calls),
        asr=replace(base.asr, device=device),
    )


def test_a_configured_number_wins():
    assert estimated_max_calls(with_calls(5), cpu_count=64) == 5


def test_zero_estimates_one_call_per_core_on_cpu():
    assert estimated_max_calls(with_calls(0), cpu_count=2) == 2
    assert estimated_max_calls(with_calls(0), cpu_count=16) == 16
    assert estimated_max_calls(with_calls(0), cpu_count=0) == 1  # never refuse everything


def test_zero_on_a_gpu_uses_the_gpu_figure():
    assert estimated_max_calls(with_calls(0, "cuda"), cpu_count=2) == CALLS_PER_GPU
