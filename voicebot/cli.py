"""The `voicebot` command: serve, dial, replay, calls, decrypt, build-intent-index.

Each subcommand's flags override the configuration file and environment (see
`voicebot.config`). Errors in input (a missing file, a bad config value) end with a
one-line message and exit status 2, not a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from voicebot import cli_asr, cli_chat, cli_intents, cli_slots
from voicebot.config import Config, ConfigError, load_config
from voicebot.dialogue.intent_data import repo_data_dir

log = logging.getLogger("voicebot")


def _setup_logging(level: str, config: Config | None = None) -> None:
    """Log to stderr, with personal data redacted from every line."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if config is not None and config.privacy.enabled:
        from voicebot.privacy import RedactingFilter, Redactor

        redacting = RedactingFilter(Redactor(config.privacy))
        for handler in logging.getLogger().handlers:
            handler.addFilter(redacting)


def _cmd_serve(args: argparse.Namespace) -> int:
    from voicebot.app import serve

    config = load_config(
        args.config,
        overrides={
            "server": {"host": args.host, "port": args.port, "data_dir": args.data_dir},
            "recording": {"capture": True if args.capture else None},
            "sip": {"port": args.sip_port, "host": args.sip_host, "rtp_ports": args.rtp_ports},
            "carriers": {"audiosocket_port": args.audiosocket_port},
            "llm": {
                "engine": args.llm_engine or ("openai" if args.llm_url else None),
                "url": args.llm_url,
                "model": args.llm_model,
            },
        },
    )
    _setup_logging(config.server.log_level, config)
    asyncio.run(serve(config))
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from voicebot.replay.runner import run_replay

    config = load_config(args.config, overrides={"server": {"data_dir": args.data_dir}})
    _setup_logging("WARNING", config)
    return run_replay(
        Path(args.input), Path(args.out), config, with_compare=args.compare, jobs=args.jobs
    )


def _cmd_calls(args: argparse.Namespace) -> int:
    from voicebot.store import format_call, format_table, open_store

    config = load_config(args.config, overrides={"server": {"data_dir": args.data_dir}})
    store = open_store(config.store.url, Path(config.server.data_dir))
    try:
        if args.action == "list":
            rows = store.list_calls(limit=args.limit, since=args.since)
            print(json.dumps(rows, indent=2, default=str) if args.json else format_table(rows))
            return 0
        if not args.call_id:
            raise ConfigError("calls show: give a call id (see `voicebot calls list`)")
        call = store.get_call(args.call_id)
        if call is None:
            print(f"no call {args.call_id!r} in the store", file=sys.stderr)
            return 1
        print(json.dumps(call, indent=2, default=str) if args.json else format_call(call))
        return 0
    finally:
        store.close()


def _cmd_decrypt(args: argparse.Namespace) -> int:
    from voicebot.app import recording_key
    from voicebot.recording.files import decrypt_recording, unseal

    config = load_config(args.config)
    key = recording_key(config)
    if key is None:
        raise ConfigError(f"set {config.recording.key_env} to the recording key")
    source = Path(args.file)
    if source.name.endswith(".wav.enc"):
        data = decrypt_recording(source, key)
    else:
        data = b"".join(unseal(source, key))
    Path(args.out).write_bytes(data)
    print(f"wrote {args.out} ({len(data)} bytes)")
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
            auth_token=os.environ.get("TWILIO_AUTH_TOKEN"),
        )
    )
    for turn in result.turns:
        v2v = f"{turn.voice_to_voice_ms:.0f} ms" if turn.voice_to_voice_ms is not None else "none"
        print(f"turn {turn.index}: caller ended {turn.caller_end_s:.2f} s, voice-to-voice {v2v}")
    print(f"wrote {Path(args.out) / 'bot.wav'} and {Path(args.out) / 'dial.json'}")
    return 0


def _cmd_loadtest(args: argparse.Namespace) -> int:
    from voicebot.loadtest import (
        Bounds,
        capacity_summary,
        find_capacity,
        format_levels,
        run_level,
    )

    _setup_logging("INFO")
    wavs = sorted(Path(args.wav_dir).glob("*.wav"))
    if not wavs:
        raise ConfigError(f"--wav-dir {args.wav_dir}: no .wav files")
    if args.calls < 1:
        raise ConfigError("--calls must be at least 1")
    bounds = Bounds(p95_ms=args.max_p95_ms, late_fraction=args.max_late)
    token = os.environ.get("TWILIO_AUTH_TOKEN")  # signs webhook calls (secrets: env only)
    out = Path(args.json).with_suffix("")
    if args.capacity:
        result = asyncio.run(
            find_capacity(
                args.url, wavs, out, bounds=bounds, limit=args.calls,
                ramp_s=args.ramp, duration_s=args.duration, auth_token=token,
            )
        )  # fmt: skip
    else:
        level = asyncio.run(
            run_level(
                args.url,
                wavs,
                args.calls,
                out,
                ramp_s=args.ramp,
                duration_s=args.duration,
                auth_token=token,
            )
        )
        result = capacity_summary([level], bounds)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(format_levels(result["levels"]))
    if args.capacity:
        print(f"capacity: {result['capacity']} concurrent call(s) within p95 <= "
              f"{bounds.p95_ms:.0f} ms and late <= {bounds.late_fraction:.1%}")  # fmt: skip
    return 0


