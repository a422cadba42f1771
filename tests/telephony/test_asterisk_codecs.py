"""Asterisk's chan_websocket and AudioSocket codecs on the documented messages and frames."""

import json

import numpy as np
import pytest

from telephony.asterisk.audiosocket import AudioSocketCodec
from telephony.asterisk.websocket_codec import AsteriskWebSocketCodec
from telephony.events import (
    AudioIn,
    CallEnded,
    CallStarted,
    DtmfDigit,
    MarkPlayed,
    MediaFormat,
    ProtocolError,
)
from telephony.wire import CodecStateError
from tests.fixtures import carrier_messages as docs

# ------------------------------------------------------------ chan_websocket


def ws_started(start: str = docs.ASTERISK_MEDIA_START) -> AsteriskWebSocketCodec:
    codec = AsteriskWebSocketCodec()
    [event] = codec.receive(start)
    assert isinstance(event, CallStarted)
    return codec


@pytest.mark.parametrize("start", [docs.ASTERISK_MEDIA_START, docs.ASTERISK_MEDIA_START_JSON])
def test_documented_media_start_in_either_control_format(start):
    [event] = AsteriskWebSocketCodec().receive(start)
    assert isinstance(event, CallStarted)
    assert event.carrier == "asterisk"
    assert event.call_id == "pbx1-123456789.999"
    assert event.stream_id == "e226e283-c90a-4ea9-9e37-389000b9ef47"
    assert event.media_format == MediaFormat("ulaw", 8000, 1)
    assert event.custom_parameters["channel"] == "WebSocket/connectionid"
    if start.startswith("{"):
        assert event.custom_parameters["SOME_CHANNEL_VARIABLE"] == "some value"


def test_binary_media_dtmf_status_and_flow_control():
    codec = ws_started()
    [audio] = codec.receive(bytes([0xFF]) * 160)  # 20 ms of ulaw silence
    assert isinstance(audio, AudioIn) and audio.pcm.size == 320
    assert codec.receive(docs.ASTERISK_DTMF_END) == [DtmfDigit("5")]
    assert codec.receive(docs.ASTERISK_DTMF_END_JSON) == [DtmfDigit("5")]
    assert codec.receive(docs.ASTERISK_STATUS) == []
    assert codec.receive("MEDIA_XOFF") == [] and codec.xoff
    assert codec.receive("MEDIA_XON") == [] and not codec.xoff
    assert codec.receive("HANGUP") == [CallEnded("hangup")]


def test_plain_text_commands_answer_a_plain_text_start():
    codec = ws_started()
    [frame] = codec.send_audio(np.zeros(320, np.int16))
    assert frame == bytes([0xFF]) * 160  # one optimal frame of ulaw silence
    assert codec.mark("r1.0") == ["MARK_MEDIA r1.0"]
    assert codec.receive("MEDIA_MARK_PROCESSED r1.0") == [MarkPlayed("r1.0")]
    assert codec.clear() == ["FLUSH_MEDIA"]


def test_json_commands_answer_a_json_start():
    codec = ws_started(docs.ASTERISK_MEDIA_START_JSON)
    [mark] = codec.mark("r1.0")
    assert json.loads(mark) == {"command": "MARK_MEDIA", "correlation_id": "r1.0"}
    assert codec.receive(docs.ASTERISK_MARK_PROCESSED_JSON) == [MarkPlayed("r1.0")]
    assert [json.loads(m) for m in codec.clear()] == [{"command": "FLUSH_MEDIA"}]


def test_flush_reports_the_marks_it_dropped_once():
    codec = ws_started(docs.ASTERISK_MEDIA_START_JSON)
    codec.mark("r1.0")
    codec.mark("r1.end")
    codec.clear()
    assert codec.poll() == [MarkPlayed("r1.0"), MarkPlayed("r1.end")]
    assert codec.receive(docs.ASTERISK_MARK_PROCESSED_JSON) == []  # late echo: ignored
    assert codec.poll() == []


def test_slin16_is_little_endian_16_khz():
    codec = ws_started(docs.ASTERISK_MEDIA_START.replace("ulaw", "slin16").replace("160", "640"))
    samples = np.arange(-160, 160, dtype=np.int16) * 100
    [audio] = codec.receive(samples.astype("<i2").tobytes())
    assert np.array_equal(audio.pcm, samples)
    frames = codec.send_audio(np.tile(samples, 3))
    assert [len(f) for f in frames] == [640, 640, 640]


