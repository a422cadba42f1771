"""End-of-turn detection offline: false cut-offs and end-of-turn delay, per VAD and policy.

Drives the real VAD (webrtcvad or Silero) and the real turn-taker (`voicebot.turns`)
over phone audio frame by frame on a simulated clock, with no server. Where the
turn-taker asks for a speculative transcript (`Speculate`), the audio heard so far in
the turn is transcribed with the real ASR (faster-whisper tiny.en, the server's CPU
settings) and the text is handed back `--asr-latency-ms` later, as the Call does. The
latency is modelled (not the measured compute time) so runs are repeatable on a busy
machine; the measured compute time is reported beside it.

Data: the 30 shared banking calls (caller turns with reference start/end) and the 16
real speech clips (8 kHz mu-law; one turn each, padded with 1 s of silence before and
2 s after; the reference start and end are where the audio is within 40 dB of its
peak, the rule the banking calls were trimmed with).

- false cut-off: a turn ended (TurnEnded) inside a reference turn, before its end, so the
  bot would have started while the caller was mid-sentence;
- delay: for each reference turn, the first TurnEnded at or after its end, minus the end;
  a turn with no such end before the next one starts is counted as "missed";
- ready: the same, but to when the bot could answer: the later of the turn's end and the
  arrival of its transcript (a fixed endpoint still waits for Whisper before replying).
- speculations: transcriptions started per reference turn, and how many were wasted
  (the caller went on). The call's ASR is one worker: a speculation queued behind a
  wasted one waits for it (a running transcription cannot be stopped; one not yet
  started is dropped), which is what an early `early_asr_ms` costs besides CPU.

`--early-asr-ms 150 80 40` adds the adaptive policy at each early-ASR silence, written
"early E/B": E while the worker is idle, B while it is busy (E/E: never waits for it).

    nice -n 10 .venv/bin/python bench/endpointing.py --json bench/endpointing.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.protocols import PCM16, VoiceActivityDetector  # noqa: E402
from telephony.resample import resample  # noqa: E402
from voicebot.config import TurnConfig  # noqa: E402
from voicebot.turns import (  # noqa: E402
    CallerResumed,
    CallerStarted,
    Speculate,
    TurnDiscarded,
    TurnEnded,
    TurnTaker,
)
from voicebot.wavio import read_wav  # noqa: E402

SPEECH = ROOT.parent / "shared" / "data" / "speech"
FRAME = 320
PREROLL_S = 0.54  # the Call's ring of frames kept before a turn's onset (preroll + barge)


@dataclass
class Clip:
    """One recording and its reference caller turns (start_s, end_s)."""

    id: str
    dataset: str
    pcm: PCM16
    turns: list[tuple[float, float]]


@dataclass
class Outcome:
    """What one configuration did on one clip."""

    cutoffs: list[dict[str, Any]] = field(default_factory=list)
    delays_ms: list[float] = field(default_factory=list)
    ready_ms: list[float] = field(default_factory=list)
    missed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    speculations: int = 0
    wasted: int = 0


def load_banking(limit: int | None) -> list[Clip]:
    folder = SPEECH / "banking_calls"
    clips = []
    for line in (folder / "calls.jsonl").read_text().splitlines()[:limit]:
        call = json.loads(line)
        audio = read_wav(folder / call["file"])
        pcm = resample(audio.pcm, audio.sample_rate, 16_000)
        turns = [(t["start_s"], t["end_s"]) for t in call["turns"]]
        clips.append(Clip(call["id"], "banking", pcm, turns))
    return clips


def speech_bounds(pcm: PCM16, rate: int) -> tuple[float, float]:
    """First and last 10 ms frame within 40 dB of the loudest one."""
    hop = rate // 100
    frames = pcm[: pcm.size // hop * hop].astype(np.float64).reshape(-1, hop)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-9)
    loud = np.flatnonzero(level > level.max() - 40)
    return loud[0] / 100, (loud[-1] + 1) / 100


def load_real(limit: int | None) -> list[Clip]:
    folder = SPEECH / "real"
    clips = []
    for line in (folder / "manifest.jsonl").read_text().splitlines()[:limit]:
        item = json.loads(line)
        phone = read_wav(folder / item["file_8k_ulaw"])
        pcm = resample(phone.pcm, phone.sample_rate, 16_000)
        start, end = speech_bounds(phone.pcm, phone.sample_rate)
        pad = np.zeros(16_000, np.int16)
        clips.append(
            Clip(item["id"], "real", np.concatenate([pad, pcm, pad, pad]), [(start + 1, end + 1)])
        )
    return clips


class Transcripts:
    """The real ASR on the audio of a pause, cached (the same pause recurs across runs)."""

    def __init__(self, saved: Path | None = None) -> None:
        from models.asr_faster_whisper import FasterWhisperRecognizer

        self.asr = FasterWhisperRecognizer("tiny.en", cpu_threads=2, beam_size=1)
        self.asr.transcribe(np.zeros(16_000, np.int16))
        self.saved = saved
        self.cache: dict[str, str] = (
            json.loads(saved.read_text()) if saved is not None and saved.is_file() else {}
        )
        self.compute_ms: list[float] = []

    def text(self, clip: Clip, start_s: float, end_s: float) -> str:
        first, last = round(start_s * 16_000), round(end_s * 16_000)
        key = f"{clip.id}|{first}|{last}"
        if key not in self.cache:
            started = time.perf_counter()
            heard = self.asr.transcribe(clip.pcm[first:last])
            self.compute_ms.append((time.perf_counter() - started) * 1000)
            self.cache[key] = "" if heard.no_speech_prob > 0.6 else heard.text
        return self.cache[key]

    def save(self) -> None:
        """Keep the transcripts for the next run (`--transcripts FILE`): same audio, same text."""
        if self.saved is not None:
            self.saved.write_text(json.dumps(self.cache))


def vad_decisions(
    make: Callable[[], VoiceActivityDetector], pcm: PCM16
) -> tuple[list[bool], float]:
    vad = make()
    frames = pcm[: pcm.size // FRAME * FRAME].reshape(-1, FRAME)
    started = time.perf_counter()
    said = [vad.is_speech(f) for f in frames]
    return said, (time.perf_counter() - started) / len(frames) * 1e6


def simulate(
    clip: Clip,
    said: list[bool],
    config: TurnConfig,
    latency_s: float,
    transcripts: Transcripts,
) -> Outcome:
    """Run the turn-taker over one clip's VAD decisions; the bot answers at once."""
    turns = TurnTaker(config)
    ends: list[tuple[TurnEnded, float, str]] = []  # with when the answer is ready, the words
    pending: tuple[float, str] | None = None  # (arrival, text) of the pause's transcript
    turn_start = 0.0
    last_heard = ""
    worker_free = 0.0  # the one ASR worker is busy until then
    queued: tuple[float, float] | None = None  # (start, worker_free before) of `pending`
    speculations = wasted = 0
    for index, speech in enumerate(said):
        at = round((index + 1) * FRAME / 16_000, 3)
        actions = []
        if pending is not None and pending[0] <= at:
            actions += turns.on_transcript(turns.turn, pending[0], pending[1])
            last_heard, pending = pending[1], None
        turns.asr_busy = worker_free > at  # as the Call reads ModelWorkers.asr_busy
        actions += turns.on_frame(at, speech)
        for action in actions:
            if isinstance(action, CallerStarted):
                turn_start = max(action.at - PREROLL_S, 0.0)
            elif isinstance(action, Speculate):
                text = transcripts.text(clip, turn_start, action.at)
                start = max(action.at, worker_free)
                queued, worker_free = (start, worker_free), start + latency_s
                pending = (worker_free, text)
                speculations += 1
            elif isinstance(action, (CallerResumed, TurnDiscarded)):
                if pending is not None:
                    wasted += 1
                    if queued is not None and queued[0] > action.at:  # never started
                        worker_free = queued[1]
                pending = queued = None
            elif isinstance(action, TurnEnded):
                ready = max(action.at, pending[0]) if pending else action.at
                heard = pending[1] if pending else last_heard
                ends.append((action, ready, heard))
                pending = queued = None
                turns.on_bot_audio(action.at)  # a short reply, then the floor is free
                turns.on_bot_done(action.at)
    outcome = score(clip, ends)
    outcome.speculations, outcome.wasted = speculations, wasted
    return outcome


