"""WER of Whisper on trimmed encoder windows vs its 30 s window (CPU, real weights).

Whisper is trained on 30 s windows; running the encoder on a shorter window (the
positional embedding sliced, see `models.whisper_arch.encode`) saves most of the
encoder's work for a short utterance, but the decoder then never sees the padding it
was trained with. This measures what that costs: the real speech clips are decoded
greedily (the batched worker's decoder) once per window policy. A policy is the
buckets, the trailing margin a window must keep after the audio, and what pads the mel
after the audio (log-mel silence as openai-whisper, or zeros as faster-whisper). Each
is scored on the raw trimmed decodes and with the runaway guard (a decode that used its
token budget or loops is redone on 30 s); `--faster-whisper` also transcribes with the
CPU default at its 10 s step and counts the clips both backends heard alike.

    python bench/asr_trim.py --faster-whisper --json bench/asr_trim.json
    python bench/asr_trim.py --manifest ../shared/data/speech/real/manifest_8k.jsonl \
        --json bench/asr_trim_8k.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.asr_batch import Redo
from models.asr_whisper_batched import DEFAULT_BUCKETS_S, FULL_BUCKETS_S, WhisperBatchBackend
from models.whisper_arch import load_checkpoint
from models.whisper_windows import WINDOW_MARGIN_S
from voicebot.wavio import read_wav

SECONDS = tuple(float(s) for s in range(1, 31))
MARGIN = WINDOW_MARGIN_S
#: name: (buckets, margin after the audio, zero mel padding)
POLICIES: dict[str, tuple[tuple[float, ...], float, bool]] = {
    "30 s window (Whisper's own)": (FULL_BUCKETS_S, 0.0, False),
    "10/20/30 s, no margin, silence pad (old)": ((10.0, 20.0, 30.0), 0.0, False),
    "10/20/30 s, 1 s margin, silence pad": ((10.0, 20.0, 30.0), MARGIN, False),
    "10/20/30 s, no margin, zero pad": ((10.0, 20.0, 30.0), 0.0, True),
    "10/20/30 s, 1 s margin, zero pad (default)": (DEFAULT_BUCKETS_S, MARGIN, True),
    "4/8/15/30 s, 1 s margin, zero pad": ((4.0, 8.0, 15.0, 30.0), MARGIN, True),
    "whole seconds, no margin, zero pad": (SECONDS, 0.0, True),
    "whole seconds, 1 s margin, zero pad": (SECONDS, MARGIN, True),
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


def score(normalize: Any, rows: list[dict[str, Any]], texts: list[str]) -> tuple[int, int, int]:
    """Word errors, reference words, and clips that ran on (50% more words than said)."""
    errors = words = loops = 0
    for row, text in zip(rows, texts, strict=True):
        ref, hyp = normalize(row["text"]).split(), normalize(text).split()
        errors, words = errors + word_errors(ref, hyp), words + len(ref)
        loops += len(hyp) > 1.5 * len(ref)
    return errors, words, loops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", default="../shared/data/speech/real/manifest_16k.jsonl")
    parser.add_argument("--model", default="tiny.en", help="packaged name or checkpoint path")
    parser.add_argument(
        "--policies", default="", help="only policies whose name has one of these (a,b,...)"
    )
    parser.add_argument("--faster-whisper", action="store_true", help="compare with it at 10 s")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    import torch
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
    report: dict[str, Any] = {
        "model": args.model,
        "manifest": args.manifest,
        "clips": len(rows),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": os.getloadavg(),
        "policies": {},
    }
    default_texts: list[str] = []
    for name, (buckets, margin, zero_pad) in POLICIES.items():
        if not any(part in name for part in args.policies.split(",")):
            continue
        backend = WhisperBatchBackend(
            model, buckets_s=buckets, max_tokens=96, margin_s=margin, zero_mel_padding=zero_pad
        )
        raw: list[str] = []
        guarded: list[str] = []
        per_clip = []
        started = time.perf_counter()
        for row, clip in zip(rows, clips, strict=True):
            bucket = backend.bucket(clip.size)
            answer = backend.transcribe_batch([clip], bucket)[0]
            redo = isinstance(answer, Redo)
            if isinstance(answer, Redo):
                raw.append(answer.rejected)
                answer = backend.transcribe_batch([clip], answer.bucket)[0]
                assert not isinstance(answer, Redo)
            else:
                raw.append(answer.text)
            guarded.append(answer.text)
            per_clip.append(
                {"id": row.get("id"), "window_s": buckets[bucket], "redone": redo}
                | {"text": raw[-1]}
                | ({"redone_text": answer.text} if redo else {})
            )
        seconds = time.perf_counter() - started
        errors, words, loops = score(normalize, rows, raw)
        g_errors, _, g_loops = score(normalize, rows, guarded)
        redone = sum(c["redone"] for c in per_clip)
        if "(default)" in name:
            default_texts = guarded
        print(
            f"{name:44s} WER {100 * errors / words:5.1f}% ({errors})  runaway {loops}"
            f"  | guarded {100 * g_errors / words:5.1f}% ({g_errors}) redone {redone}"
            f"  {seconds:5.1f} s",
            flush=True,
        )
        report["policies"][name] = {
            "buckets_s": buckets,
            "margin_s": margin,
            "zero_mel_padding": zero_pad,
            "words": words,
            "errors": errors,
            "wer": errors / words,
            "runaway_repeats": loops,
            "guarded_errors": g_errors,
            "guarded_wer": g_errors / words,
            "guarded_runaway_repeats": g_loops,
            "redone": redone,
            "cpu_s": seconds,
            "per_clip": per_clip,
        }
    if args.faster_whisper:
        from models.asr_faster_whisper import FasterWhisperRecognizer

        recognizer = FasterWhisperRecognizer(args.model, min_window_s=10.0)
        texts = [recognizer.transcribe(clip).text for clip in clips]
        errors, words, _ = score(normalize, rows, texts)
        same = [normalize(a) == normalize(b) for a, b in zip(texts, default_texts, strict=False)]
        print(
            f"faster-whisper int8 at 10 s steps: WER {100 * errors / words:.1f}% ({errors})"
            f", {sum(same)}/{len(same)} clips heard as the batched default"
        )
        report["faster_whisper_10s"] = {
            "wer": errors / words,
            "errors": errors,
            "retries": recognizer.full_window_retries,
            "same_as_batched_default": sum(same),
            "texts": texts,
        }
    report["load_average_at_end"] = os.getloadavg()
    Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
