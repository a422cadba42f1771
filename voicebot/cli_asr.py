"""`voicebot eval-asr` and `voicebot convert-whisper`: measuring and converting Whisper.

`eval-asr` builds its recognizer from the same `[asr]` configuration the server reads
(flags override it), so a figure measured here is what a call would get.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from voicebot.config import ConfigError, load_config


def _cmd_eval_asr(args: argparse.Namespace) -> int:
    import torch

    from models.weights import WeightsError
    from voicebot.asr_backends import build_recognizer
    from voicebot.asr_eval import evaluate, format_table, read_manifest

    config = load_config(
        args.config,
        overrides={
            "asr": {
                "backend": args.backend,
                "model": args.model,
                "device": args.device,
                "compute_type": args.compute_type,
                "threads": args.threads,
                "min_window_s": args.min_window_s,
            }
        },
    )
    asr = config.asr
    clips = read_manifest(Path(args.manifest), args.audio_field)
    torch.set_num_threads(max(1, asr.threads))
    started = time.perf_counter()
    try:
        recognizer = build_recognizer(asr)
    except WeightsError as exc:
        raise ConfigError(str(exc)) from exc
    load_s = time.perf_counter() - started

    def progress(row: dict[str, Any]) -> None:
        if not args.quiet:
            print(f"{row['id']}: {row['wer']:.1%}  {row['hypothesis']}", file=sys.stderr)

    result = evaluate(recognizer, clips, progress=progress)
    result = {
        "backend": asr.backend,
        "model": asr.model,
        "device": asr.device,
        "compute_type": asr.compute_type if asr.backend == "faster-whisper" else None,
        "threads": asr.threads,
        "min_window_s": asr.min_window_s if asr.backend == "faster-whisper" else None,
        "manifest": str(args.manifest),
        "audio_field": args.audio_field,
        "load_s": round(load_s, 2),
        **result,
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(format_table(result))
    print(f"{asr.backend} {asr.model} on {asr.device}; wrote {out}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from models.weights import WeightsError
    from models.whisper_convert import convert, ct2_directory

    try:
        source = ct2_directory(args.model)
    except WeightsError as exc:
        raise ConfigError(str(exc)) from exc
    dims = convert(source, Path(args.out))
    print(f"converted {source} to {args.out}: {json.dumps(dims)}")
    return 0


def register(sub: Any) -> None:
    """Add eval-asr and convert-whisper to the CLI's subcommands."""
    ev = sub.add_parser("eval-asr", help="WER and real-time factor of a recognizer on a manifest")
    ev.add_argument(
        "--manifest", required=True, help='JSON lines {"audio": path, "text": reference}'
    )
    ev.add_argument("--json", required=True, help="where to write the results")
    ev.add_argument(
        "--audio-field",
        default="audio",
        help="the manifest field holding the audio path (e.g. file_16k, file_8k_ulaw)",
    )
    ev.add_argument("--backend", help="faster-whisper or openai-whisper (default: [asr])")
    ev.add_argument("--model", help="packaged name, path, or hub/openai-whisper name")
    ev.add_argument("--device", help="cpu or cuda (default: [asr])")
    ev.add_argument("--compute-type", help="faster-whisper only: int8, float32, ...")
    ev.add_argument("--threads", type=int, help="CPU threads (default: [asr])")
    ev.add_argument(
        "--min-window-s",
        type=float,
        help="faster-whisper only: shortest encoder window (30: always Whisper's full 30 s)",
    )
    ev.add_argument("--config", help="TOML configuration file")
    ev.add_argument("--quiet", action="store_true", help="no per-clip lines on stderr")
    ev.set_defaults(func=_cmd_eval_asr)

    conv = sub.add_parser(
        "convert-whisper", help="CTranslate2 Whisper (packaged or a path) to an openai-whisper .pt"
    )
    conv.add_argument("--model", required=True, help="tiny.en, base, or a CTranslate2 directory")
    conv.add_argument("--out", required=True, help="the checkpoint file to write")
    conv.set_defaults(func=_cmd_convert)