def score(clip: Clip, ends: list[tuple[TurnEnded, float, str]]) -> Outcome:
    outcome = Outcome()
    outcome.reasons.update(end.endpoint for end, _, _ in ends)
    for number, (start, end) in enumerate(clip.turns):
        following = clip.turns[number + 1][0] if number + 1 < len(clip.turns) else 1e9
        for ended, _, heard in ends:
            if start < ended.at < end:
                outcome.cutoffs.append(
                    {
                        "clip": clip.id,
                        "turn": number,
                        "at": ended.at,
                        "ref_end": end,
                        "endpoint": ended.endpoint,
                        "endpoint_ms": ended.endpoint_ms,
                        "heard": heard,
                    }
                )
        after = [(e.at, ready) for e, ready, _ in ends if end <= e.at < following]
        if after:
            at, ready = min(after)
            outcome.delays_ms.append((at - end) * 1000)
            outcome.ready_ms.append((ready - end) * 1000)
        else:
            outcome.missed += 1
    return outcome


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    delays = [d for o in outcomes for d in o.delays_ms]
    ready = [d for o in outcomes for d in o.ready_ms]
    reasons: Counter[str] = Counter()
    for o in outcomes:
        reasons.update(o.reasons)
    return {
        "turns": len(delays) + sum(o.missed for o in outcomes),
        "false_cutoffs": sum(len(o.cutoffs) for o in outcomes),
        "delay_p50_ms": round(statistics.median(delays)) if delays else None,
        "delay_p95_ms": round(percentile(delays, 95)) if delays else None,
        "delay_max_ms": round(max(delays)) if delays else None,
        "ready_p50_ms": round(statistics.median(ready)) if ready else None,
        "ready_p95_ms": round(percentile(ready, 95)) if ready else None,
        "missed": sum(o.missed for o in outcomes),
        "speculations_per_turn": round(
            sum(o.speculations for o in outcomes) / max(len(delays), 1), 2
        ),
        "wasted_speculations": sum(o.wasted for o in outcomes),
        "endpoints_by_reason": dict(reasons),
        "cutoffs": [c for o in outcomes for c in o.cutoffs],
    }


