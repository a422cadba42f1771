"""One typed configuration: defaults, then a TOML file, then environment, then CLI flags.

Every setting has a sensible default so `voicebot serve` runs with no file at all.
Environment variables are `VOICEBOT_<SECTION>__<KEY>` (for example
`VOICEBOT_ASR__MODEL=base`); secrets (the Twilio auth token) are read only from the
environment, never from files. Unknown sections or keys are errors, so a typo in a
config file is caught at start-up rather than silently ignored.
"""

from __future__ import annotations

import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

ENV_PREFIX = "VOICEBOT_"


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


@dataclass(frozen=True)
class ServerConfig:
    """Where the media server listens and what it keeps on disk."""

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = "data"
    #: The URL carriers use to reach this server (behind a proxy), e.g. https://bot.example.com.
    public_url: str = ""
    #: Calls answered at once; past it new calls are refused cleanly. 0: estimate it from
    #: the hardware (see `voicebot.app.estimated_max_calls`).
    max_calls: int = 8
    log_level: str = "INFO"
    #: End a call whose carrier sends nothing for this long (it streams every 20 ms).
    idle_timeout_s: float = 30.0
    #: End any call after this long.
    max_call_s: float = 3600.0
    #: On SIGTERM, calls in progress may go on this long before the bot says goodbye.
    shutdown_grace_s: float = 30.0


@dataclass(frozen=True)
class TwilioConfig:
    """Twilio webhook security."""

    validate_signatures: bool = True
    #: Name of the environment variable holding the auth token (secrets stay in the env).
    auth_token_env: str = "TWILIO_AUTH_TOKEN"
    #: Media streams must carry a short-lived token from our webhook (when an auth token
    #: is set and signatures are validated); others are closed with 1008.
    stream_tokens: bool = True
    stream_token_ttl_s: float = 300.0
    #: Transfer to a person: the number or SIP URI to `<Dial>`, or a queue to `<Enqueue>`
    #: (set one). The call is redirected over the REST API, which needs the account SID.
    transfer_number: str = ""
    transfer_queue: str = ""
    account_sid_env: str = "TWILIO_ACCOUNT_SID"
    #: The REST API's base URL (a test points it at a fake on 127.0.0.1).
    api_url: str = "https://api.twilio.com"


@dataclass(frozen=True)
class CarriersConfig:
    """Carriers other than Twilio: Telnyx, Vonage, Asterisk (see README, "Carriers")."""

    #: Environment variable holding the shared secret the Telnyx, Vonage and Asterisk
    #: media routes require (`?token=` or `Authorization: Bearer`); unset: open routes.
    media_secret_env: str = "VOICEBOT_MEDIA_SECRET"
    #: Asterisk AudioSocket (TCP) listener; 0 = off. It has no authentication of its
    #: own, so it binds the loopback address unless told otherwise.
    audiosocket_port: int = 0
    audiosocket_host: str = "127.0.0.1"


@dataclass(frozen=True)
class VadConfig:
    """Voice activity detection."""

    #: "webrtc" (GMM, microseconds a frame) or "silero" (neural, ONNX, fewer false alarms).
    backend: str = "webrtc"
    #: webrtc: 0-3, higher rejects more noise.
    aggressiveness: int = 3
    #: silero: speech probability that switches speech on (off below it minus 0.15).
    threshold: float = 0.5