def _cmd_build_index(args: argparse.Namespace) -> int:
    from models.embedder_minilm import MiniLmEmbedder
    from voicebot.dialogue.intent_data import training_examples
    from voicebot.dialogue.intents import build_index, read_examples

    _setup_logging("INFO")
    general = None if args.no_general else Path(args.nluplusplus)
    texts, labels = training_examples(Path(args.data), general)
    for extra in args.extra:
        more_texts, more_labels = read_examples(Path(extra))
        texts += more_texts
        labels += more_labels
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
    serve.add_argument(
        "--capture", action="store_true", help="also keep every raw carrier message, for replay"
    )
    serve.add_argument(
        "--llm-engine",
        choices=["template", "openai", "local"],
        help="reply engine (default template)",
    )
    serve.add_argument(
        "--audiosocket-port",
        type=int,
        help="also take Asterisk AudioSocket calls on this TCP port (default 0: off)",
    )
    serve.add_argument("--llm-url", help="OpenAI-compatible base URL (implies --llm-engine openai)")
    serve.add_argument("--sip-port", type=int, help="also answer SIP trunk calls on this UDP port")
    serve.add_argument("--sip-host", help="address for SIP and RTP (default 127.0.0.1)")
    serve.add_argument("--rtp-ports", help="UDP port range for RTP, A-B (default 10000-10999)")
    serve.add_argument("--llm-model", help="model name at the endpoint, or a local model directory")
    serve.set_defaults(func=_cmd_serve)

    replay = sub.add_parser("replay", help="replay recorded calls offline and write QA reports")
    replay.add_argument("input", help="a caller WAV, a recorded call directory, or a folder")
    replay.add_argument("--out", required=True, help="directory for report.json and report.html")
    replay.add_argument("--compare", action="store_true", help="diff against the recorded call")
    replay.add_argument("--config", help="TOML configuration file (the bot under test)")
    replay.add_argument("--data-dir", help="data dir holding the speech cache (default ./data)")
    replay.add_argument("--jobs", type=int, default=0, help="processes (default: all cores)")
    replay.set_defaults(func=_cmd_replay)

    calls = sub.add_parser("calls", help="list or show calls in the call store")
    calls.add_argument("action", choices=["list", "show"])
    calls.add_argument("call_id", nargs="?", help="for show: the call id")
    calls.add_argument("--json", action="store_true", help="JSON instead of a table")
    calls.add_argument("--limit", type=int, default=50)
    calls.add_argument("--since", help="only calls started at or after this ISO time")
    calls.add_argument("--config", help="TOML configuration file")
    calls.add_argument("--data-dir", help="data dir (default ./data)")
    calls.set_defaults(func=_cmd_calls)

    decrypt = sub.add_parser("decrypt", help="decrypt a recording or capture kept at rest")
    decrypt.add_argument("file", help="recording.wav.enc or capture.jsonl.enc")
    decrypt.add_argument("--out", required=True, help="where to write the plain file")
    decrypt.add_argument("--config", help="TOML configuration file (for the key's env name)")
    decrypt.set_defaults(func=_cmd_decrypt)

    dial = sub.add_parser("dial", help="place a simulated Twilio call with a WAV file")
    dial.add_argument(
        "url",
        help="media websocket URL (ws://127.0.0.1:8080/twilio/media) or the voice webhook "
        "(http://127.0.0.1:8080/twilio/voice, signed with $TWILIO_AUTH_TOKEN)",
    )
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

    load = sub.add_parser("loadtest", help="many simulated callers at once; capacity")
    load.add_argument(
        "url", help="media websocket URL, or the voice webhook (signed with $TWILIO_AUTH_TOKEN)"
    )
    load.add_argument(
        "--calls", type=int, required=True, help="concurrent calls (with --capacity: the most)"
    )
    load.add_argument("--wav-dir", required=True, help="caller WAVs, one recorded call each")
    load.add_argument("--json", required=True, help="where to write the results")
    load.add_argument("--ramp", type=float, default=0.0, help="seconds to start all callers over")
    load.add_argument(
        "--duration", type=float, default=0.0, help="keep calling for this long (0: one call each)"
    )
    load.add_argument("--capacity", action="store_true", help="step 1..N until a bound breaks")
    load.add_argument("--max-p95-ms", type=float, default=1500.0, help="capacity bound (ms)")
    load.add_argument("--max-late", type=float, default=0.01, help="capacity bound (fraction)")
    load.set_defaults(func=_cmd_loadtest)

    index = sub.add_parser("build-intent-index", help="embed labelled examples into a kNN index")
    index.add_argument(
        "--data",
        default=str(repo_data_dir() / "banking77" / "train.csv"),
        help="CSV with columns text,category (Banking77)",
    )
    index.add_argument(
        "--nluplusplus",
        default=str(repo_data_dir() / "nluplusplus" / "banking"),
        help="NLU++ folds (adds the general dialogue acts)",
    )
    index.add_argument("--no-general", action="store_true", help="Banking77 intents only")
    index.add_argument(
        "--extra",
        action="append",
        default=[str(cli_intents.EXTRA_INTENTS)],
        help="more text,category CSVs (default: the pack's extra intents)",
    )
    index.add_argument(
        "--out",
        default=str(Path(__file__).parent / "dialogue" / "domain" / "bank" / "intent_index.npz"),
        help="output .npz (default: the bank domain pack)",
    )
    index.add_argument("--encoder", default="all-MiniLM-L6-v2", help="sentence encoder")
    index.set_defaults(func=_cmd_build_index)
    cli_intents.register(sub)
    cli_chat.register(sub)
    cli_slots.register(sub)
    cli_asr.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `voicebot` console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (ConfigError, OSError, ValueError) as exc:
        print(f"voicebot {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