def vad_makers(names: list[str]) -> dict[str, Callable[[], VoiceActivityDetector]]:
    makers: dict[str, Callable[[], VoiceActivityDetector]] = {}
    if "webrtc" in names:
        from models.vad_webrtc import WebRtcVad

        makers["webrtc"] = lambda: WebRtcVad(3)
    if "silero" in names:
        from models.vad_silero import SileroModel, SileroVad

        model = SileroModel()
        makers["silero"] = lambda: SileroVad(model, 0.5)
    return makers


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--vad", nargs="+", default=["webrtc", "silero"])
    parser.add_argument("--asr-latency-ms", nargs="+", type=int, default=[500, 100])
    parser.add_argument("--limit", type=int, default=None, help="first N clips of each set")
    parser.add_argument(
        "--early-asr-ms",
        nargs="*",
        type=int,
        default=[],
        help="also run the adaptive policy with speculation at these silences",
    )
    parser.add_argument(
        "--min-endpoint-ms",
        nargs="*",
        type=int,
        default=[],
        help="also run the adaptive policy with one floor for every complete turn "
        "(questions and statements alike)",
    )
    parser.add_argument(
        "--statement-endpoint-ms",
        nargs="*",
        type=int,
        default=[],
        help="also run the adaptive policy with these silences after a complete statement",
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--transcripts", type=Path, default=None, help="read/write a cache of pause transcripts"
    )
    args = parser.parse_args()

    clips = load_banking(args.limit) + load_real(args.limit)
    transcripts = Transcripts(args.transcripts)
    base = TurnConfig()
    policies = [
        (f"{name}, ASR {ms} ms", config, ms / 1000)
        for ms in args.asr_latency_ms
        for name, config in (
            ("fixed 600 ms", replace(base, endpointing="fixed", endpoint_ms=600)),
            ("fixed 300 ms", replace(base, endpointing="fixed", endpoint_ms=300)),
            ("adaptive", replace(base, endpointing="adaptive")),
            *(
                (
                    f"adaptive, early {early}/{busy}",
                    replace(base, early_asr_ms=early, early_asr_busy_ms=busy),
                )
                for early in args.early_asr_ms
                for busy in sorted({early, max(early, base.early_asr_busy_ms)})
                if (early, busy) != (base.early_asr_ms, base.early_asr_busy_ms)
            ),
            *(
                (
                    f"adaptive, floor {floor}",
                    replace(base, min_endpoint_ms=floor, statement_endpoint_ms=floor),
                )
                for floor in args.min_endpoint_ms
            ),
            *(
                (
                    f"adaptive, statements {ms}",
                    replace(base, statement_endpoint_ms=ms, endpoint_ms=max(ms, base.endpoint_ms)),
                )
                for ms in args.statement_endpoint_ms
                if ms != base.statement_endpoint_ms
            ),
        )
    ]
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "turn_config": base.__dict__,
        "clips": {
            "banking": sum(c.dataset == "banking" for c in clips),
            "real": sum(c.dataset == "real" for c in clips),
        },
        "runs": [],
    }
    for vad_name, make in vad_makers(args.vad).items():
        decided = {}
        costs = []
        for clip in clips:
            decided[clip.id], cost = vad_decisions(make, clip.pcm)
            costs.append(cost)
        frame_us = statistics.median(costs)
        print(f"{vad_name}: {frame_us:.1f} us per 20 ms frame (median over clips)")
        for name, config, latency in policies:
            row: dict[str, Any] = {
                "vad": vad_name,
                "policy": name,
                "vad_us_per_frame": round(frame_us, 1),
            }
            for dataset in ("banking", "real"):
                outcomes = [
                    simulate(c, decided[c.id], config, latency, transcripts)
                    for c in clips
                    if c.dataset == dataset
                ]
                row[dataset] = summary(outcomes)
            results["runs"].append(row)
            b, r = row["banking"], row["real"]
            print(
                f"  {name:28} banking: cut-offs {b['false_cutoffs']:2}, end p50/p95 "
                f"{b['delay_p50_ms']}/{b['delay_p95_ms']}, ready {b['ready_p50_ms']}/"
                f"{b['ready_p95_ms']} ms, missed {b['missed']} | real: cut-offs "
                f"{r['false_cutoffs']:2}, end {r['delay_p50_ms']}/{r['delay_p95_ms']}, ready "
                f"{r['ready_p50_ms']}/{r['ready_p95_ms']} ms, missed {r['missed']} | "
                f"speculations/turn {b['speculations_per_turn']}/{r['speculations_per_turn']}, "
                f"wasted {b['wasted_speculations']}/{r['wasted_speculations']}"
            )
    if transcripts.compute_ms:
        results["asr_compute_ms_p50"] = round(statistics.median(transcripts.compute_ms))
        results["asr_transcriptions"] = len(transcripts.compute_ms)
        print(
            f"ASR: {len(transcripts.compute_ms)} speculative transcriptions, "
            f"median {results['asr_compute_ms_p50']} ms compute"
        )
    transcripts.save()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
