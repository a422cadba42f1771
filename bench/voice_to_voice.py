"""Voice-to-voice latency on the shared banking calls, measured from the caller's side.

Starts `voicebot serve` on a free local port (or uses --url), dials every call in
`../shared/data/speech/banking_calls` with `voicebot.dial` (real time, as Twilio would),
and reports per caller turn the time from the end of the caller's speech (reference
timings from calls.jsonl) to the first audible bot audio, plus the server's stage
breakdown from its transcripts, premature end-of-turn decisions (cut-offs), intent
accuracy of the whole speech pipeline, and the server's CPU use per second of call.

    .venv/bin/python bench/voice_to_voice.py [--limit N] [--concurrency C] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voicebot.dial import dial  # noqa: E402
from voicebot.transcript import safe_call_dir_name  # noqa: E402

CALLS = ROOT.parent / "shared" / "data" / "speech" / "banking_calls"
CUT_OFF_MARGIN_S = 0.3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def partial_stats(events_path: Path, early_asr_ms: int) -> dict[str, int]:
    """Running partials of one call, from its events log.

    A turn's answer was held up by a partial when the speculation that answered it (the
    turn's last before `turn_ended`) either dropped a partial still computing (it queued
    behind that thread) or came later than `early_asr_ms` into the pause with a partial's
    words arriving within that pause (it waited for the worker to come free); a turn
    answered without a speculation counts when `turn_ended` dropped a running partial.
    """
    events = [json.loads(line) for line in events_path.read_text().splitlines() if line]
    stats = {"partials": 0, "heard": 0, "dropped": 0, "answers_held": 0, "answers_queued": 0}
    answering: dict[int, dict] = {}  # turn -> the speculate (or unreleased end) that answers
    heard_at: dict[int, list[float]] = {}
    dropped: dict[int, list[float]] = {}  # turn -> when the turn's pause dropped a partial
    for event in events:
        kind, turn = event["event"], event.get("turn")
        if kind == "partial":
            stats["partials"] += 1
        elif kind == "partial_transcript":
            stats["heard"] += 1
            heard_at.setdefault(turn, []).append(event["t"])
        elif kind == "partial_dropped":
            stats["dropped"] += 1
            if event["why"] in ("speculate", "turn_ended"):
                dropped.setdefault(turn, []).append(event["t"])
        elif kind == "speculate" or (kind == "turn_ended" and turn not in answering):
            answering[turn] = event
    for turn, event in answering.items():
        at = event["t"]
        queued = any(abs(t - at) < 0.01 for t in dropped.get(turn, []))
        pause_s = event.get("silence_ms", 0) / 1000
        late = event["event"] == "speculate" and event.get("silence_ms", 0) > early_asr_ms
        waited = late and any(at - pause_s <= t <= at for t in heard_at.get(turn, []))
        stats["answers_held"] += queued or waited
        stats["answers_queued"] += queued
    return stats


def answer_holds_ms(events_path: Path, early_asr_ms: int) -> list[float]:
    """Per answered turn, how long its transcript was held up by the ASR worker being busy.

    The answering speculation (the turn's last) came `silence_ms - early_asr_ms` late into
    the pause, and its transcription then waited in the worker's queue from the
    speculation until it started computing (the `transcript` event's time less its
    compute time). At one call at a time only the call's own work makes the worker busy:
    an abandoned speculation or a running partial.
    """
    events = [json.loads(line) for line in events_path.read_text().splitlines() if line]
    answering: dict[int, int] = {}
    for index, event in enumerate(events):
        if event["event"] == "speculate":
            answering[event["turn"]] = index
    holds = []
    for turn, index in answering.items():
        speculate = events[index]
        heard = next(
            (e for e in events[index + 1 :] if e["event"] == "transcript" and e["turn"] == turn),
            None,
        )
        if heard is None or "silence_ms" not in speculate:
            continue
        queued_s = max(0.0, heard["t"] - heard["asr_ms"] / 1000 - speculate["t"])
        holds.append(round(speculate["silence_ms"] - early_asr_ms + queued_s * 1000, 1))
    return holds


def hold_summary(holds: list[float]) -> dict[str, float | int | None]:
    """How many answers were held up (by more than 5 ms), and by how much over all turns."""
    return {
        "turns": len(holds),
        "held_over_5ms": sum(h > 5 for h in holds),
        "mean": round(statistics.mean(holds), 1) if holds else None,
        "p95": percentile(holds, 95) if holds else None,
        "max": max(holds) if holds else None,
    }


def start_server(data_dir: Path, extra_env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, **extra_env}
    proc = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "voicebot"),
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(data_dir / "server.log").open("wb"),
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1) as response:
                if response.status == 200:
                    return proc, base
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("server did not start; see " + str(data_dir / "server.log"))


def wait_for_speech_cache(base: str, timeout_s: float = 600) -> None:
    """Block until the server has synthesised every prompt and grounded answer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
            if json.load(response)["speech_cache"]["answers_ready"]:
                return
        time.sleep(2)
    raise RuntimeError("speech cache not ready in time")


async def run_calls(ws_url: str, calls: list[dict], out: Path, concurrency: int) -> list:
    gate = asyncio.Semaphore(concurrency)

    async def one(call: dict):
        async with gate:
            turns = [(t["start_s"], t["end_s"]) for t in call["turns"]]
            return await dial(ws_url, CALLS / call["file"], out / call["id"], turns=turns)

    return await asyncio.gather(*(one(c) for c in calls))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="existing server base URL (default: start one)")
    parser.add_argument("--data-dir", help="server data dir when --url is given")
    parser.add_argument("--limit", type=int, default=0, help="only the first N calls")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--json", help="write the full results here")
    parser.add_argument(
        "--speech-cache",
        help="copy this speech-cache folder (DATA_DIR/speech-cache of an earlier run) into "
        "the new server's data dir, so start-up loads prompts from disk instead of "
        "synthesising them (minutes on the CPU; the calls are served the same either way)",
    )
    parser.add_argument(
        "--turns",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="[turns] overrides for the server, e.g. partial_every_ms=0",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="do not pre-synthesise answers (every reply's speech is made after the turn)",
    )
    args = parser.parse_args()

    calls = [json.loads(line) for line in (CALLS / "calls.jsonl").read_text().splitlines()]
    if args.limit:
        calls = calls[: args.limit]
    work = Path(tempfile.mkdtemp(prefix="v2v-"))
    proc = None
    if args.url:
        base, data_dir = args.url.rstrip("/"), Path(args.data_dir or "data")
    else:
        data_dir = work / "data"
        data_dir.mkdir()
        if args.speech_cache:
            shutil.copytree(args.speech_cache, data_dir / "speech-cache")
        env = {"VOICEBOT_TTS__PREPARE_ANSWERS": "false"} if args.cold else {}
        for override in args.turns:
            key, _, value = override.partition("=")
            env[f"VOICEBOT_TURNS__{key.strip().upper()}"] = value.strip()
        proc, base = start_server(data_dir, env)
        if not args.cold:
            wait_for_speech_cache(base)
    ws_url = base.replace("http", "ws", 1) + "/twilio/media"
    cpu_before = cpu_seconds(proc.pid) if proc else 0.0
    started = time.monotonic()
    results = asyncio.run(run_calls(ws_url, calls, work / "dial", args.concurrency))
    wall = time.monotonic() - started
    cpu = (cpu_seconds(proc.pid) - cpu_before) if proc else float("nan")
    if proc:
        proc.terminate()
        proc.wait(timeout=30)

    v2v, unanswered, cutoffs, intents_ok, intents_n, barge_ins = [], 0, 0, 0, 0, 0
    stages: dict[str, list[float]] = {}
    partials: dict[str, int] = {}
    holds: list[float] = []
    early_asr_ms = next(
        (int(o.split("=", 1)[1]) for o in args.turns if o.startswith("early_asr_ms=")), 60
    )
    call_seconds = 0.0
    for call, result in zip(calls, results, strict=True):
        call_seconds += result.duration_s
        for turn in result.turns:
            if turn.voice_to_voice_ms is None:
                unanswered += 1
            else:
                v2v.append(turn.voice_to_voice_ms)
        record_path = data_dir / "calls" / safe_call_dir_name(result.call_sid) / "transcript.json"
        record = json.loads(record_path.read_text())
        events_path = record_path.with_name("events.jsonl")
        if events_path.exists():
            for key, value in partial_stats(events_path, early_asr_ms).items():
                partials[key] = partials.get(key, 0) + value
            holds += answer_holds_ms(events_path, early_asr_ms)
        for served in record["turns"]:
            for key, value in served["timings"].items():
                stages.setdefault(key, []).append(value)
            barge_ins += served["barge_in"]
            for gold in call["turns"]:
                inside = gold["start_s"] < served["ended_s"] < gold["end_s"] - CUT_OFF_MARGIN_S
                if inside:
                    cutoffs += 1
        for gold in call["turns"]:
            intents_n += 1
            matched = [s for s in record["turns"] if abs(s["ended_s"] - gold["end_s"]) < 1.0]
            intents_ok += any(s["intent"] == gold["intent"] for s in matched)

    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "calls": len(calls),
        "caller_turns": sum(len(c["turns"]) for c in calls),
        "concurrency": args.concurrency,
        "answers_pre_synthesised": not args.cold,
        "turns_overrides": args.turns,
        "voice_to_voice_ms": {
            "median": round(statistics.median(v2v), 1) if v2v else None,
            "p95": round(percentile(v2v, 95), 1) if v2v else None,
            "min": round(min(v2v), 1) if v2v else None,
            "max": round(max(v2v), 1) if v2v else None,
        },
        "stage_median_ms": {k: round(statistics.median(v), 1) for k, v in sorted(stages.items())},
        "unanswered_turns": unanswered,
        "premature_end_of_turn": cutoffs,
        "barge_ins": barge_ins,
        "partials": {
            **partials,
            "per_answered_turn": round(partials.get("partials", 0) / len(v2v), 2) if v2v else None,
        },
        "answer_hold_ms": hold_summary(holds),
        "intent_accuracy": round(intents_ok / intents_n, 3) if intents_n else None,
        "server_cpu_s_per_call_s": round(cpu / call_seconds, 3) if call_seconds else None,
        "wall_s": round(wall, 1),
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "v2v_ms": v2v}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