@dataclass(frozen=True)
class TurnConfig:
    """Turn-taking timings (milliseconds)."""

    #: Speech needed within the onset window before a caller turn starts.
    speech_start_ms: int = 60
    #: Silence after which the transcript is computed speculatively, while the ASR worker
    #: is idle. On the CPU Whisper's time (not the endpoint) is what the caller waits for,
    #: so starting at 60 rather than 150 ms answers ~90 ms sooner; the price is more
    #: transcriptions thrown away when the caller goes on (1.9 per turn instead of 1.3 on
    #: the banking calls, bench/RESULTS.md "Early ASR").
    early_asr_ms: int = 60
    #: The same while the ASR worker is already computing (another call's turn, or this
    #: call's own abandoned speculation, which cannot be stopped): an early start would
    #: only queue behind it and take the CPU from other callers.
    early_asr_busy_ms: int = 150
    #: While the caller speaks, transcribe the turn so far after every this much of its
    #: speech (a `partial_transcript` event; it never answers and never moves the
    #: endpoint), only while the ASR worker is idle; 0: off. Off by default: on the CPU's
    #: one ASR thread a partial still computing when the caller stops holds up the
    #: turn's transcript (20% of the banking turns, p95 +240 ms at 1000; bench/RESULTS.md
    #: "Running partial transcripts"). 1000 is meant for the batched GPU worker
    #: (`whisper-batched`: it decodes a partial beside other requests, not before them).
    partial_every_ms: int = 0
    #: "adaptive": the silence that ends a turn depends on the caller's words so far
    #: (see `voicebot.endpointing`); "fixed": always `endpoint_ms`.
    endpointing: str = "adaptive"
    #: Silence after which the caller's turn is over and the bot may answer (adaptive:
    #: when the words say neither "finished" nor "more to come").
    endpoint_ms: int = 600
    #: Adaptive: the silence after a complete question or a short answer ("yes").
    min_endpoint_ms: int = 300
    #: Adaptive: the silence after a complete statement or request ("My card was
    #: declined."), which callers often follow with another sentence. With Whisper's
    #: transcript ready ~250 ms into the pause, 300 ms here cut off 7 of 90 banking
    #: turns (bench/RESULTS.md, "Endpointing with a fast transcript").
    statement_endpoint_ms: int = 450
    #: Adaptive: the silence after a trailing "and", "um", "the", a number being read
    #: out, or while the pause's transcript is still being computed. The upper bound.
    max_endpoint_ms: int = 1200
    #: Sustained caller speech that interrupts the bot.
    barge_in_ms: int = 240
    #: Audio kept from before the detected onset, so first syllables are not lost.
    preroll_ms: int = 300
    #: Turns with less speech than this are treated as noise.
    min_speech_ms: int = 200
    #: A turn is cut (and answered) after this long, so a stuck line cannot hang the call.
    max_turn_ms: int = 30_000


@dataclass(frozen=True)
class AsrConfig:
    """Speech recognition."""

    backend: str = "faster-whisper"
    model: str = "tiny.en"
    device: str = "cpu"
    compute_type: str = "int8"
    threads: int = 2
    workers: int = 1
    beam_size: int = 1
    language: str = "en"
    #: faster-whisper and whisper-batched: the encoder runs on the smallest multiple of
    #: this (10, 20 or 30 s) that holds the turn plus 1 s, not always on Whisper's 30 s;
    #: 30 turns that off.
    min_window_s: float = 10.0
    #: Transcripts Whisper itself thinks are probably not speech are dropped.
    max_no_speech_prob: float = 0.6
    timeout_s: float = 10.0
    #: whisper-batched: gather requests this long before a batch (0: whatever is queued
    #: when the device is free), and at most this many utterances in one batch.
    batch_window_ms: float = 0.0
    batch_max: int = 64


@dataclass(frozen=True)
class TtsConfig:
    """Speech synthesis."""

    backend: str = "piper"
    voice: str = "en_US-joe-medium"
    length_scale: float = 1.0
    timeout_s: float = 10.0
    #: One-off phrases kept in memory (prompts and grounded answers are kept anyway).
    cache_size: int = 64
    #: Synthesise every prompt and grounded answer at start-up (kept on disk in data_dir).
    prepare_answers: bool = True
    #: onnxruntime threads for synthesis (0: its default, all cores; replay sets 1 per process).
    threads: int = 0
    #: backend = "coqui": the Coqui model directory (config.json + checkpoint), and where
    #: it runs ("cpu" or "cuda"). Needs the optional extra: pip install 'voicebot[coqui]'.
    model: str = ""
    device: str = "cpu"


