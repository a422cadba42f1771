"""The Twilio codec on Twilio's documented messages, and on what Twilio never sends."""

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
from telephony.twilio.codec import CodecStateError, TwilioCodec
from telephony.twilio.peer import BotClear, BotMark, BotMedia, TwilioPeer
from tests.fixtures import twilio_messages as docs


def started_codec():
    codec = TwilioCodec()
    assert codec.receive(docs.CONNECTED) == []
    codec.receive(docs.START)
    return codec


def test_documented_start_message():
    codec = TwilioCodec()
    codec.receive(docs.CONNECTED)
    [event] = codec.receive(docs.START)
    assert isinstance(event, CallStarted)
    assert event.call_id == "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
    assert event.stream_id == "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
    assert event.account_id == "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
    assert dict(event.custom_parameters) == {
        "FirstName": "Jane",
        "LastName": "Doe",
        "RemoteParty": "Bob",
    }
    assert event.media_format == MediaFormat("audio/x-mulaw", 8000, 1)
    assert event.tracks == ("inbound",)
    assert event.carrier == "twilio"


def test_documented_media_message_inbound_track_becomes_16k_pcm():
    codec = started_codec()
    [event] = codec.receive(docs.MEDIA_INBOUND)
    assert isinstance(event, AudioIn)
    assert event.pcm.dtype == np.int16
    assert event.pcm.size == 2 * len(base64.b64decode(docs.PAYLOAD))
    assert event.timestamp_ms == 5
    assert event.sequence == 1
    assert np.abs(event.pcm).max() > 1000


def test_documented_media_on_outbound_track_is_ignored():
    codec = started_codec()
    assert codec.receive(docs.MEDIA_OUTBOUND_TRACK) == []


def test_documented_mark_dtmf_and_stop():
    codec = started_codec()
    assert codec.receive(docs.MARK) == [MarkPlayed("my label")]
    assert codec.receive(docs.DTMF) == [DtmfDigit("1")]
    assert codec.receive(docs.STOP) == [CallEnded("stop")]
    # Nothing after stop is taken as call input.
    [late] = codec.receive(docs.DTMF.replace('"5"', '"7"'))
    assert isinstance(late, ProtocolError)


def test_outbound_messages_have_the_documented_shape():
    codec = started_codec()
    [media] = codec.send_audio(np.zeros(320, dtype=np.int16))
    decoded = json.loads(media)
    assert {k: decoded[k] for k in docs.SEND_MEDIA} == docs.SEND_MEDIA
    # 20 ms at 16 kHz in, 20 ms of 8 kHz mu-law out.
    assert len(base64.b64decode(decoded["media"]["payload"])) == 160
    assert set(decoded) == {"event", "streamSid", "media"}
    assert set(decoded["media"]) == {"payload"}
    assert [json.loads(m) for m in codec.mark("my label")] == [docs.SEND_MARK]
    assert [json.loads(m) for m in codec.clear()] == [docs.SEND_CLEAR]


def test_sending_before_start_is_a_state_error():
    with pytest.raises(CodecStateError):
        TwilioCodec().send_audio(np.zeros(320, dtype=np.int16))


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        "[1, 2, 3]",
        '{"no_event": true}',
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
    codec = started_codec()
    events = codec.receive(message)
    assert len(events) == 1
    assert isinstance(events[0], ProtocolError)
    assert not events[0].fatal


def test_media_before_start_is_dropped_with_an_error():
    [event] = TwilioCodec().receive(docs.MEDIA_INBOUND)
    assert isinstance(event, ProtocolError)


def test_unsupported_media_format_is_fatal():
    start = json.loads(docs.START)
    start["start"]["mediaFormat"]["encoding"] = "audio/x-l16"
    [event] = TwilioCodec().receive(json.dumps(start))
    assert isinstance(event, ProtocolError) and event.fatal


def test_oversized_media_payload_is_rejected():
    codec = started_codec()
    big = base64.b64encode(b"\xff" * 9000).decode()
    [event] = codec.receive(docs.MEDIA_INBOUND.replace(docs.PAYLOAD, big))
    assert isinstance(event, ProtocolError)


def test_duplicate_and_old_sequence_numbers_are_dropped():
    codec = started_codec()
    assert len(codec.receive(docs.MEDIA_INBOUND)) == 1
    assert codec.receive(docs.MEDIA_INBOUND) == []
    assert codec.duplicates_dropped == 1


def test_peer_and_codec_talk_to_each_other():
    peer = TwilioPeer("CA1", "MZ1", "AC1", {"caller": "+15550001"})
    codec = TwilioCodec()
    events = []
    for message in (peer.connected(), peer.start(), peer.media(b"\x00" * 160, 0), peer.dtmf("0")):
        events.extend(codec.receive(message))
    assert [type(e) for e in events] == [CallStarted, AudioIn, DtmfDigit]
    assert events[0].custom_parameters["caller"] == "+15550001"
    replies = [peer.receive(m) for m in codec.send_audio(np.ones(320, np.int16))]
    replies += [peer.receive(m) for m in codec.mark("r1.0") + codec.clear()]
    assert isinstance(replies[0], BotMedia) and len(replies[0].ulaw) == 160
    assert replies[1:] == [BotMark("r1.0"), BotClear()]
    assert codec.receive(peer.mark("r1.0")) == [MarkPlayed("r1.0")]
    assert codec.receive(peer.stop()) == [CallEnded("stop")]
