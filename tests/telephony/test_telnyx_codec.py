"""The Telnyx codec on Telnyx's documented frames, on reordering, and on what Telnyx never sends."""

import base64
import json

import numpy as np
import pytest

from telephony.events import (
    AudioIn,
    CallEnded,
    CallStarted,
    DtmfDigit,
    MarkPlayed,
    MediaFormat,
    ProtocolError,
)
from telephony.g711 import alaw_decode
from telephony.telnyx.codec import TelnyxCodec
from telephony.wire import CodecStateError
from tests.fixtures import carrier_messages as docs


def started(**kwargs) -> TelnyxCodec:
    codec = TelnyxCodec(**kwargs)
    assert codec.receive(docs.TELNYX_CONNECTED) == []
    codec.receive(docs.TELNYX_START)
    return codec


def chunks(events) -> list[int | None]:
    return [e.sequence for e in events if isinstance(e, AudioIn)]


def test_documented_start_frame():
    codec = TelnyxCodec()
    codec.receive(docs.TELNYX_CONNECTED)
    [event] = codec.receive(docs.TELNYX_START)
    assert isinstance(event, CallStarted)
    assert event.carrier == "telnyx"
    assert event.call_id == docs.TELNYX_CALL_CONTROL_ID
    assert event.stream_id == docs.TELNYX_STREAM_ID
    assert event.account_id == "3E6F995F-85F7-4705-9741-53B116D28237"
    assert event.media_format == MediaFormat("PCMU", 8000, 1)
    assert dict(event.custom_parameters) == {
        "customer_id": "customer_123",
        "from": "+13122010094",
        "to": "+13122123456",
    }


def test_documented_media_dtmf_mark_error_and_stop():
    codec = started()
    [audio] = codec.receive(docs.TELNYX_MEDIA)
    assert isinstance(audio, AudioIn)
    assert audio.pcm.dtype == np.int16 and audio.pcm.size == 320  # 20 ms at 16 kHz
    assert audio.timestamp_ms == 20 and audio.sequence == 1
    assert codec.receive(docs.TELNYX_DTMF) == [DtmfDigit("1")]
    assert codec.receive(docs.TELNYX_MARK) == [MarkPlayed("my label")]
    [error] = codec.receive(docs.TELNYX_ERROR)
    assert isinstance(error, ProtocolError) and not error.fatal and "unknown_error" in error.message
    assert codec.receive(docs.TELNYX_STOP) == [CallEnded("stop")]
    [late] = codec.receive(docs.TELNYX_DTMF)
    assert isinstance(late, ProtocolError)


def test_pcma_streams_are_decoded_as_a_law():
    start = json.loads(docs.TELNYX_START)
    start["start"]["media_format"]["encoding"] = "PCMA"
    codec = TelnyxCodec()
    [event] = codec.receive(json.dumps(start))
    assert event.media_format.encoding == "PCMA"
    alaw = bytes(range(0, 160))
    [audio] = codec.receive(docs.telnyx_media(2, payload=base64.b64encode(alaw).decode()))
    # Same energy as a direct A-law decode (the resampler only changes the rate).
    direct = alaw_decode(alaw).astype(np.float64)
    assert abs(np.std(audio.pcm[40:]) - np.std(direct[20:])) < 0.2 * np.std(direct)
    [media] = codec.send_audio(np.zeros(320, np.int16))
    payload = base64.b64decode(json.loads(media)["media"]["payload"])
    assert len(payload) == 160 and set(payload) == {0xD5}  # A-law silence


def test_outbound_media_mark_and_clear_have_the_documented_shape():
    codec = started()
    [media] = codec.send_audio(np.zeros(320, dtype=np.int16))
    decoded = json.loads(media)
    assert set(decoded) == {"event", "media"} and decoded["event"] == "media"
    assert len(base64.b64decode(decoded["media"]["payload"])) == 160
    assert [json.loads(m) for m in codec.mark("my label")] == [docs.TELNYX_SEND_MARK]
    assert [json.loads(m) for m in codec.clear()] == [docs.TELNYX_SEND_CLEAR]


def test_sending_before_start_is_a_state_error():
    with pytest.raises(CodecStateError):
        TelnyxCodec().send_audio(np.zeros(320, dtype=np.int16))


def test_out_of_order_frames_are_delivered_in_order():
    codec = started()
    events = []
    for sequence in (2, 4, 3, 6, 5, 7):
        events += codec.receive(docs.telnyx_media(sequence))
    assert chunks(events) == [1, 2, 3, 4, 5, 6]
    assert codec.gaps_skipped == 0


def test_duplicates_and_stale_frames_are_dropped():
    codec = started()
    events = []
    for sequence in (2, 3, 3, 2, 4, 4):
        events += codec.receive(docs.telnyx_media(sequence))
    assert chunks(events) == [1, 2, 3]
    assert codec.duplicates_dropped == 3


def test_a_lost_frame_is_given_up_once_the_window_fills():
    codec = started(reorder_window=3)
    events = []
    for sequence in (2, 4, 5, 6):  # 3 never comes
        events += codec.receive(docs.telnyx_media(sequence))
    assert chunks(events) == [1]  # 4..6 wait for 3
    events = codec.receive(docs.telnyx_media(7))
    assert chunks(events) == [3, 4, 5, 6]
    assert codec.gaps_skipped == 1
    assert codec.receive(docs.telnyx_media(3)) == []  # too late now: dropped
    assert codec.duplicates_dropped == 1


def test_stop_flushes_held_frames_before_ending():
    codec = started()
    events = codec.receive(docs.telnyx_media(3)) + codec.receive(docs.TELNYX_STOP)
    assert chunks(events) == [2] and events[-1] == CallEnded("stop")


def test_a_far_jump_in_sequence_is_junk_not_reordering():
    codec = started()
    [error] = codec.receive(docs.telnyx_media(10**9))
    assert isinstance(error, ProtocolError)
    assert chunks(codec.receive(docs.telnyx_media(2))) == [1]


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        "[1, 2]",
        '{"event": "party"}',
        '{"event": "media", "media": {"payload": "!!!not base64!!!"}}',
        '{"event": "media", "media": {}}',
        '{"event": "dtmf", "dtmf": {"digit": "Z"}}',
        '{"event": "mark", "mark": {}}',
        b"\x00\x01binary",
        "x" * 70_000,
    ],
)
def test_malformed_input_is_an_error_event_never_an_exception(message):
    [event] = started().receive(message)
    assert isinstance(event, ProtocolError) and not event.fatal


@pytest.mark.parametrize("change", [("encoding", "OPUS"), ("sample_rate", 16000), ("channels", 2)])
def test_unsupported_media_format_is_fatal(change):
    start = json.loads(docs.TELNYX_START)
    start["start"]["media_format"][change[0]] = change[1]
    [event] = TelnyxCodec().receive(json.dumps(start))
    assert isinstance(event, ProtocolError) and event.fatal
