"""Wiring: the one place that knows every concrete class.

Builds the process-wide services (models loaded once, warmed up), the media server with
its health and metrics routes, and runs it until SIGINT/SIGTERM, letting calls in
progress finish for a grace period.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from aiohttp import web

from models.protocols import VoiceActivityDetector
from telephony.access_log import PathOnlyAccessLogger
from telephony.asterisk.audiosocket_server import AudioSocketServer
from telephony.connection import CallConnection
from telephony.server import MediaServer, ServerSettings, TwilioWebhookSettings
from telephony.sip.server import SipServer, SipSettings, parse_port_range
from voicebot.call import Call
from voicebot.config import Config
from voicebot.dialogue.core import MAX_FAILURES, DialogueCore, DialogueState
from voicebot.dialogue.engines import build_engine_with_linking
from voicebot.dialogue.grounded import REQUIRED_PROMPTS
from voicebot.dialogue.loader import load_dialogue
from voicebot.handoff import twilio_transfer
from voicebot.privacy import Redactor
from voicebot.recording.files import parse_key
from voicebot.reply import speech_parts
from voicebot.services import CallServices
from voicebot.speech_cache import SpeechCache
from voicebot.store import open_store
from voicebot.workers import ModelWorkers

log = logging.getLogger(__name__)


def recording_key(config: Config) -> bytes | None:
    """The key for recordings at rest, from the environment only (None: not encrypted)."""
    text = os.environ.get(config.recording.key_env, "")
    return parse_key(text) if text else None


def vad_factory(config: Config) -> Callable[[], VoiceActivityDetector]:
    """A new VAD per call; Silero's model (one ONNX session) is loaded once and shared."""
    vad = config.vad
    if vad.backend == "webrtc":
        from models.vad_webrtc import WebRtcVad

        WebRtcVad(vad.aggressiveness)  # a bad setting fails at start-up, not per call
        return lambda: WebRtcVad(vad.aggressiveness)
    if vad.backend == "silero":
        from models.vad_silero import SileroModel, SileroVad

        model = SileroModel()
        SileroVad(model, vad.threshold)
        return lambda: SileroVad(model, vad.threshold)
    raise ValueError(f"unknown VAD backend {vad.backend!r} (known: webrtc, silero)")


def build_services(config: Config, *, with_store: bool = True) -> CallServices:
    """Load every model once and warm it up, so the first caller waits no longer than the rest.

    `with_store=False` (replay) keeps replayed calls out of the live call index.
    """
    started = time.perf_counter()
    import torch

    from models.embedder_minilm import MiniLmEmbedder
    from voicebot.asr_backends import build_recognizer
    from voicebot.tts_backends import TTS_BACKENDS, build_synthesizer

    torch.set_num_threads(max(1, config.asr.threads))
    if config.tts.backend not in TTS_BACKENDS:
        raise ValueError(f"unknown TTS backend {config.tts.backend!r} (known: piper, coqui)")
    recognizer = build_recognizer(config.asr)  # faster-whisper or openai-whisper
    synthesizer = build_synthesizer(config.tts)  # piper or coqui, warmed up once
    embedder = MiniLmEmbedder(config.dialogue.encoder)
    workers = ModelWorkers(
        recognizer,
        synthesizer,
        embedder,
        asr_threads=config.asr.workers,
        asr_timeout_s=config.asr.timeout_s,
        tts_timeout_s=config.tts.timeout_s,
        nlu_timeout_s=config.dialogue.timeout_s,
        llm_timeout_s=config.llm.timeout_s + 2.0,
        speech_cache=SpeechCache(speech_cache_dir(config), config.tts.cache_size),
    )
    dialogue = load_dialogue(config.dialogue, embedder.embed)
    workers.speech_cache.keep = dict.fromkeys(speakable_phrases(dialogue))
    make_vad = vad_factory(config)

    recognizer.transcribe(np.zeros(16_000, dtype=np.int16))
    dialogue.respond(DialogueState(), "I lost my card")
    Path(config.server.data_dir).mkdir(parents=True, exist_ok=True)
    recording_key(config)  # a malformed key stops the server before the first call
    data_dir = Path(config.server.data_dir)
    store = open_store(config.store.url, data_dir) if with_store else None
    log.info("models ready in %.1f s", time.perf_counter() - started)
    return CallServices(
        config,
        workers,
        dialogue,
        make_vad,
        redactor=Redactor(config.privacy),
        store=store,
        recording_key=recording_key(config),
        reply_engines=build_engine_with_linking(config.llm, dialogue, embedder.embed),
    )