@dataclass(frozen=True)
class PlayoutConfig:
    """Outbound audio pacing."""

    #: How far ahead of the carrier's play position we send audio.
    lead_ms: int = 120


@dataclass(frozen=True)
class DialogueConfig:
    """The dialogue core."""

    domain: str = "bank"
    encoder: str = "all-MiniLM-L6-v2"
    #: Below this (calibrated) kNN vote share the bot asks rather than guesses.
    min_intent_confidence: float = 0.6
    #: Nearest-example cosine below which a turn is not about banking at all.
    min_similarity: float = 0.5
    #: VADER compound score at or below which the caller is treated as upset.
    upset_sentiment: float = -0.7
    neighbours: int = 10
    timeout_s: float = 5.0
    #: Intent model: "" = the domain pack's fine-tuned classifier, "knn" = the embedding
    #: index, or a directory written by `voicebot train-intents`.
    intent_model: str = ""
    #: Slot tagger: "" = the domain pack's, "none" = no slots, or a `train-slots` directory.
    slot_model: str = ""
    #: Below this many sentiment points of fall over the last three turns, escalate.
    sentiment_drop: float = 1.0


@dataclass(frozen=True)
class LlmConfig:
    """How replies are phrased: grounded templates (default) or an LLM with the same facts."""

    #: "template", "openai" (an OpenAI-compatible endpoint) or "local" (transformers dir).
    engine: str = "template"
    #: Base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1.
    url: str = ""
    #: Model name at the endpoint, or the local transformers model directory.
    model: str = ""
    #: Environment variable holding the API key (secrets stay in the environment).
    api_key_env: str = "VOICEBOT_LLM_API_KEY"
    device: str = "cpu"
    temperature: float = 0.2
    max_tokens: int = 160
    #: The whole reply; past it the template reply is spoken instead.
    timeout_s: float = 8.0


@dataclass(frozen=True)
class RecordingConfig:
    """What is kept of every call (under DATA_DIR/calls/<callSid>/)."""

    enabled: bool = True
    #: Also keep the raw carrier messages (capture.jsonl), for exact replay.
    capture: bool = False
    #: Environment variable with a base64 32-byte key; when set, audio is encrypted at rest.
    key_env: str = "VOICEBOT_RECORDING_KEY"
    #: How often buffered audio and events reach the disk (a crash loses at most this).
    flush_ms: int = 500


@dataclass(frozen=True)
class PrivacyConfig:
    """PII redaction in transcripts, events, reports and logs."""

    enabled: bool = True
    card_numbers: bool = True
    account_numbers: bool = True
    sort_codes: bool = True
    dates_of_birth: bool = True
    pins: bool = True
    #: "all": mask every key press except 0, * and #; "none": keep them.
    dtmf: str = "all"


@dataclass(frozen=True)
class StoreConfig:
    """The call index: SQLite in DATA_DIR by default, or a database URL."""

    #: "" = sqlite at DATA_DIR/calls.db; "sqlite:///path.db"; "postgresql://user@host/db".
    url: str = ""


@dataclass(frozen=True)
class ReplayConfig:
    """Offline replay: modelled processing time, so turn-taking is reproducible."""

    #: Virtual time each stage takes during replay (live medians on the dev machine).
    asr_ms: int = 500
    dialogue_ms: int = 20
    tts_ms: int = 0
    #: Fields whose change between the original call and the replay fails --compare.
    fail_on: str = "intent,outcome"
    jobs: int = 0


