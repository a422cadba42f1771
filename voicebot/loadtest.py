"""Load tests: many simulated Twilio callers at once, and the capacity they reveal.

Each caller is the dial client (`voicebot.dial`) speaking a recorded call in real time,
so the server sees exactly what a carrier would send. A run reports what callers feel
(voice-to-voice p50/p95/p99, the fraction of bot audio that came late enough for the
phone to starve mid-reply, calls that failed or were never answered) and what the server
spent (CPU and RSS sampled from its `/metrics` once a second). `--capacity` steps the
number of concurrent calls up until a bound breaks and reports the last count that held.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from voicebot.dial import DialResult, dial

log = logging.getLogger(__name__)

#: Process metrics the server exposes (prometheus_client's process collector).
CPU_METRIC = "process_cpu_seconds_total"
RSS_METRIC = "process_resident_memory_bytes"
ACTIVE_METRIC = "voicebot_active_calls"


@dataclass(frozen=True)
class Bounds:
    """What a load level must keep to count as held."""

    p95_ms: float = 1500.0
    late_fraction: float = 0.01
    #: Calls that fail or get no answer: any at all breaks the level.
    failures: int = 0


@dataclass
class LoadReport:
    """One load level: what callers felt and what the server spent."""

    concurrent: int
    calls: int = 0
    failed: list[str] = field(default_factory=list)
    unanswered_turns: int = 0
    turns: int = 0
    voice_to_voice_ms: dict[str, float | None] = field(default_factory=dict)
    late_fraction: float = 0.0
    wall_s: float = 0.0
    server: dict[str, Any] = field(default_factory=dict)

    def held(self, bounds: Bounds) -> bool:
        """Whether this level stayed within `bounds`."""
        p95 = self.voice_to_voice_ms.get("p95")
        return bool(
            len(self.failed) + self.unanswered_turns <= bounds.failures
            and p95 is not None
            and p95 <= bounds.p95_ms
            and self.late_fraction <= bounds.late_fraction
        )


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return round(float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low)), 1)


def metrics_url(media_url: str) -> str:
    """The server's /metrics, from its media websocket URL (ws -> http, wss -> https)."""
    parts = urlsplit(media_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "/metrics", "", ""))


