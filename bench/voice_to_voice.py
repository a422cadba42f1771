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
        env = {"VOICEBOT_TTS__PREPARE_ANSWERS": "false"} if args.cold else {}
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
