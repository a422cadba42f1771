"""Measuring a speech recognizer on a manifest of clips: WER, real-time factor, per clip.

A manifest is JSON lines, `{"audio": path relative to the manifest, "text": reference}`
(other fields are kept as they are; `id` names the clip). The shared speech set's
full manifest names its audio `file_16k` and `file_8k_ulaw`: pick one with
`audio_field`. Audio is any WAV (8 kHz mu-law included) or, through soundfile or the
`sox` program, FLAC and the rest, and is resampled once to 16 kHz, as the call path
does at the carrier edge.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.protocols import PCM16, SAMPLE_RATE, SpeechRecognizer
from telephony.resample import resample
from voicebot.wavio import read_wav
from voicebot.wer import WordErrors, word_errors


class ManifestError(ValueError):
    """A manifest line that cannot be evaluated (bad JSON, missing field or file)."""


@dataclass(frozen=True, slots=True)
class Clip:
    """One manifest entry: where its audio is and what was said."""

    id: str
    audio: Path
    text: str


def read_manifest(path: Path, audio_field: str = "audio") -> list[Clip]:
    """Parse and check every line first, so a bad line fails before minutes of decoding."""
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest")
    clips: list[Clip] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(entry, dict):
            raise ManifestError(f"{where}: expected a JSON object")
        audio, text = entry.get(audio_field), entry.get("text")
        if not isinstance(audio, str) or not audio:
            raise ManifestError(f"{where}: no {audio_field!r} path")
        if not isinstance(text, str):
            raise ManifestError(f"{where}: no reference 'text'")
        file = path.parent / audio
        if not file.is_file():
            raise ManifestError(f"{where}: audio file {file} does not exist")
        clips.append(Clip(str(entry.get("id") or Path(audio).stem), file, text))
    if not clips:
        raise ManifestError(f"{path}: no clips")
    return clips


def load_audio(path: Path) -> PCM16:
    """Any WAV (our reader, incl. G.711) or another format via soundfile/sox; 16 kHz PCM16."""
    if path.suffix.lower() == ".wav":
        wav = read_wav(path)
        return resample(wav.pcm, wav.sample_rate, SAMPLE_RATE)
    try:
        import soundfile
    except ImportError:
        return _load_with_sox(path)
    data, rate = soundfile.read(str(path), dtype="int16", always_2d=True)
    mono = np.rint(data.astype(np.float64).mean(axis=1)).astype(np.int16)
    return resample(mono, int(rate), SAMPLE_RATE)


def _load_with_sox(path: Path) -> PCM16:
    if shutil.which("sox") is None:
        raise ManifestError(f"{path}: not a WAV; install soundfile or sox to read it")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audio.wav"
        result = subprocess.run(
            ["sox", str(path), "-e", "signed-integer", "-b", "16", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise ManifestError(f"{path}: sox could not read it: {result.stderr.strip()}")
        wav = read_wav(out)
    return resample(wav.pcm, wav.sample_rate, SAMPLE_RATE)


def evaluate(
    recognizer: SpeechRecognizer,
    clips: list[Clip],
    *,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Transcribe every clip (after one warm-up call) and score it; a JSON-ready summary."""
    audios = [load_audio(clip.audio) for clip in clips]
    recognizer.transcribe(np.zeros(SAMPLE_RATE, dtype=np.int16))
    total = WordErrors()
    rows: list[dict[str, Any]] = []
    audio_s = wall_s = 0.0
    for clip, audio in zip(clips, audios, strict=True):
        started = time.perf_counter()
        transcript = recognizer.transcribe(audio)
        elapsed = time.perf_counter() - started
        errors = word_errors(clip.text, transcript.text)
        total += errors
        seconds = audio.size / SAMPLE_RATE
        audio_s += seconds
        wall_s += elapsed
        row = {
            "id": clip.id,
            "audio": str(clip.audio),
            "reference": clip.text,
            "hypothesis": transcript.text,
            "wer": round(errors.wer, 4),
            "errors": errors.errors,
            "words": errors.reference_words,
            "substitutions": errors.substitutions,
            "deletions": errors.deletions,
            "insertions": errors.insertions,
            "audio_s": round(seconds, 3),
            "wall_s": round(elapsed, 3),
            "rtf": round(elapsed / seconds, 4) if seconds else None,
            "no_speech_prob": round(transcript.no_speech_prob, 4),
            "avg_logprob": round(transcript.avg_logprob, 4),
        }
        rows.append(row)
        if progress is not None:
            progress(row)
    return {
        "clips": len(rows),
        "wer": round(total.wer, 4),
        "errors": total.errors,
        "words": total.reference_words,
        "substitutions": total.substitutions,
        "deletions": total.deletions,
        "insertions": total.insertions,
        "audio_s": round(audio_s, 2),
        "wall_s": round(wall_s, 2),
        "rtf": round(wall_s / audio_s, 4) if audio_s else None,
        "normalizer": "whisper.normalizers.EnglishTextNormalizer",
        "machine": {"platform": platform.platform(), "processor": platform.machine()},
        "per_clip": rows,
    }


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table: one line per clip, then the totals."""
    lines = [f"{'clip':<40} {'WER':>6} {'err':>4} {'words':>5} {'RTF':>6}  hypothesis"]
    for row in result["per_clip"]:
        rtf = f"{row['rtf']:.3f}" if row["rtf"] is not None else "-"
        lines.append(
            f"{row['id'][:40]:<40} {row['wer']:>6.1%} {row['errors']:>4} {row['words']:>5} "
            f"{rtf:>6}  {row['hypothesis'][:60]}"
        )
    lines.append(
        f"{result['clips']} clips, {result['audio_s']:.1f} s of audio: WER {result['wer']:.2%} "
        f"({result['errors']} errors in {result['words']} words: {result['substitutions']} sub, "
        f"{result['deletions']} del, {result['insertions']} ins), RTF {result['rtf']:.3f}"
    )
    return "\n".join(lines)
