"""Which packaged Whisper for the CPU default: tiny.en or base? WER and latency, measured.

Transcribes every caller turn of the shared banking calls (cut at the reference
timings, 0.2 s before to 0.3 s after) and the real speech clips (8 kHz mu-law), through
the same faster-whisper backend the server uses (int8, greedy, 2 threads), and
reports word error rate and per-utterance latency for each model.

    .venv/bin/python bench/asr_choice.py [--models tiny.en base] [--json OUT]

WER normalisation is simple (lower case, punctuation removed, numbers as written), so
absolute figures are pessimistic ("2" vs "two" counts as an error); the comparison
between models is what this is for.
"""

from __future__ import annotations

import argparse
import json
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
from voicebot.dialogue.rules import normalise  # noqa: E402
from voicebot.wavio import read_wav  # noqa: E402

SPEECH = ROOT.parent / "shared" / "data" / "speech"


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def utterances() -> dict[str, list[tuple[np.ndarray, str]]]:
    sets: dict[str, list[tuple[np.ndarray, str]]] = {"banking_calls": [], "real_8k": []}
    calls_dir = SPEECH / "banking_calls"
    for line in (calls_dir / "calls.jsonl").read_text().splitlines():
        call = json.loads(line)
        audio = read_wav(calls_dir / call["file"])
        pcm = resample(audio.pcm, audio.sample_rate, 16000)
        for turn in call["turns"]:
            segment = pcm[int((turn["start_s"] - 0.2) * 16000) : int((turn["end_s"] + 0.3) * 16000)]
            sets["banking_calls"].append((segment, turn["text"]))
    for line in (SPEECH / "real" / "manifest_8k.jsonl").read_text().splitlines():
        clip = json.loads(line)
        audio = read_wav(SPEECH / "real" / clip["audio"])
        sets["real_8k"].append((resample(audio.pcm, audio.sample_rate, 16000), clip["text"]))
    return sets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--json")
    args = parser.parse_args()
    data = utterances()
    report: dict[str, object] = {"machine": f"{platform.machine()}, 2 threads, int8"}
    for name in args.models:
        model = FasterWhisperRecognizer(name, cpu_threads=2)
        model.transcribe(np.zeros(16000, np.int16))
        for set_name, items in data.items():
            errors = words = 0
            latencies = []
            for audio, reference in items:
                started = time.perf_counter()
                text = model.transcribe(audio).text
                latencies.append((time.perf_counter() - started) * 1000)
                ref, hyp = normalise(reference).split(), normalise(text).split()
                errors += edit_distance(ref, hyp)
                words += len(ref)
            report[f"{name}/{set_name}"] = {
                "utterances": len(items),
                "wer": round(errors / words, 4),
                "latency_ms_median": round(statistics.median(latencies), 1),
                "latency_ms_p90": round(float(np.percentile(latencies, 90)), 1),
            }
            print(name, set_name, report[f"{name}/{set_name}"], flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
