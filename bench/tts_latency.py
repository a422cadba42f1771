"""TTS time to first audio: whole first sentence vs first clause, plus the resampling chain.

For short (4-8 words), medium and long replies, times what the caller waits for once
the reply text is known: synthesis of the first spoken unit, as `voicebot.call` does it.
"sentence" synthesises the whole first sentence (the old behaviour for sentences up to
8 words, and what a plain per-sentence TTS does); "clause" synthesises the first unit
of `voicebot.reply.speech_units` (the first clause of a long first sentence). Runs
alternate between the two so that CPU contention hits both alike; medians are reported.

Also times the resampling chain per second of speech: Piper's 22.05 kHz -> 16 kHz
(soxr HQ, once per unit, in the backend) and 16 -> 8 kHz (the carrier codec's streaming
FIR, per 20 ms frame), and the direct 22.05 -> 8 kHz a carrier-rate voice would need.

    nice -n 10 .venv/bin/python bench/tts_latency.py --runs 7 --json bench/tts_latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from models.protocols import SAMPLE_RATE
from telephony.resample import StreamResampler
from voicebot.config import TtsConfig
from voicebot.reply import speech_units
from voicebot.tts_backends import build_synthesizer

REPLIES: dict[str, list[str]] = {
    "short": [
        "Your card is frozen now.",
        "I can help with that.",
        "Your new card is on its way.",
        "There is no fee for that.",
    ],
    "medium": [
        "To freeze your card straight away, open the app and tap Cards. Then choose Freeze.",
        "Your balance is 1,250 pounds, and 1,100 pounds of it is available today.",
        "If you lost your card abroad, we can send a new one to your hotel in three days.",
    ],
    "long": [
        "International transfers usually take one to three working days, and we charge a "
        "fee of two pounds fifty for each one, which is shown before you confirm. You can "
        "track every transfer in the app.",
        "Before I can tell you about recent payments on this account, I need to check who "
        "I'm speaking to, so please tell me the eight-digit account number. Take your time.",
    ],
}


def median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 1)


def time_once(voice: Any, text: str) -> tuple[float, int]:
    started = time.perf_counter()
    audio = voice.synthesize(text)
    return time.perf_counter() - started, int(audio.size)


def first_audio(voice: Any, runs: int) -> dict[str, Any]:
    """Per length class: median time to the first unit's audio, whole sentence vs clause."""
    out: dict[str, Any] = {}
    for kind, replies in REPLIES.items():
        rows = []
        for reply in replies:
            units = speech_units([reply])
            sentence = (
                units[0].text if units[0].ends_sentence else f"{units[0].text} {units[1].text}"
            )
            clause = units[0].text
            before: list[float] = []
            after: list[float] = []
            for _ in range(runs):  # alternate, so contention hits both alike
                before.append(time_once(voice, sentence)[0])
                after.append(time_once(voice, clause)[0])
            _, clause_samples = time_once(voice, clause)
            rows.append(
                {
                    "first_sentence": sentence,
                    "first_unit": clause,
                    "split": clause != sentence,
                    "sentence_ms": median_ms(before),
                    "first_unit_ms": median_ms(after),
                    "first_unit_audio_s": round(clause_samples / SAMPLE_RATE, 2),
                }
            )
        out[kind] = {
            "replies": rows,
            "sentence_ms": round(statistics.median(r["sentence_ms"] for r in rows), 1),
            "first_unit_ms": round(statistics.median(r["first_unit_ms"] for r in rows), 1),
        }
    return out


def resampling(voice: Any, runs: int) -> dict[str, float]:
    """Cost of each resampling step, in ms per second of speech (real Piper audio)."""
    native = np.concatenate(
        [c.audio_int16_array for c in voice._voice.synthesize(REPLIES["long"][0])]
    )
    rate = voice.native_rate
    seconds = native.size / rate
    to16: list[float] = []
    to8: list[float] = []
    direct: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        pcm16 = np.asarray(soxr.resample(native, rate, SAMPLE_RATE, quality="HQ"), np.int16)
        to16.append(time.perf_counter() - started)
        codec = StreamResampler(SAMPLE_RATE, 8000)
        started = time.perf_counter()
        for start in range(0, pcm16.size - 319, 320):
            codec.process(pcm16[start : start + 320])
        to8.append(time.perf_counter() - started)
        started = time.perf_counter()
        soxr.resample(native, rate, 8000, quality="HQ")
        direct.append(time.perf_counter() - started)
    return {
        "speech_s": round(seconds, 2),
        "piper_22k_to_16k_ms_per_s": round(statistics.median(to16) * 1000 / seconds, 2),
        "codec_16k_to_8k_ms_per_s": round(statistics.median(to8) * 1000 / seconds, 2),
        "direct_22k_to_8k_ms_per_s": round(statistics.median(direct) * 1000 / seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="[tts] threads (0: default)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    load = os.getloadavg()
    started = time.perf_counter()
    voice = build_synthesizer(TtsConfig(threads=args.threads), warm_up=False)
    cold_s, _ = time_once(voice, "Thank you for calling.")
    warm_s, _ = time_once(voice, "Thank you for calling.")
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "load_average_before": [round(x, 2) for x in load],
        "runs": args.runs,
        "threads": args.threads,
        "first_synthesis_after_load_ms": round(cold_s * 1000, 1),
        "second_synthesis_ms": round(warm_s * 1000, 1),
        "first_audio": first_audio(voice, args.runs),
        "resampling": resampling(voice, args.runs),
    }
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    result["wall_s"] = round(time.perf_counter() - started, 1)
    for kind, row in result["first_audio"].items():
        sentence_ms, unit_ms = row["sentence_ms"], row["first_unit_ms"]
        print(f"{kind:7s} sentence {sentence_ms:7.1f} ms   first unit {unit_ms:7.1f} ms")
    print(json.dumps(result["resampling"]))
    print(f"load average {result['load_average_before']} -> {result['load_average_after']}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
