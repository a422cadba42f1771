"""The `voicebot` command: serve, dial, build-intent-index.

Each subcommand's flags override the configuration file and environment (see
`voicebot.config`). Errors in input (a missing file, a bad config value) end with a
one-line message and exit status 2, not a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from voicebot.config import ConfigError, load_config

log = logging.getLogger("voicebot")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _cmd_serve(args: argparse.Namespace) -> int:
    from voicebot.app import serve

    config = load_config(
        args.config,
        overrides={
            "server": {"host": args.host, "port": args.port, "data_dir": args.data_dir},
        },
    )
    _setup_logging(config.server.log_level)
    asyncio.run(serve(config))
    return 0


def _parse_pairs(items: Sequence[str], what: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=" if what == "param" else ":")
        if not sep or not key:
            raise ConfigError(
                f"--{what} {item!r}: expected KEY=VALUE"
                if what == "param"
                else f"--dtmf {item!r}: expected SECONDS:DIGIT"
            )
        pairs.append((key, value))
    return pairs


def _cmd_dial(args: argparse.Namespace) -> int:
    from voicebot.dial import dial

    _setup_logging("INFO")
    if not Path(args.wav).is_file():
        raise ConfigError(f"--wav {args.wav}: no such file")
    turns = None
    if args.turns:
        data = json.loads(Path(args.turns).read_text())
        turns = [(float(t["start_s"]), float(t["end_s"])) for t in data]
    dtmf = [(float(at), digit) for at, digit in _parse_pairs(args.dtmf, "dtmf")]
    result = asyncio.run(
        dial(
            args.url,
            args.wav,
            args.out,
            turns=turns,
            custom_parameters=dict(_parse_pairs(args.param, "param")) or None,
            dtmf=dtmf,
            max_wait_s=args.max_wait,
        )
    )
    for turn in result.turns:
        v2v = f"{turn.voice_to_voice_ms:.0f} ms" if turn.voice_to_voice_ms is not None else "none"
        print(f"turn {turn.index}: caller ended {turn.caller_end_s:.2f} s, voice-to-voice {v2v}")
    print(f"wrote {Path(args.out) / 'bot.wav'} and {Path(args.out) / 'dial.json'}")
    return 0


def _cmd_build_index(args: argparse.Namespace) -> int:
    from models.embedder_minilm import MiniLmEmbedder
    from voicebot.dialogue.intents import build_index, read_examples

    _setup_logging("INFO")
    texts, labels = read_examples(Path(args.data))
    embedder = MiniLmEmbedder(args.encoder)
    build_index(texts, labels, embedder.embed, Path(args.out))
    print(f"indexed {len(texts)} examples of {len(set(labels))} intents into {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by the docs and tests)."""
    parser = argparse.ArgumentParser(prog="voicebot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the media server (Twilio webhook + media stream)")
    serve.add_argument("--config", help="TOML configuration file")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument("--data-dir", help="where call transcripts are written (default ./data)")
    serve.set_defaults(func=_cmd_serve)

    dial = sub.add_parser("dial", help="place a simulated Twilio call with a WAV file")
    dial.add_argument("url", help="media websocket URL, e.g. ws://127.0.0.1:8080/twilio/media")
    dial.add_argument(
        "--wav", required=True, help="caller audio (any WAV; 8 kHz mu-law is sent as is)"
    )
    dial.add_argument("--out", required=True, help="directory for bot.wav and dial.json")
    dial.add_argument(
        "--turns", help="JSON list of {start_s, end_s} caller turns (default: detect)"
    )
    dial.add_argument("--param", action="append", default=[], help="custom parameter KEY=VALUE")
    dial.add_argument("--dtmf", action="append", default=[], help="key press SECONDS:DIGIT")
    dial.add_argument(
        "--max-wait", type=float, default=20.0, help="seconds to wait for the last answer"
    )
    dial.set_defaults(func=_cmd_dial)

    index = sub.add_parser("build-intent-index", help="embed labelled examples into a kNN index")
    index.add_argument("--data", required=True, help="CSV with columns text,category (Banking77)")
    index.add_argument(
        "--out",
        default=str(Path(__file__).parent / "dialogue" / "domain" / "bank" / "intent_index.npz"),
        help="output .npz (default: the bank domain pack)",
    )
    index.add_argument("--encoder", default="all-MiniLM-L6-v2", help="sentence encoder")
    index.set_defaults(func=_cmd_build_index)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `voicebot` console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"voicebot {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
