"""How evenly the SIP bridge's RTP sender paces the call's packets, measured at a socket.

`RtpMedia` promises one packet every 20 ms scheduled from a fixed anchor (so sleep
overshoot never adds up to drift), comfort silence between replies, and unbroken
sequence numbers and timestamps. `tests/telephony/sip/test_media.py` asserts that only
loosely, because tests must not flake on a loaded box; this script measures it.

One run: an `RtpMedia` on 127.0.0.1 sends to a plain UDP socket for `--seconds` while
the bot side feeds it the way a call does (the real `Playout`: replies of 1.6 s queued
whole, paced out 20 ms at a time 120 ms ahead, a mark after each, 0.8 s of silence
between them, through a real `CallConnection`). Each pause is lengthened by a random
fraction of a tick (seeded by the run's number), so replies start at every phase of the
sender's 20 ms grid, as in a call, rather than locked to one. Conditions:

- `idle`: nothing else runs in the process;
- `gil_busy`: a thread in the same process runs pure-Python work 300 ms out of every
  500 ms, as a transcription's Python side does between its GIL-free native calls. A
  waiting thread gets the GIL only at the interpreter's switch interval (5 ms), so the
  event loop wakes late by up to that much whenever the busy thread is running.

Arrival times are the kernel's receive timestamps (SO_TIMESTAMPNS), read by a receiver
thread: the receiver's own waits for the GIL do not count against the sender. Reported
per run: inter-arrival median / p95 / p99 / max, every packet's offset from the ideal
grid (the grid advances with the RTP timestamp, so a skipped tick is not counted as
lateness, and passes through the earliest packet, since the sender never sends early):
lateness median / p99 / max, the last packet's lateness (drift) and the movement of the
least-squares line through all offsets (drift with the jitter averaged out), sequence
and timestamp continuity, packets received against expected, and speech gaps: talk
spurts beyond one per reply, i.e. ticks where the bot's audio had not reached the
sender's queue in time and comfort silence went out mid-sentence, and first audio: from
the moment a reply is queued to the arrival of its first speech packet (median and max
over the run's replies), the latency a change to how talk spurts start must not grow by
more than one tick. Per condition: the median of each figure over the runs (interleaved,
so a change in load hits both).

    .venv/bin/python bench/rtp_pacing.py [--seconds 10] [--runs 3] [--json OUT]

Passing `PYTHONPATH=<an older checkout>` measures that checkout's sender with this script.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import random
import socket
import statistics
import struct
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from telephony.connection import CallConnection
from telephony.events import BOT_SAMPLE_RATE, Event, MarkPlayed
from telephony.sip.media import FRAME_BYTES, FRAME_S, RtpMedia
from telephony.sip.ports import PortAllocator
from telephony.sip.rtp import RtpError, parse_rtp
from voicebot.clock import MonotonicClock
from voicebot.playout import Playout

#: Linux's SO_TIMESTAMPNS (also the cmsg type); the socket module does not name it.
SO_TIMESTAMPNS = 35
SILENCE = b"\xff" * FRAME_BYTES
REPLY_S = 1.6
PAUSE_S = 0.8
BUSY_S, REST_S = 0.3, 0.2
CONDITIONS = ("idle", "gil_busy")


@dataclass(frozen=True, slots=True)
class Arrival:
    """One packet as the receiving socket saw it."""

    at_ns: int
    seq: int
    timestamp: int
    ssrc: int
    marker: bool
    #: Comfort silence (PCMU 0xFF) rather than bot speech.
    silent: bool


class Receiver:
    """A UDP socket and a thread that records every packet with its kernel arrival time."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        # Without kernel stamps the thread's clock is used, and its GIL waits would count.
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.arrivals: list[Arrival] = []
        self.kernel_stamped = 0
        self.foreign = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtp-receiver", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, ancillary, _, _ = self.sock.recvmsg(2048, socket.CMSG_SPACE(16))
            except TimeoutError:
                continue
            at_ns = time.time_ns()
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                    seconds, nanos = struct.unpack("qq", value[:16])
                    at_ns = seconds * 1_000_000_000 + nanos
                    self.kernel_stamped += 1
            try:
                packet = parse_rtp(data)
            except RtpError:
                self.foreign += 1  # not ours (a stray sender on a reused port): not counted
                continue
            silent = packet.payload == SILENCE
            self.arrivals.append(
                Arrival(
                    at_ns, packet.sequence, packet.timestamp, packet.ssrc, packet.marker, silent
                )
            )


def burn_gil(stop: threading.Event) -> None:
    """Pure-Python work BUSY_S out of every BUSY_S + REST_S, until `stop`."""
    while not stop.is_set():
        end = time.perf_counter() + BUSY_S
        total = 0
        while time.perf_counter() < end:
            total += sum(i * i for i in range(200))
        stop.wait(REST_S)


