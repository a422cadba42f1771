"""WER of Whisper on trimmed encoder windows vs its 30 s window (CPU, real weights).

Whisper is trained on 30 s windows; running the encoder on a shorter window (the
positional embedding sliced, see `models.whisper_arch.encode`) saves most of the
encoder's work for a short utterance, but the decoder then never sees the padding it
was trained with. This measures what that costs: the real speech clips are decoded
greedily (the batched worker's decoder) once per window policy.

    python bench/asr_trim.py --json bench/asr_trim.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.asr_whisper_batched import WhisperBatchBackend
from models.whisper_arch import load_checkpoint
from voicebot.wavio import read_wav

POLICIES: dict[str, tuple[float, ...]] = {
    "30 s window (Whisper's own)": (30.0,),
    "buckets 10/20/30 s": (10.0, 20.0, 30.0),
    "buckets 4/8/15/30 s": (4.0, 8.0, 15.0, 30.0),
    "tight: whole seconds": tuple(float(s) for s in range(1, 31)),
}


def load_clip(path: Path) -> np.ndarray:
    """16 kHz PCM16 from a WAV, or from anything sox reads (the FLAC originals)."""
    if path.suffix.lower() != ".wav":
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "clip.wav"
            subprocess.run(["sox", str(path), "-b", "16", "-r", "16000", str(wav)], check=True)
            return read_wav(wav).pcm
    audio = read_wav(path)
    if audio.sample_rate != 16_000:
        from telephony.resample import resample

        return resample(audio.pcm, audio.sample_rate, 16_000)
    return audio.pcm


def word_errors(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance over words."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", default="../shared/data/speech/real/manifest_16k.jsonl")
    parser.add_argument("--model", default="tiny.en", help="packaged name or checkpoint path")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    from whisper.normalizers import EnglishTextNormalizer

    normalize = EnglishTextNormalizer()
    path = Path(args.model)
    if not path.is_file():
        from models.whisper_convert import converted_checkpoint

        path = converted_checkpoint(args.model)
    model = load_checkpoint(str(path))
    manifest = Path(args.manifest)
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    clips = [load_clip(manifest.parent / row["audio"]) for row in rows]
    report: dict[str, object] = {"model": args.model, "clips": len(rows), "policies": {}}
    for name, buckets in POLICIES.items():
        backend = WhisperBatchBackend(model, buckets_s=buckets, max_tokens=96)
        errors = words = loops = 0
        per_clip = []
        started = time.perf_counter()
        for row, clip in zip(rows, clips, strict=True):
            text = backend.transcribe_batch([clip], backend.bucket(clip.size))[0].text
            ref, hyp = normalize(row["text"]).split(), normalize(text).split()
            e = word_errors(ref, hyp)
            errors, words = errors + e, words + len(ref)
            loops += len(hyp) > 1.5 * len(ref)
            per_clip.append({"id": row.get("id"), "wer": e / len(ref), "text": text})
        seconds = time.perf_counter() - started
        result = {
            "buckets_s": buckets,
            "wer": errors / words,
            "runaway_repeats": loops,
            "cpu_s": seconds,
        }
        print(f"{name:32s} WER {100 * errors / words:5.1f}%  runaway {loops}  {seconds:5.1f} s")
        report["policies"][name] = {**result, "per_clip": per_clip}  # type: ignore[index]
    Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
