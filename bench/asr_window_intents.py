"""Whisper's encoder window against words and intents on the shared banking calls.

Each of the 90 caller turns is cut at its reference bounds (300 ms before, 60 ms after,
as the server's pre-roll and early speculation see it), transcribed by faster-whisper
tiny.en (int8) with `min_window_s` 30 (Whisper's own window) and 10 / 15 (trimmed), and
classified by the bank domain's intent model. Reports WER (Whisper's English
normaliser), intent accuracy, and per turn which settings got the intent right, so
the difference can be read as turns gained and lost, not only as a total.

    .venv/bin/python bench/asr_window_intents.py --json bench/asr_window_intents.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.asr_faster_whisper import FasterWhisperRecognizer  # noqa: E402
from telephony.resample import resample  # noqa: E402
from voicebot.app import build_services  # noqa: E402
from voicebot.config import load_config  # noqa: E402
from voicebot.wavio import read_wav  # noqa: E402
from voicebot.wer import english_normalizer, word_errors  # noqa: E402

CALLS = ROOT.parent / "shared" / "data" / "speech" / "banking_calls"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--windows", nargs="+", type=float, default=[30, 10, 15])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    calls = [json.loads(line) for line in (CALLS / "calls.jsonl").read_text().splitlines()]
    turns: list[tuple[str, str, np.ndarray]] = []
    for call in calls:
        wav = read_wav(CALLS / call["file"])
        pcm = np.asarray(wav.pcm, dtype=np.int16)
        for turn in call["turns"]:
            first = int(max(0.0, turn["start_s"] - 0.3) * wav.sample_rate)
            last = int((turn["end_s"] + 0.06) * wav.sample_rate)
            audio = resample(pcm[first:last], wav.sample_rate, 16_000)
            turns.append((turn["text"], turn["intent"], audio))

    services = build_services(load_config(None))
    normalize = english_normalizer()
    results: dict[str, object] = {
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "turns": len(turns),
        "runs": {},
    }
    correct: dict[float, list[bool]] = {}
    try:
        for window in args.windows:
            recognizer = FasterWhisperRecognizer("tiny.en", min_window_s=window)
            errors = words = 0
            right: list[bool] = []
            for reference, intent, audio in turns:
                text = recognizer.transcribe(audio).text
                counted = word_errors(reference, text, normalize)
                errors += counted.substitutions + counted.deletions + counted.insertions
                words += counted.reference_words
                right.append(services.dialogue.classify(text).intent == intent)
            correct[window] = right
            run = {
                "wer": round(errors / words, 4),
                "intent_accuracy": round(sum(right) / len(right), 4),
                "full_window_retries": recognizer.full_window_retries,
            }
            if window != args.windows[0]:
                base = correct[args.windows[0]]
                run["intents_lost"] = sum(a and not b for a, b in zip(base, right, strict=True))
                run["intents_gained"] = sum(b and not a for a, b in zip(base, right, strict=True))
            results["runs"][str(window)] = run  # type: ignore[index]
            print(f"min_window_s {window:g}: {run}", flush=True)
    finally:
        services.workers.close()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
