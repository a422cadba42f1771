"""Soak: a server under steady load for a long time must not leak or drop calls.

Starts `voicebot serve` on a free port with its own data dir, waits until its speech
cache holds every prompt and answer (bounded memory, by design), warms it with one call,
then runs `voicebot loadtest --calls C --duration S` (callers placing recorded banking
calls back to back) and reads the server's RSS from the load test's /metrics samples.
Pass: zero failed or unanswered calls and RSS growth under 5% from the first minute of
load to the end (memory per call must not grow with the number of calls served).

    .venv/bin/python bench/soak.py [--calls 1] [--minutes 30] [--json bench/soak.json]

Issue 7's target is 30 minutes at half the measured capacity (2 on the 2-core machine,
so 1 call). Use a shorter run to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CALLS = ROOT.parent / "shared" / "data" / "speech" / "banking_calls" / "calls"
#: RSS is compared from this far into the load (model warm-up and first allocations).
SETTLE_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("server did not become healthy")


def wait_answers_ready(base: str, timeout_s: float = 900) -> None:
    """Until every prompt and answer is synthesised and pinned (that memory is by design)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
            if json.loads(response.read())["speech_cache"]["answers_ready"]:
                return
        time.sleep(2)
    raise SystemExit("speech cache never became ready")


def loadtest(url: str, calls: int, duration_s: float, out: Path) -> dict[str, Any]:
    subprocess.run(
        [sys.executable, "-m", "voicebot.cli", "loadtest", url, "--calls", str(calls),
         "--duration", str(duration_s), "--ramp", "10", "--wav-dir", str(CALLS), "--json",
         str(out)],
        check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    level: dict[str, Any] = json.loads(out.read_text())["levels"][0]
    return level


def rss_growth(timeline: list[dict[str, float]]) -> dict[str, float | None]:
    """RSS (MiB) once settled and at the end, and the growth between them."""
    rss = [(s["t_s"], s["process_resident_memory_bytes"] / 2**20) for s in timeline
           if "process_resident_memory_bytes" in s]  # fmt: skip
    settled = [m for t, m in rss if t >= SETTLE_S] or [m for _, m in rss]
    if not settled:
        return {"settled_mib": None, "end_mib": None, "growth_pct": None}
    start, end = settled[0], sum(m for _, m in rss[-5:]) / len(rss[-5:])
    return {
        "settled_mib": round(start, 1),
        "end_mib": round(end, 1),
        "growth_pct": round((end - start) / start * 100, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "soak.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        port = free_port()
        env = {**os.environ, "VOICEBOT_SERVER__MAX_CALLS": str(args.calls + 4)}
        env.pop("TWILIO_AUTH_TOKEN", None)  # the load test connects to the stream directly
        proc = subprocess.Popen(
            [sys.executable, "-m", "voicebot.cli", "serve", "--port", str(port), "--data-dir",
             str(Path(tmp) / "data")],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_healthy(f"http://127.0.0.1:{port}", proc)
            wait_answers_ready(f"http://127.0.0.1:{port}")
            url = f"ws://127.0.0.1:{port}/twilio/media"
            loadtest(url, 1, 0, Path(tmp) / "warm.json")  # one call: caches, lazy imports
            level = loadtest(url, args.calls, args.minutes * 60, Path(tmp) / "soak.json")
        finally:
            proc.terminate()
            proc.wait(60)
    growth = rss_growth(level["server"].get("timeline", []))
    failures = len(level["failed"]) + level["unanswered_turns"]
    ok = failures == 0 and growth["growth_pct"] is not None and growth["growth_pct"] < 5.0
    result = {
        "command": f"bench/soak.py --calls {args.calls} --minutes {args.minutes}",
        "concurrent": args.calls,
        "minutes": args.minutes,
        "calls": level["calls"],
        "turns": level["turns"],
        "failures": failures,
        "voice_to_voice_ms": level["voice_to_voice_ms"],
        "late_fraction": level["late_fraction"],
        "rss": growth,
        "cpu_cores_busy": level["server"].get("cpu_cores_busy"),
        "passed": ok,
    }
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