async def bot_speaks(playout: Playout, until: float, *, seed: int = 0) -> list[int]:
    """Queue a reply and its mark, let it play, pause; again until `until`.

    Each pause is longer by a random fraction of a tick (drawn from `seed`), so reply
    starts sweep the phase of the sender's grid.

    Returns when each reply was queued (time.time_ns, the clock of the kernel's receive
    timestamps), so its first audio can be timed at the socket.
    """
    t = np.arange(int(REPLY_S * BOT_SAMPLE_RATE)) / BOT_SAMPLE_RATE
    reply = (6000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    queued: list[int] = []
    rng = random.Random(seed)
    while (left := until - time.monotonic()) > 0:
        queued.append(time.time_ns())
        await playout.play(reply, f"reply-{len(queued)}")
        await playout.mark(f"end-{len(queued)}", f"reply-{len(queued)}")
        await asyncio.sleep(min(REPLY_S + PAUSE_S + rng.uniform(0, FRAME_S), left))
    return queued


async def measure(
    seconds: float, *, busy: bool = False, ports: PortAllocator | None = None, seed: int = 0
) -> dict[str, Any]:
    """One run of `seconds`: the sender's packets as they arrived, summarized.

    `seed` draws the reply starts' phases (see `bot_speaks`).
    """
    receiver = Receiver()
    receiver.start()
    counts = {"marks": 0}

    def sink(event: Event) -> None:
        counts["marks"] += isinstance(event, MarkPlayed)

    stop = threading.Event()
    burner = threading.Thread(target=burn_gil, args=(stop,), name="gil-burner", daemon=True)
    load_before = os.getloadavg()[0]
    media = await RtpMedia.open("127.0.0.1", ports or PortAllocator(46000, 46099), sink)
    media.configure(receiver.address, "PCMU", 0, None)  # before the first tick: none lost
    started = time.monotonic()

    async def nothing(code: int, reason: str) -> None:
        return None

    playout = Playout(CallConnection(media, media.send, nothing), MonotonicClock())
    sender = asyncio.create_task(playout.run(), name="playout")
    if busy:
        burner.start()
    try:
        queued = await bot_speaks(playout, started + seconds, seed=seed)
    finally:
        stop.set()
        swallowed = await stop_swallowing(sender)
        await media.close()
        elapsed = time.monotonic() - started
        if burner.is_alive():
            burner.join()
        await asyncio.sleep(0.1)  # packets still in flight on loopback
        receiver.stop()
    stats = media.stats  # after close: the count includes the last tick's packet
    summary = summarize(receiver.arrivals, expected=int(elapsed / FRAME_S))
    delays = first_audio_ms(receiver.arrivals, queued)
    summary.update(
        condition="gil_busy" if busy else "idle",
        seconds=round(elapsed, 3),
        replies=len(queued),
        # a reply is one spurt; more means the queue ran dry mid-reply (a gap in speech)
        speech_gaps=max(0, summary["talk_spurts"] - len(queued)),
        # where they fell: how many of the reply's speech packets went out before each
        speech_gap_after_frames=gap_positions(receiver.arrivals, queued),
        first_audio_ms={
            "median": round(statistics.median(delays), 3) if delays else None,
            "max": round(max(delays), 3) if delays else None,
        },
        marks_played=counts["marks"],
        cancels_swallowed=swallowed,
        ticks_skipped=stats.ticks_skipped,
        # talk spurts whose lone first frame waited a tick for its second (0 before the
        # sender had the hold: getattr lets PYTHONPATH measure an older checkout)
        spurts_held=getattr(stats, "spurts_held", 0),
        packets_sent=stats.packets_out,
        kernel_timestamps=receiver.kernel_stamped == len(receiver.arrivals),
        foreign_datagrams=receiver.foreign,
        load_1min_before=load_before,
    )
    return summary


async def stop_swallowing(task: asyncio.Task[None]) -> int:
    """Cancel `task` until it ends; returns how many cancellations it swallowed.

    On Python 3.11 `asyncio.wait_for` returns the inner result instead of raising when
    the cancellation arrives in the loop turn in which the inner send finished, so the
    playout (whose every send goes through `CallConnection`'s `wait_for`) can shrug off a
    cancel and wait on its empty queue for ever; runs hung at the end that way.
    """
    swallowed = 0
    task.cancel()
    while not (await asyncio.wait({task}, timeout=0.5))[0]:
        swallowed += 1
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return swallowed


def summarize(arrivals: list[Arrival], *, expected: int) -> dict[str, Any]:
    """Inter-arrival figures, offsets from the ideal grid, and RTP continuity."""
    if len(arrivals) < 3:
        raise RuntimeError(f"only {len(arrivals)} packets arrived; nothing to measure")
    pairs = list(itertools.pairwise(arrivals))
    gaps = [(b.at_ns - a.at_ns) / 1e6 for a, b in pairs]
    cuts = statistics.quantiles(gaps, n=100, method="inclusive")
    first = arrivals[0]
    raw = [  # arrival minus due time on a grid advanced by the RTP timestamp (ms)
        (p.at_ns - first.at_ns) / 1e6 - ((p.timestamp - first.timestamp) % 2**32) / 8.0
        for p in arrivals
    ]
    earliest = min(raw)  # the sender never sends early: the earliest packet marks the grid
    late = [offset - earliest for offset in raw]
    late_cuts = statistics.quantiles(late, n=100, method="inclusive")
    return {
        "packets_expected": expected,
        "packets_received": len(arrivals),
        "interval_ms": {
            "min": round(min(gaps), 3),
            "median": round(statistics.median(gaps), 3),
            "p95": round(cuts[94], 3),
            "p99": round(cuts[98], 3),
            "max": round(max(gaps), 3),
        },
        "late_ms": {
            "median": round(statistics.median(late), 3),
            "p99": round(late_cuts[98], 3),
            "max": round(max(late), 3),
        },
        "drift_last_ms": round(late[-1], 3),
        "drift_trend_ms": round(trend(raw), 3),
        "seq_gaps": sum((b.seq - a.seq) % 2**16 != 1 for a, b in pairs),
        "ts_steps_not_one_frame": sum(
            (b.timestamp - a.timestamp) % 2**32 != FRAME_BYTES for a, b in pairs
        ),
        "ssrc_changes": sum(a.ssrc != b.ssrc for a, b in pairs),
        "markers": sum(p.marker for p in arrivals),
        "talk_spurts": sum(
            not p.silent and (i == 0 or arrivals[i - 1].silent) for i, p in enumerate(arrivals)
        ),
    }


def first_audio_ms(arrivals: list[Arrival], queued_ns: list[int]) -> list[float]:
    """For each reply, ms from its queueing to the first speech packet that arrived after.

    A reply whose audio never arrived (cut off by the end of the run) has no figure.
    """
    delays: list[float] = []
    for at_ns in queued_ns:
        first = next((p for p in arrivals if not p.silent and p.at_ns >= at_ns), None)
        if first is not None:
            delays.append((first.at_ns - at_ns) / 1e6)
    return delays


def gap_positions(arrivals: list[Arrival], queued_ns: list[int]) -> list[int]:
    """For each silence inside a reply, how many of its speech packets went out before it.

    A reply runs from its queueing to the next reply's; 1 means the talk spurt's first
    frame went out alone and the second was not queued in time.
    """
    positions: list[int] = []
    ends = [*queued_ns[1:], max((p.at_ns for p in arrivals), default=0) + 1]
    for start, end in zip(queued_ns, ends, strict=True):
        spoken, speaking = 0, False
        for packet in arrivals:
            if not start <= packet.at_ns < end:
                continue
            if not packet.silent:
                if spoken and not speaking:
                    positions.append(spoken)
                spoken += 1
            speaking = not packet.silent
    return positions


def trend(offsets: list[float]) -> float:
    """How far the least-squares line through the offsets moves from first to last packet.

    Jitter moves single packets; drift (a grid that slips) moves this line.
    """
    n = len(offsets)
    mean_x, mean_y = (n - 1) / 2, statistics.fmean(offsets)
    num = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(offsets))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den * (n - 1)


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each numeric figure's median over the runs (nested dicts too; None is no figure)."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, dict):
            out[key] = median_of([run[key] for run in runs])
        elif value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
            values = [run[key] for run in runs if run[key] is not None]
            out[key] = round(statistics.median(values), 3) if values else None
    return out