def speech_cache_dir(config: Config) -> Path:
    """Per-voice cache directory: a changed voice file or speed never reuses old audio."""
    from voicebot.tts_backends import voice_key

    name, digest = voice_key(config.tts)
    return Path(config.server.data_dir) / "speech-cache" / f"{name}-{digest}"


def speakable_phrases(dialogue: DialogueCore) -> list[str]:
    """Every unit the bot can say from templates: prompts first, then each intent's answer."""
    replies, graph = dialogue.replies, dialogue.graph
    texts: list[tuple[str, ...]] = [dialogue.greeting(DialogueState()).sentences]
    for key in REQUIRED_PROMPTS:
        if key == "clarify_intent":
            texts += [
                (replies.prompt(key, intent_label=graph.intent_label(i)),) for i in graph.intents()
            ]
        elif REQUIRED_PROMPTS[key] == {"bank_name"}:  # others are filled in at call time
            texts.append((replies.prompt(key),))
    texts += [dialogue.answer(intent) for intent in dialogue.graph.intents()]
    return [part for sentences in texts for part in speech_parts(sentences)]


def startup_phrases(dialogue: DialogueCore) -> list[str]:
    """What must never need the voice at call time: the greeting (every call's first
    words), the apologies (what the bot says when its own voice fails) and the word
    that a transfer failed (said while the caller expects a person, not a pause)."""
    sentences = [*dialogue.greeting(DialogueState()).sentences]
    for can_transfer in (True, False):  # a line that cannot transfer has its own wording
        state = DialogueState(can_transfer=can_transfer)
        failing = replace(state, failures=MAX_FAILURES - 1)
        sentences += [*dialogue.apology(state).sentences, *dialogue.apology(failing).sentences]
    sentences += dialogue.transfer_failed(DialogueState()).sentences
    return list(speech_parts(sentences))


async def warm_prompts(services: CallServices) -> None:
    """Synthesise the start-up phrases now (see `startup_phrases`)."""
    phrases = startup_phrases(services.dialogue)
    await services.workers.prepare_speech(phrases, services.activity.idle)


async def prepare_answers(services: CallServices) -> None:
    """Synthesise every prompt and grounded answer in the background, between calls."""
    started = time.perf_counter()
    phrases = list(services.workers.speech_cache.keep)  # computed once, at build time
    made = await services.workers.prepare_speech(phrases, services.activity.idle)
    services.speech_ready = True
    log.info(
        "speech cache ready: %d phrases (%d synthesised) in %.0f s",
        len(phrases),
        made,
        time.perf_counter() - started,
    )


#: Concurrent calls one CPU core carried within the capacity bounds (p95 voice-to-voice
#: <= 1.5 s, < 1% late audio) with the CPU defaults: 2 calls on the 2-core dev machine
#: (bench/RESULTS.md, "Capacity under load").
CALLS_PER_CPU_CORE = 1.0
#: Not measured yet (issue 3's batched GPU worker): a conservative guess, to be replaced.
CALLS_PER_GPU = 16


def estimated_max_calls(config: Config, cpu_count: int | None = None) -> int:
    """`server.max_calls`, or when it is 0 an estimate from this machine's hardware."""
    if config.server.max_calls > 0:
        return config.server.max_calls
    if config.asr.device.startswith("cuda"):
        return CALLS_PER_GPU
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(1, int(cores * CALLS_PER_CPU_CORE))


def build_server(services: CallServices) -> MediaServer:
    """The media server with this bot's call handler, /healthz and /metrics."""
    config = services.config
    started = time.time()
    max_calls = estimated_max_calls(config)
    log.info(
        "admitting up to %d concurrent calls%s",
        max_calls,
        " (estimated from the hardware)" if config.server.max_calls <= 0 else "",
    )

    async def handle(conn: CallConnection) -> None:
        async with Call(conn, services) as call:
            await call.run()

    async def healthz(request: web.Request) -> web.Response:
        recording = services.metrics.recording_health()
        body = {
            # Degraded: calls are answered, but recordings are failing (a full disk).
            "status": "ok" if recording["ok"] else "degraded",
            "recording": recording,
            "active_calls": server.active_calls,
            "max_calls": max_calls,
            "max_calls_estimated": config.server.max_calls <= 0,
            "uptime_s": round(time.time() - started, 1),
            "speech_cache": {
                "phrases": len(services.workers.speech_cache),
                "answers_ready": services.speech_ready,
            },
            "models": {
                "asr": f"{config.asr.backend}:{config.asr.model}",
                "tts": f"{config.tts.backend}:{config.tts.voice}",
                "encoder": config.dialogue.encoder,
            },
        }
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=services.metrics.render(), content_type="text/plain", charset="utf-8"
        )

    rest, target = twilio_transfer(config)
    settings = ServerSettings(
        idle_timeout_s=config.server.idle_timeout_s,
        max_call_s=config.server.max_call_s,
        media_secret=config.media_secret(),
        twilio=TwilioWebhookSettings(
            auth_token=config.twilio_auth_token(),
            validate_signatures=config.twilio.validate_signatures,
            public_url=config.server.public_url or None,
            stream_tokens=config.twilio.stream_tokens,
            stream_token_ttl_s=config.twilio.stream_token_ttl_s,
            rest=rest,
            transfer_target=target,
        ),
    )
    server = MediaServer(
        handle,
        settings,
        accept_call=lambda: server.active_calls < max_calls,
        extra_routes=[web.get("/healthz", healthz), web.get("/metrics", metrics)],
    )
    return server


