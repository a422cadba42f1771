"""The Vonage codec on Vonage's documented messages, and its emulated marks on a fake clock."""

import json

import numpy as np
import pytest

from telephony.events import (
    AudioIn,
    CallStarted,
    DtmfDigit,
    MarkPlayed,
    MediaFormat,
    ProtocolError,
)
from telephony.marks import MarkEmulator
from telephony.vonage.codec import VonageCodec, parse_content_type
from telephony.wire import CodecStateError
from tests.fixtures import carrier_messages as docs


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def started(message: str = docs.VONAGE_CONNECTED, clock=None) -> VonageCodec:
    codec = VonageCodec(clock or FakeClock(), mark_latency_s=0.0)
    [event] = codec.receive(message)
    assert isinstance(event, CallStarted)
    return codec


def test_documented_connected_message_starts_the_call_with_ncco_headers():
    codec = VonageCodec()
    [event] = codec.receive(docs.VONAGE_CONNECTED)
    assert isinstance(event, CallStarted)
    assert event.carrier == "vonage"
    assert event.media_format == MediaFormat("audio/l16", 16000, 1)
    assert dict(event.custom_parameters) == {"prop1": "value1", "prop2": "value2"}
    assert event.call_id.startswith("vonage-")  # no uuid header: generated


def test_a_uuid_header_becomes_the_call_id():
    message = json.loads(docs.VONAGE_CONNECTED) | {"uuid": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"}
    [event] = VonageCodec().receive(json.dumps(message))
    assert event.call_id == "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"


@pytest.mark.parametrize(
    ("value", "rate"),
    [
        ("audio/l16;rate=16000", 16000),
        ("audio/l16;rate=8000", 8000),
        ("audio/L16; rate=8000", 8000),
        ("audio/l16;rate=24000", None),
        ("audio/pcmu", None),
        (None, None),
    ],
)
def test_content_types(value, rate):
    assert parse_content_type(value) == rate


def test_binary_l16_frames_become_audio_at_either_rate():
    wide = started()
    samples = (np.arange(320) * 50 - 8000).astype(np.int16)
    [audio] = wide.receive(samples.astype("<i2").tobytes())  # 640 bytes = 20 ms at 16 kHz
    assert isinstance(audio, AudioIn) and np.array_equal(audio.pcm, samples)
    narrow = started(docs.VONAGE_CONNECTED_8K)
    [audio] = narrow.receive(bytes(320))  # 20 ms at 8 kHz
    assert audio.pcm.size == 320


def test_documented_dtmf_event():
    assert started().receive(docs.VONAGE_DTMF) == [DtmfDigit("5")]


def test_outbound_audio_is_binary_l16_in_whole_20_ms_frames():
    codec = started(docs.VONAGE_CONNECTED_8K)
    frames = codec.send_audio(np.ones(480, np.int16))  # 30 ms: one frame out, 10 ms kept
    assert [len(f) for f in frames] == [320] and all(isinstance(f, bytes) for f in frames)
    frames = codec.send_audio(np.ones(160, np.int16))
    assert [len(f) for f in frames] == [320]
    wide = started()
    [frame] = wide.send_audio(np.arange(320, dtype=np.int16))
    assert frame == np.arange(320, dtype="<i2").tobytes()  # 16 kHz: passed through


def test_clear_is_the_documented_action():
    codec = started()
    assert [json.loads(m) for m in codec.clear()] == [docs.VONAGE_CLEAR]


def test_sending_before_connected_is_a_state_error():
    with pytest.raises(CodecStateError):
        VonageCodec().send_audio(np.zeros(320, np.int16))


def test_emulated_mark_comes_back_after_its_audio_has_played():
    clock = FakeClock()
    codec = started(clock=clock)
    for _ in range(10):  # 200 ms of audio, sent at once
        codec.send_audio(np.zeros(320, np.int16))
    assert codec.mark("r1.0") == []  # nothing on the wire
    clock.t += 0.19
    assert codec.poll() == []
    clock.t += 0.02
    assert codec.poll() == [MarkPlayed("r1.0")]
    assert codec.poll() == []


def test_emulated_marks_after_an_underrun_start_from_now():
    clock = FakeClock()
    emulator = MarkEmulator(clock, latency_s=0.05)
    emulator.sent(0.1)
    clock.t += 5  # the carrier's buffer ran dry long ago
    emulator.sent(0.02)
    emulator.mark("a")
    clock.t += 0.06
    assert emulator.due() == []
    clock.t += 0.02
    assert emulator.due() == [MarkPlayed("a")]


def test_clear_reports_pending_marks_at_once_in_order():
    clock = FakeClock()
    codec = started(clock=clock)
    codec.send_audio(np.zeros(3200, np.int16))
    codec.mark("r1.0")
    codec.send_audio(np.zeros(3200, np.int16))
    codec.mark("r1.end")
    codec.clear()
    assert codec.poll() == [MarkPlayed("r1.0"), MarkPlayed("r1.end")]


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        '{"event": "websocket:party"}',
        '{"event": "websocket:dtmf", "digit": "Z"}',
        '{"action": "clear"}',
        b"\x00\x01\x02",  # odd: not whole samples
        bytes(40_000),  # more than a second
        "x" * 70_000,
        docs.VONAGE_CONNECTED,  # a second one
    ],
)
def test_malformed_input_is_an_error_event_never_an_exception(message):
    [event] = started().receive(message)
    assert isinstance(event, ProtocolError) and not event.fatal


def test_audio_before_connected_is_dropped_and_an_unknown_rate_is_fatal():
    [early] = VonageCodec().receive(bytes(640))
    assert isinstance(early, ProtocolError) and not early.fatal
    bad = docs.VONAGE_CONNECTED.replace("16000", "44100")
    [event] = VonageCodec().receive(bad)
    assert isinstance(event, ProtocolError) and event.fatal