async def bench(seconds: float, runs: int) -> dict[str, Any]:
    """`runs` runs of each condition, interleaved so that a load change hits both."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in CONDITIONS}
    for index in range(runs):
        for name in CONDITIONS:
            # a run that hangs fails loudly (and cleans up) instead of stalling the bench
            run = await asyncio.wait_for(
                measure(seconds, busy=name == "gil_busy", seed=index), seconds + 60
            )
            results[name].append(run)
            gaps = run["interval_ms"]
            print(
                f"{name:8} run {index + 1}: {run['packets_received']}/{run['packets_expected']}"
                f" packets, interval median {gaps['median']} p99 {gaps['p99']}"
                f" max {gaps['max']} ms, drift {run['drift_last_ms']} ms,"
                f" seq gaps {run['seq_gaps']}, speech gaps {run['speech_gaps']},"
                f" first audio median {run['first_audio_ms']['median']}"
                f" max {run['first_audio_ms']['max']} ms",
                flush=True,
            )
    return {
        "command": " ".join(["python", *sys.argv]),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "switch_interval_s": sys.getswitchinterval(),
        },
        "median": {name: median_of(results[name]) for name in CONDITIONS},
        "runs": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of one run")
    parser.add_argument("--runs", type=int, default=3, help="runs per condition")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    report = asyncio.run(bench(args.seconds, args.runs))
    print(json.dumps(report["median"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
