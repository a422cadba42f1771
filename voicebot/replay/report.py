"""A replayed call as `report.json` data, and the audio clip of each turn for the page.

Everything that depends on the machine (compute times) lives under each turn's
`timings`; everything else (ids, transcripts, intents, turn-taking on the virtual
clock) is the same on every run with the same config, so two reports can be diffed.
"""

from __future__ import annotations

import io
import statistics
import wave
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from telephony.resample import resample
from voicebot.config import Config
from voicebot.services import Redaction
from voicebot.transcript import CallRecord
from voicebot.wavio import read_pcm16_channels

CLIP_RATE = 8000
CLIP_MARGIN_S = 0.3
TURN_FIELDS = (
    "index", "started_s", "ended_s", "caller_text", "intent", "intent_confidence", "sentiment",
    "outcome", "bot_text", "heard_text", "barge_in", "handoff", "bot_started_s", "bot_ended_s",
    "timings",
)  # fmt: skip


def summarize_turns(turns: list[dict[str, Any]]) -> dict[str, Any]:
    """Call-level numbers QA looks at first."""
    sentiments = [float(t["sentiment"]) for t in turns]
    v2v = [t["timings"]["voice_to_voice_ms"] for t in turns if "voice_to_voice_ms" in t["timings"]]
    return {
        "turns": len(turns),
        "barge_ins": sum(bool(t["barge_in"]) for t in turns),
        "handoffs": sum(t["handoff"] is not None for t in turns),
        "intents": [t["intent"] for t in turns],
        "outcomes": dict(sorted(Counter(t["outcome"] for t in turns).items())),
        "mean_sentiment": round(statistics.fmean(sentiments), 3) if sentiments else None,
        "min_sentiment": round(min(sentiments), 3) if sentiments else None,
        "voice_to_voice_ms_median": round(statistics.median(v2v), 1) if v2v else None,
    }


def build_report(
    name: str,
    input_path: Path,
    record: CallRecord,
    config: Config,
    redactor: Redaction | None,
) -> dict[str, Any]:
    """The report of one replayed call (redacted like every other output)."""
    data = asdict(record)
    if redactor is not None:
        data = redactor.redact_json(data)
    turns = [{field: turn.get(field) for field in TURN_FIELDS} for turn in data["turns"]]
    replay = config.replay
    return {
        "input": str(input_path),
        "name": name,
        "call_id": record.call_id,
        "duration_s": record.ended_s,
        "modelled_latency_ms": {
            "asr": replay.asr_ms,
            "dialogue": replay.dialogue_ms,
            "tts": replay.tts_ms,
        },
        "turns": turns,
        "prompts": data["prompts"],
        "dtmf": data["dtmf"],
        "handoff": data["handoff"],
        "summary": summarize_turns(turns),
        "comparison": None,
    }


def _wav_bytes(stereo: np.ndarray) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as handle:
        handle.setnchannels(2)
        handle.setsampwidth(2)
        handle.setframerate(CLIP_RATE)
        handle.writeframes(np.ascontiguousarray(stereo, dtype="<i2").tobytes())
    return out.getvalue()


def turn_clips(recording: Path, report: dict[str, Any]) -> dict[int, bytes]:
    """Per turn: the caller's words and the bot's answer, stereo 8 kHz WAV bytes."""
    if not recording.is_file():
        return {}
    samples, rate = read_pcm16_channels(recording.read_bytes())
    if samples.ndim != 2 or samples.shape[1] != 2:
        return {}
    turns = report["turns"]
    clips: dict[int, bytes] = {}
    for position, turn in enumerate(turns):
        start = max(float(turn["started_s"]) - CLIP_MARGIN_S, 0.0)
        following = turns[position + 1]["started_s"] if position + 1 < len(turns) else None
        end_candidates = [turn.get("bot_ended_s"), turn.get("ended_s")]
        end = max(float(v) for v in end_candidates if v is not None) + CLIP_MARGIN_S
        if following is not None:
            end = min(end, float(following))
        part = samples[int(start * rate) : int(end * rate)]
        if part.shape[0] == 0:
            continue
        left = resample(np.ascontiguousarray(part[:, 0]), rate, CLIP_RATE)
        right = resample(np.ascontiguousarray(part[:, 1]), rate, CLIP_RATE)
        size = min(left.size, right.size)
        clips[int(turn["index"])] = _wav_bytes(np.stack([left[:size], right[:size]], axis=1))
    return clips