@dataclass(frozen=True)
class SipConfig:
    """The SIP trunk bridge (UDP signalling, RTP media); port 0 keeps it off."""

    host: str = "127.0.0.1"
    port: int = 0
    #: The address trunks reach us at (Contact, SDP); "" = `host` (or a guess if 0.0.0.0).
    public_host: str = ""
    #: UDP ports for RTP, FIRST-LAST (open them in the firewall; one even port per call).
    rtp_ports: str = "10000-10999"
    #: Where a handoff to a person goes, by SIP REFER; "" = SIP calls cannot be transferred.
    agent_uri: str = ""
    #: Answer to calls over capacity: 486 (Busy Here) or 503 (Service Unavailable).
    busy_code: int = 486
    #: Retry-After seconds with a 503.
    retry_after_s: int = 30


@dataclass(frozen=True)
class Config:
    """The whole configuration."""

    server: ServerConfig = field(default_factory=ServerConfig)
    twilio: TwilioConfig = field(default_factory=TwilioConfig)
    carriers: CarriersConfig = field(default_factory=CarriersConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    turns: TurnConfig = field(default_factory=TurnConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)
    playout: PlayoutConfig = field(default_factory=PlayoutConfig)
    dialogue: DialogueConfig = field(default_factory=DialogueConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    sip: SipConfig = field(default_factory=SipConfig)

    def media_secret(self, env: Mapping[str, str] | None = None) -> str | None:
        """The shared media secret of the non-Twilio carriers, from the environment only."""
        return (env if env is not None else os.environ).get(self.carriers.media_secret_env) or None

    def twilio_auth_token(self, env: Mapping[str, str] | None = None) -> str | None:
        """The Twilio auth token, from the environment only."""
        return (env if env is not None else os.environ).get(self.twilio.auth_token_env) or None

    def twilio_account_sid(self, env: Mapping[str, str] | None = None) -> str | None:
        """The Twilio account SID (for the REST API), from the environment only."""
        return (env if env is not None else os.environ).get(self.twilio.account_sid_env) or None


def _coerce(value: Any, kind: Any, where: str) -> Any:
    """Convert a TOML or environment value to the declared field type."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        if value in (None, "") and len(options) < len(typing.get_args(kind)):
            return None
        kind = options[0]
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if kind is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError(value)
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}") from None
    raise ConfigError(f"{where}: unsupported type {kind!r}")


def _apply(section: Any, values: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(type(section))
    known = {f.name for f in fields(section)}
    updates: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(
                f"{where}: unknown setting {key!r} (known: {', '.join(sorted(known))})"
            )
        updates[key] = _coerce(value, hints[key], f"{where}.{key}")
    return replace(section, **updates)


def merge(config: Config, data: Mapping[str, Any], origin: str) -> Config:
    """Apply a nested {section: {key: value}} mapping on top of `config`."""
    sections: dict[str, Any] = {}
    names = {f.name for f in fields(config)}
    for name, values in data.items():
        if name not in names:
            raise ConfigError(
                f"{origin}: unknown section [{name}] (known: {', '.join(sorted(names))})"
            )
        if not isinstance(values, Mapping):
            raise ConfigError(f"{origin}: [{name}] must be a table")
        current = sections.get(name, getattr(config, name))
        assert is_dataclass(current)
        sections[name] = _apply(current, values, f"{origin} [{name}]")
    return replace(config, **sections)


def from_env(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """`VOICEBOT_SECTION__KEY=value` variables as a nested mapping."""
    data: dict[str, dict[str, str]] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].partition("__")
        data.setdefault(section.lower(), {})[key.lower()] = value
    return data


def load_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Defaults <- TOML file <- environment <- explicit overrides (CLI flags)."""
    config = Config()
    if path is not None:
        file = Path(path)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {file} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
        config = merge(config, data, str(file))
    config = merge(config, from_env(env if env is not None else os.environ), "environment")
    if overrides:
        given = {
            section: {k: v for k, v in values.items() if v is not None}
            for section, values in overrides.items()
        }
        config = merge(config, {k: v for k, v in given.items() if v}, "command line")
    return config
