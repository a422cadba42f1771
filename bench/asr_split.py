"""Where a turn's Whisper time goes: features, encoder and decoder, on 30 s vs trimmed windows.

The shared banking calls' caller turns (8 kHz mu-law, cut at the reference bounds with
0.1 s before and 0.15 s after, resampled to 16 kHz), transcribed by faster-whisper
tiny.en (int8) through CTranslate2's own calls timed apart: feature extraction, `encode`
on a window of `--windows` seconds, greedy `generate`. Medians per turn in ms, after one
untimed pass (warm caches). Only the split and the ratio between windows are meant to be
read: the absolute figures move with the machine's load.

    .venv/bin/python bench/asr_split.py --limit 10 --json bench/asr_split.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.asr_faster_whisper import FasterWhisperRecognizer  # noqa: E402
from telephony.resample import resample  # noqa: E402
from voicebot.wavio import read_wav  # noqa: E402

CALLS = ROOT.parent / "shared" / "data" / "speech" / "banking_calls"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=10, help="the first N calls")
    parser.add_argument("--windows", nargs="+", type=float, default=[30, 10])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    calls = [json.loads(line) for line in (CALLS / "calls.jsonl").read_text().splitlines()]
    turns = []
    for call in calls[: args.limit]:
        wav = read_wav(CALLS / call["file"])
        pcm = np.asarray(wav.pcm, dtype=np.int16)
        for turn in call["turns"]:
            first = int(max(0.0, turn["start_s"] - 0.1) * wav.sample_rate)
            last = int((turn["end_s"] + 0.15) * wav.sample_rate)
            turns.append(resample(pcm[first:last], wav.sample_rate, 16_000))

    recognizer = FasterWhisperRecognizer("tiny.en")
    model = recognizer._model
    frames_per_s = model.feature_extractor.sampling_rate // model.feature_extractor.hop_length
    results: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "load_average": os.getloadavg(),
        "turns": len(turns),
        "audio_s_median": round(statistics.median(a.size / 16_000 for a in turns), 2),
        "windows": {},
    }
    for window_s in args.windows:
        timings: dict[str, list[float]] = {"features": [], "encoder": [], "decoder": []}
        tokens: list[int] = []
        for timed in (False, True):
            for audio in turns:
                samples = audio.astype(np.float32) / 32768.0
                started = time.perf_counter()
                features = model.feature_extractor(samples)[:, :-1]
                frames = int(window_s * frames_per_s)
                window = np.zeros((features.shape[0], frames), dtype=features.dtype)
                window[:, : min(frames, features.shape[1])] = features[:, :frames]
                featured = time.perf_counter()
                encoded = model.encode(window)
                encoded_at = time.perf_counter()
                budget = recognizer.token_budget(samples.size / 16_000)
                result = model.model.generate(
                    encoded,
                    [recognizer._prompt],
                    max_length=recognizer._ct2_max_length(budget),
                    suppress_blank=True,
                    suppress_tokens=recognizer._suppress,
                )[0]
                done = time.perf_counter()
                if timed:
                    timings["features"].append((featured - started) * 1000)
                    timings["encoder"].append((encoded_at - featured) * 1000)
                    timings["decoder"].append((done - encoded_at) * 1000)
                    tokens.append(len(result.sequences_ids[0]))
        row = {k: round(statistics.median(v), 1) for k, v in timings.items()}
        row["tokens_median"] = statistics.median(tokens)
        results["windows"][str(window_s)] = row  # type: ignore[index]
        print(f"window {window_s:g} s: {row}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