@pytest.mark.parametrize(
    "message",
    [
        "BOGUS_EVENT foo:bar",
        "DTMF_END digit:Z",
        "MEDIA_MARK_PROCESSED",
        "{not json",
        "   ",
        docs.ASTERISK_MEDIA_START,  # a second one
        "x" * 20_000,
        bytes(70_000),
    ],
)
def test_malformed_control_is_an_error_event_never_an_exception(message):
    [event] = ws_started().receive(message)
    assert isinstance(event, ProtocolError) and not event.fatal


def test_media_before_start_odd_slin_and_unknown_formats():
    [early] = AsteriskWebSocketCodec().receive(bytes(160))
    assert isinstance(early, ProtocolError) and not early.fatal
    slin = ws_started(docs.ASTERISK_MEDIA_START.replace("ulaw", "slin").replace("160", "320"))
    [odd] = slin.receive(bytes(321))
    assert isinstance(odd, ProtocolError) and not odd.fatal
    [opus] = AsteriskWebSocketCodec().receive(docs.ASTERISK_MEDIA_START.replace("ulaw", "opus"))
    assert isinstance(opus, ProtocolError) and opus.fatal
    with pytest.raises(CodecStateError):
        AsteriskWebSocketCodec().mark("r1.0")


# --------------------------------------------------------------- AudioSocket


class FakeClock:
    def __init__(self) -> None:
        self.t = 10.0

    def __call__(self) -> float:
        return self.t


def test_documented_frames_in_one_read():
    codec = AudioSocketCodec()
    stream = docs.AUDIOSOCKET_ID + docs.AUDIOSOCKET_AUDIO + docs.AUDIOSOCKET_DTMF
    started, audio, digit = codec.receive(stream + docs.AUDIOSOCKET_HANGUP)[:3]
    assert isinstance(started, CallStarted)
    assert started.carrier == "audiosocket" and started.call_id == docs.AUDIOSOCKET_UUID
    assert started.media_format == MediaFormat("audio/l16", 8000, 1)
    assert isinstance(audio, AudioIn) and audio.pcm.size == 320
    assert digit == DtmfDigit("5")
    assert codec.ended


def test_frames_split_across_reads_at_every_byte():
    stream = docs.AUDIOSOCKET_ID + docs.AUDIOSOCKET_AUDIO + docs.AUDIOSOCKET_HANGUP
    codec = AudioSocketCodec()
    events = []
    for index in range(len(stream)):
        events += codec.receive(stream[index : index + 1])
    assert [type(e) for e in events] == [CallStarted, AudioIn, CallEnded]


def test_outbound_audio_is_20_ms_frames_and_hangup_is_type_zero():
    codec = AudioSocketCodec()
    codec.receive(docs.AUDIOSOCKET_ID)
    frames = codec.send_audio(np.zeros(640, np.int16))  # 40 ms at 16 kHz
    assert frames == [b"\x10\x01\x40" + bytes(320)] * 2
    assert codec.hangup() == docs.AUDIOSOCKET_HANGUP
    assert codec.clear() == []


def test_emulated_marks_follow_the_audio_and_clear():
    clock = FakeClock()
    codec = AudioSocketCodec(clock, mark_latency_s=0.0)
    codec.receive(docs.AUDIOSOCKET_ID)
    codec.send_audio(np.zeros(1600, np.int16))  # 100 ms
    codec.mark("r1.0")
    codec.send_audio(np.zeros(1600, np.int16))
    codec.mark("r1.end")
    clock.t += 0.1
    assert codec.poll() == [MarkPlayed("r1.0")]
    codec.clear()
    assert codec.poll() == [MarkPlayed("r1.end")]


@pytest.mark.parametrize(
    ("stream", "fatal"),
    [
        (docs.AUDIOSOCKET_AUDIO, True),  # audio before the UUID
        (docs.audiosocket_frame(0x01, b"short"), True),
        (docs.AUDIOSOCKET_ID + docs.AUDIOSOCKET_ERROR, False),
        (docs.AUDIOSOCKET_ID + docs.audiosocket_frame(0x10, bytes(321)), False),
        (docs.AUDIOSOCKET_ID + docs.audiosocket_frame(0x10, bytes(20_000)), False),
        (docs.AUDIOSOCKET_ID + docs.audiosocket_frame(0x03, b"Z"), False),
        (docs.AUDIOSOCKET_ID + docs.audiosocket_frame(0x42, b"??"), False),
        (docs.AUDIOSOCKET_ID + docs.AUDIOSOCKET_ID, False),
    ],
)
def test_bad_frames_are_error_events(stream, fatal):
    errors = [e for e in AudioSocketCodec().receive(stream) if isinstance(e, ProtocolError)]
    assert len(errors) == 1 and errors[0].fatal is fatal


def test_text_is_not_audiosocket():
    [event] = AudioSocketCodec().receive("hello")
    assert isinstance(event, ProtocolError)
