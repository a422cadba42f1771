"""How fast a folder of recorded calls replays, cold and warm, and whether it is repeatable.

Runs `voicebot replay FOLDER --out OUT --data-dir D` as a QA pipeline would: the first
run on an empty data dir (every phrase the bot says is synthesised, and the template
phrases are kept on disk), then again on the same data dir (prompts and answers come
from the speech cache, as on a machine where the server has run). Each round uses a
fresh data dir; the figure is the median over rounds. It also checks that the cold and
warm runs wrote the same `report.json` for every call, apart from timings.

    .venv/bin/python bench/replay_speed.py [--calls DIR] [--rounds 3] [--json OUT]

The speed counts everything the command does: process start, model loading in each
worker, every call, and the reports.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CALLS = ROOT.parent / "shared" / "data" / "speech" / "banking_calls" / "calls"
#: Fields that measure this run rather than describe what the bot did.
TIMING_KEYS = {"timings", "replay_s", "wall_s", "speed_x_real_time", "generated_at"}


def without_timings(value: Any) -> Any:
    """A report with its measured timings removed, for comparing two runs."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def replay(calls: Path, out: Path, data_dir: Path) -> dict[str, Any]:
    """One `voicebot replay` run; its summary (from OUT/report.json) and wall time."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "voicebot.cli", "replay", str(calls), "--out", str(out),
         "--data-dir", str(data_dir)],
        check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wall = time.perf_counter() - started
    summary: dict[str, Any] = json.loads((out / "report.json").read_text())["summary"]
    summary["command_wall_s"] = round(wall, 1)
    summary["x_real_time_incl_start"] = round(summary["audio_s"] / wall, 1)
    return summary


def differing_calls(a: Path, b: Path) -> list[str]:
    """Calls whose report.json differs between two runs, apart from timings."""
    names = []
    for report in sorted(a.glob("*/report.json")):
        other = b / report.parent.name / "report.json"
        first = without_timings(json.loads(report.read_text()))
        second = without_timings(json.loads(other.read_text())) if other.is_file() else None
        if first != second:
            names.append(report.parent.name)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=Path, default=CALLS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "replay_speed.json")
    args = parser.parse_args()
    rounds = []
    for index in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="replay-bench-") as tmp:
            base = Path(tmp)
            cold = replay(args.calls, base / "cold", base / "data")
            warm = replay(args.calls, base / "warm", base / "data")
            diff = differing_calls(base / "cold", base / "warm")
        rounds.append({"cold": cold, "warm": warm, "calls_differing": diff})
        print(
            f"round {index + 1}: cold {cold['speed_x_real_time']}x, "
            f"warm {warm['speed_x_real_time']}x real time, {len(diff)} call(s) differ"
        )

    def median(kind: str, key: str) -> float:
        return statistics.median(float(r[kind][key]) for r in rounds)

    result = {
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "command": f"voicebot replay {args.calls} --out OUT --data-dir D",
        "calls": rounds[0]["cold"]["calls"],
        "audio_s": rounds[0]["cold"]["audio_s"],
        "jobs": rounds[0]["cold"]["jobs"],
        "median_x_real_time": {
            "cold": median("cold", "speed_x_real_time"),
            "warm": median("warm", "speed_x_real_time"),
        },
        "median_x_real_time_incl_process_start": {
            "cold": median("cold", "x_real_time_incl_start"),
            "warm": median("warm", "x_real_time_incl_start"),
        },
        "rounds": rounds,
    }
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rounds"}, indent=2))


if __name__ == "__main__":
    main()