def start_audiosocket(server: MediaServer, config: Config) -> AudioSocketServer | None:
    """The AudioSocket front door beside `server` (same handler, limits and admission)."""
    if config.carriers.audiosocket_port <= 0:
        return None
    audiosocket = AudioSocketServer(
        server.handler,
        server.settings,
        host=config.carriers.audiosocket_host,
        port=config.carriers.audiosocket_port,
        accept_call=server.accept_call,
    )
    server.other_calls.append(lambda: audiosocket.active_connections)
    return audiosocket


def build_sip(server: MediaServer, config: Config) -> SipServer | None:
    """The SIP trunk bridge beside `server`: same handler, one admission count for both."""
    sip = config.sip
    if sip.port <= 0:
        return None
    if sip.busy_code not in (486, 503):
        raise ValueError(f"[sip] busy_code {sip.busy_code}: use 486 or 503")
    bridge = SipServer(
        server.handler,
        SipSettings(
            host=sip.host,
            port=sip.port,
            public_host=sip.public_host,
            rtp_ports=parse_port_range(sip.rtp_ports),
            agent_uri=sip.agent_uri,
            busy_code=sip.busy_code,
            retry_after_s=sip.retry_after_s,
            inbound_capacity=server.settings.inbound_capacity,
            send_timeout_s=server.settings.send_timeout_s,
            max_call_s=server.settings.max_call_s,
            idle_timeout_s=server.settings.idle_timeout_s,
            handler_grace_s=server.settings.handler_grace_s,
        ),
        accept_call=server.accept_call,
    )
    server.other_calls.append(lambda: bridge.active_connections)
    return bridge


async def serve(config: Config) -> None:
    """Run the server until SIGINT or SIGTERM, then shut down without dropping a call.

    On the signal, new calls are refused; calls in progress have
    `server.shutdown_grace_s` to finish, then hear a goodbye and are hung up.
    """
    services = await asyncio.to_thread(build_services, config)
    await warm_prompts(services)
    server = build_server(services)
    preparing = (
        asyncio.create_task(prepare_answers(services), name="prepare-answers")
        if config.tts.prepare_answers
        else None
    )
    if server.settings.twilio.stream_key is None:
        log.warning(
            "media streams are not authenticated: anyone who reaches /twilio/media can start "
            "a call (set TWILIO_AUTH_TOKEN and keep [twilio] validate_signatures on)"
        )
    if server.settings.media_secret is None:
        log.warning(
            "Telnyx, Vonage and Asterisk media routes are not authenticated: anyone who "
            "reaches them can start a call (set %s to a shared secret)",
            config.carriers.media_secret_env,
        )
    audiosocket = start_audiosocket(server, config)
    if audiosocket is not None:
        await audiosocket.start()
    sip = build_sip(server, config)
    if sip is not None:
        await sip.start()
    runner = web.AppRunner(server.app, handle_signals=False, access_log_class=PathOnlyAccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, config.server.host, config.server.port)
    await site.start()
    log.info(
        "voicebot listening on http://%s:%d (Twilio webhook /twilio/voice, media /twilio/media)",
        config.server.host,
        config.server.port,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if preparing is not None:
        preparing.cancel()
    log.info("shutting down: %d calls in progress", server.active_calls)
    # Still listening: new webhooks get a polite refusal, new streams a 503.
    shutdowns = [server.shutdown(config.server.shutdown_grace_s)]
    if audiosocket is not None:
        shutdowns.append(audiosocket.shutdown(config.server.shutdown_grace_s))
    if sip is not None:
        shutdowns.append(sip.shutdown(config.server.shutdown_grace_s))
    await asyncio.gather(*shutdowns)
    if sip is not None:
        await sip.close()
    if audiosocket is not None:
        await audiosocket.close()
    await site.stop()
    await runner.cleanup()
    services.workers.close()
    services.io_pool.shutdown(wait=True)
    if services.store is not None:
        services.store.close()