def parse_metrics(text: str, names: Sequence[str]) -> dict[str, float]:
    """Unlabelled samples `names` from a Prometheus text exposition."""
    wanted, found = set(names), {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            try:
                found[name] = float(value.split()[0])
            except (ValueError, IndexError):
                continue
    return found


class ServerSampler:
    """Polls the server's /metrics once a second while a load level runs."""

    def __init__(self, url: str, interval_s: float = 1.0) -> None:
        self.url, self.interval_s = url, interval_s
        self.samples: list[dict[str, float]] = []
        self.errors = 0

    def _read(self) -> dict[str, float]:
        with urllib.request.urlopen(self.url, timeout=2) as response:
            text = response.read().decode("utf-8", "replace")
        return parse_metrics(text, (CPU_METRIC, RSS_METRIC, ACTIVE_METRIC))

    async def run(self) -> None:
        """Sample until cancelled."""
        started = time.monotonic()
        while True:
            try:
                sample = await asyncio.to_thread(self._read)
                sample["t_s"] = round(time.monotonic() - started, 2)
                self.samples.append(sample)
            except OSError:
                self.errors += 1
            await asyncio.sleep(self.interval_s)

    def summary(self) -> dict[str, Any]:
        """CPU use (cores busy on average) and RSS (first, peak, last) over the level."""
        cpu = [(s["t_s"], s[CPU_METRIC]) for s in self.samples if CPU_METRIC in s]
        rss = [s[RSS_METRIC] / 2**20 for s in self.samples if RSS_METRIC in s]
        out: dict[str, Any] = {"samples": len(self.samples), "errors": self.errors}
        if len(cpu) >= 2 and cpu[-1][0] > cpu[0][0]:
            out["cpu_cores_busy"] = round((cpu[-1][1] - cpu[0][1]) / (cpu[-1][0] - cpu[0][0]), 2)
        if rss:
            out["rss_mib"] = {"first": round(rss[0], 1), "peak": round(max(rss), 1)}
            out["rss_mib"]["last"] = round(rss[-1], 1)
        out["timeline"] = self.samples
        return out


async def run_level(
    url: str,
    wavs: Sequence[Path],
    concurrent: int,
    out_dir: Path,
    *,
    ramp_s: float = 0.0,
    duration_s: float = 0.0,
    max_wait_s: float = 20.0,
    auth_token: str | None = None,
) -> LoadReport:
    """`concurrent` callers; each places calls back to back for `duration_s` (or once).

    `url` is the media websocket or the voice webhook (see `voicebot.dial.dial`); with
    the webhook, calls are signed with `auth_token` and carry the server's stream token.
    """
    if not wavs:
        raise ValueError("no caller WAVs to play")
    report = LoadReport(concurrent)
    results: list[DialResult] = []
    next_wav = itertools.cycle(wavs)
    sampler = ServerSampler(metrics_url(url))
    sampling = asyncio.create_task(sampler.run())
    started = time.monotonic()

    async def caller(index: int) -> None:
        await asyncio.sleep(ramp_s * index / max(concurrent, 1))
        for attempt in itertools.count():
            wav = next(next_wav)
            name = f"{index:03d}-{attempt:03d}"
            try:
                results.append(
                    await dial(
                        url,
                        wav,
                        out_dir / name,
                        max_wait_s=max_wait_s,
                        save=False,
                        auth_token=auth_token,
                    )
                )
            except Exception as exc:  # a refused or broken call is a result, not a crash
                report.failed.append(f"{name} {wav.name}: {exc!r}"[:300])
            if time.monotonic() - started >= duration_s:
                return

    try:
        await asyncio.gather(*(caller(i) for i in range(concurrent)))
    finally:
        sampling.cancel()
        await asyncio.gather(sampling, return_exceptions=True)
    report.wall_s = round(time.monotonic() - started, 1)
    report.calls = len(results) + len(report.failed)
    _summarise(report, results)
    report.server = sampler.summary()
    return report


def _summarise(report: LoadReport, results: Sequence[DialResult]) -> None:
    latencies = [
        t.voice_to_voice_ms for r in results for t in r.turns if t.voice_to_voice_ms is not None
    ]
    report.turns = sum(len(r.turns) for r in results)
    report.unanswered_turns = report.turns - len(latencies)
    report.voice_to_voice_ms = {f"p{q}": percentile(latencies, q) for q in (50, 95, 99)}
    played = sum(r.played_ticks for r in results)
    starved = sum(r.starved_ticks for r in results)
    report.late_fraction = round(starved / (played + starved), 5) if played + starved else 0.0


async def find_capacity(
    url: str,
    wavs: Sequence[Path],
    out_dir: Path,
    *,
    bounds: Bounds,
    start: int = 1,
    limit: int = 64,
    ramp_s: float = 0.0,
    duration_s: float = 0.0,
    auth_token: str | None = None,
) -> dict[str, Any]:
    """Step concurrency up (1, 2, 3, ...) until a level breaks `bounds`."""
    levels: list[LoadReport] = []
    for concurrent in range(start, limit + 1):
        level = await run_level(
            url,
            wavs,
            concurrent,
            out_dir / f"n{concurrent}",
            ramp_s=ramp_s,
            duration_s=duration_s,
            auth_token=auth_token,
        )
        levels.append(level)
        log.info("%d concurrent: %s", concurrent, "held" if level.held(bounds) else "broke")
        if not level.held(bounds):
            break
    return capacity_summary(levels, bounds)


def capacity_summary(levels: Sequence[LoadReport], bounds: Bounds) -> dict[str, Any]:
    """The last level that held before the first that broke (0: even the first broke)."""
    capacity = 0
    for level in levels:
        if not level.held(bounds):
            break
        capacity = level.concurrent
    return {
        "capacity": capacity,
        "bounds": asdict(bounds),
        "levels": [asdict(level) | {"held": level.held(bounds)} for level in levels],
    }


def format_levels(levels: Sequence[dict[str, Any]]) -> str:
    """A readable table of load levels (as in `capacity_summary`)."""
    lines = [
        f"{'calls':>5} {'placed':>6} {'failed':>6} {'p50':>6} {'p95':>6} {'p99':>6} "
        f"{'late %':>7} {'cores':>5} {'rss MiB':>8}  held"
    ]
    for level in levels:
        v2v, server = level["voice_to_voice_ms"], level["server"]
        cells = [f"{'-' if v2v.get(q) is None else v2v[q]:>6}" for q in ("p50", "p95", "p99")]
        lines.append(
            f"{level['concurrent']:>5} {level['calls']:>6} "
            f"{len(level['failed']) + level['unanswered_turns']:>6} {' '.join(cells)} "
            f"{level['late_fraction'] * 100:>7.2f} {server.get('cpu_cores_busy', '-'):>5} "
            f"{server.get('rss_mib', {}).get('peak', '-'):>8}  {'yes' if level['held'] else 'NO'}"
        )
    return "\n".join(lines)
