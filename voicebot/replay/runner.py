"""`voicebot replay`: one call in process, a folder across processes, reports for each.

Each worker process loads the models once and replays its calls one after another on
one event loop; with N processes on N cores a folder of calls replays N at a time.
Output: `OUT/report.json` and `OUT/report.html` for a single call; for a folder, the
same per call under `OUT/<name>/`, plus `OUT/report.json` (every call's summary) and
`OUT/index.html`. With `--compare`, the exit status is 1 when any rule broke.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path
from typing import Any

from voicebot.config import Config
from voicebot.replay.compare import compare, parse_rules
from voicebot.replay.driver import replay_call
from voicebot.replay.report import build_report, turn_clips
from voicebot.replay.sources import Source, discover, load, original_turns
from voicebot.services import CallServices
from voicebot.transcript import call_directory

log = logging.getLogger(__name__)

_worker: tuple[CallServices, asyncio.AbstractEventLoop, Config, bool] | None = None


def _replay_config(config: Config, out_dir: Path) -> Config:
    """Per-call settings: outputs under out_dir, no capture, no shared store."""
    return replace(
        config,
        server=replace(config.server, data_dir=str(out_dir)),
        recording=replace(config.recording, capture=False, enabled=True),
        store=replace(config.store, url=""),
    )


def _init_worker(config: Config, threads: int, with_compare: bool) -> None:
    """Process initializer: load every model once."""
    from voicebot.app import build_services

    logging.basicConfig(level=logging.WARNING)
    tuned = replace(
        config,
        asr=replace(config.asr, threads=threads),
        tts=replace(config.tts, threads=threads),
    )
    attach(build_services(tuned, with_store=False), tuned, with_compare)


def attach(services: CallServices, config: Config, with_compare: bool) -> None:
    """Replay with models already loaded (this process's worker state)."""
    global _worker
    _worker = (services, asyncio.new_event_loop(), config, with_compare)


def replay_source(source: Source, out_dir: Path) -> dict[str, Any]:
    """Replay one source in this process; returns its summary row."""
    if _worker is None:
        raise RuntimeError("replay worker not initialised")
    services, loop, config, with_compare = _worker
    started = time.perf_counter()
    side = load(source, services.recording_key)
    call_config = _replay_config(config, out_dir)
    record, phone = loop.run_until_complete(replay_call(source.name, side, services, call_config))
    if record is None:
        raise RuntimeError(f"{source.name}: the replayed call never started")
    report = build_report(source.name, source.path, record, call_config, services.redactor)
    original = original_turns(source) if with_compare else None
    if original is not None:
        report["comparison"] = compare(
            original,
            report,
            parse_rules(config.replay.fail_on),
            original_path=str(source.original),
        )
    recording = call_directory(out_dir, record.call_id) / "recording.wav"
    _write_outputs(out_dir, report, turn_clips(recording, report))
    wall = time.perf_counter() - started
    return {
        "name": source.name,
        "input": str(source.path),
        "report": str(out_dir / "report.html"),
        "duration_s": report["duration_s"],
        "replay_s": round(wall, 2),
        "phone_errors": phone.errors,
        **report["summary"],
        "comparison": report["comparison"],
    }


def _write_outputs(out_dir: Path, report: dict[str, Any], clips: dict[int, bytes]) -> None:
    from voicebot.report.html import write_report

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    write_report(out_dir / "report.html", report, clips)


def _table(rows: list[dict[str, Any]]) -> str:
    header = f"{'call':<28} {'turns':>5} {'barge':>5} {'v2v ms':>7} {'replay s':>8}  compare"
    lines = [header, "-" * len(header)]
    for row in rows:
        comparison = row.get("comparison")
        verdict = "-" if comparison is None else ("pass" if comparison["passed"] else "FAIL")
        v2v = row.get("voice_to_voice_ms_median")
        lines.append(
            f"{row['name'][:28]:<28} {row['turns']:>5} {row['barge_ins']:>5} "
            f"{v2v if v2v is not None else '-':>7} {row['replay_s']:>8}  {verdict}"
        )
    return "\n".join(lines)


def run_replay(
    input_path: Path, out: Path, config: Config, *, with_compare: bool, jobs: int = 0
) -> int:
    """Replay INPUT into OUT; returns the process exit status."""
    sources = discover(input_path)
    parse_rules(config.replay.fail_on)
    cores = os.cpu_count() or 1
    jobs = max(1, min(jobs or config.replay.jobs or cores, len(sources)))
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    if len(sources) == 1:
        _init_worker(config, max(1, cores), with_compare)
        rows.append(replay_source(sources[0], out))
    else:
        rows = _replay_many(sources, out, config, jobs, max(1, cores // jobs), with_compare)
    wall = time.perf_counter() - started
    audio_s = sum(float(r["duration_s"] or 0) for r in rows)
    summary: dict[str, Any] = {
        "calls": len(rows),
        "audio_s": round(audio_s, 1),
        "wall_s": round(wall, 1),
        "speed_x_real_time": round(audio_s / wall, 1) if wall else None,
        "jobs": jobs,
        "failed_comparisons": [
            r["name"] for r in rows if r["comparison"] and not r["comparison"]["passed"]
        ],
    }
    if len(sources) > 1:
        from voicebot.report.html import render_index

        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps({"summary": summary, "calls": rows}, indent=2))
        (out / "index.html").write_text(render_index(rows), encoding="utf-8")
    print(_table(rows))
    print(
        f"{summary['calls']} call(s), {summary['audio_s']} s of audio in {summary['wall_s']} s "
        f"({summary['speed_x_real_time']}x real time, {jobs} process(es))"
    )
    if with_compare and summary["failed_comparisons"]:
        print("comparison FAILED for: " + ", ".join(summary["failed_comparisons"]))
        return 1
    return 0


def _replay_many(
    sources: list[Source],
    out: Path,
    config: Config,
    jobs: int,
    threads: int,
    with_compare: bool,
) -> list[dict[str, Any]]:
    from tqdm import tqdm

    rows: list[dict[str, Any]] = []
    # spawn, not fork: the parent may hold model threads and locks a fork would copy.
    with ProcessPoolExecutor(
        jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(config, threads, with_compare),
    ) as pool:
        futures = {pool.submit(replay_source, s, out / s.name): s for s in sources}
        for future in tqdm(as_completed(futures), total=len(futures), unit="call", desc="replay"):
            rows.append(future.result())
    rows.sort(key=lambda r: str(r["name"]))
    return rows
