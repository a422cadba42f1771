"""Property-based bad input for the Telnyx, Vonage and Asterisk codecs: events, never exceptions.

Whatever reaches a media route (malformed JSON, invalid base64, odd or oversized frames,
unknown events, binary where text is expected and the reverse, repeated or out-of-order
sequence numbers, TLV streams cut anywhere), every codec answers with a list of events:
`ProtocolError`s with a reason for what it cannot use, and whole 16 kHz PCM16 audio.
"""

from __future__ import annotations

import base64
import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telephony.asterisk.audiosocket import AudioSocketCodec
from telephony.asterisk.websocket_codec import AsteriskWebSocketCodec
from telephony.events import AudioIn, Event, ProtocolError
from telephony.telnyx.codec import TelnyxCodec
from telephony.vonage.codec import VonageCodec
from tests.fixtures import carrier_messages as docs

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=10,
)
frames = st.text(max_size=300) | st.binary(max_size=3000)


def telnyx() -> TelnyxCodec:
    codec = TelnyxCodec()
    codec.receive(docs.TELNYX_START)
    return codec


def vonage() -> VonageCodec:
    codec = VonageCodec()
    codec.receive(docs.VONAGE_CONNECTED)
    return codec


def asterisk() -> AsteriskWebSocketCodec:
    codec = AsteriskWebSocketCodec()
    codec.receive(docs.ASTERISK_MEDIA_START)
    return codec


def audiosocket() -> AudioSocketCodec:
    codec = AudioSocketCodec()
    codec.receive(docs.AUDIOSOCKET_ID)
    return codec


def check(events: list[Event]) -> None:
    assert isinstance(events, list)
    for event in events:
        if isinstance(event, AudioIn):
            assert event.pcm.dtype == np.int16 and event.pcm.ndim == 1
        if isinstance(event, ProtocolError):
            assert event.message


@FUZZ
@given(frame=frames, make=st.sampled_from([telnyx, vonage, asterisk, audiosocket]))
def test_any_frame_to_any_codec_is_events(frame, make):
    codec = make()
    check(codec.receive(frame))
    check(codec.poll() if hasattr(codec, "poll") else [])


@FUZZ
@given(
    event=st.sampled_from(["connected", "start", "media", "dtmf", "mark", "stop", "error", "x"]),
    body=st.dictionaries(st.text(max_size=16), json_values, max_size=6),
    sequence=st.one_of(st.none(), st.integers(-5, 10**12), st.text(max_size=8)),
)
def test_telnyx_any_json_object_is_events(event, body, sequence):
    message = {"event": event, **body}
    if sequence is not None:
        message["sequence_number"] = sequence
    check(telnyx().receive(json.dumps(message)))


@FUZZ
@given(payload=st.binary(max_size=3000), mangle=st.sampled_from(["ok", "cut", "junk", "pad"]))
def test_telnyx_payloads_of_any_size_or_encoding(payload, mangle):
    encoded = base64.b64encode(payload).decode()
    encoded = {"ok": encoded, "cut": encoded[:-1], "junk": encoded + "!*", "pad": "=" + encoded}
    events = telnyx().receive(docs.telnyx_media(2, payload=encoded[mangle]))
    check(events)
    if mangle == "junk":
        assert not any(isinstance(e, AudioIn) for e in events)


@FUZZ
@given(st.lists(st.integers(0, 40), min_size=1, max_size=80))
def test_telnyx_reordering_never_replays_or_rewinds_audio(sequence):
    codec = telnyx()
    delivered: list[int] = []
    for number in sequence:
        events = codec.receive(docs.telnyx_media(number))
        check(events)
        delivered += [e.sequence for e in events if isinstance(e, AudioIn) and e.sequence]
    assert delivered == sorted(set(delivered))  # strictly increasing: no duplicate, no rewind


@FUZZ
@given(
    event=st.sampled_from(["websocket:connected", "websocket:dtmf", "websocket:notify", "?"]),
    body=st.dictionaries(st.text(max_size=16), json_values, max_size=6),
)
def test_vonage_any_json_object_is_events(event, body):
    check(VonageCodec().receive(json.dumps({"event": event, **body})))
    check(vonage().receive(json.dumps({"event": event, **body})))


@FUZZ
@given(
    name=st.sampled_from(["MEDIA_START", "DTMF_END", "MEDIA_MARK_PROCESSED", "STATUS", "??"]),
    words=st.lists(st.text(min_size=1, max_size=20).filter(lambda w: not w.isspace()), max_size=6),
    as_json=st.booleans(),
    body=st.dictionaries(st.text(max_size=16), json_values, max_size=6),
)
def test_asterisk_any_control_message_is_events(name, words, as_json, body):
    message = json.dumps({"event": name, **body}) if as_json else " ".join([name, *words])
    check(AsteriskWebSocketCodec().receive(message))
    check(asterisk().receive(message))


@FUZZ
@given(
    kinds=st.lists(st.sampled_from([0x00, 0x01, 0x03, 0x10, 0xFF, 0x42]), max_size=8),
    sizes=st.lists(st.integers(0, 20_000), min_size=8, max_size=8),
    cuts=st.lists(st.integers(1, 700), max_size=20),
)
def test_audiosocket_any_tlv_stream_cut_anywhere_is_events(kinds, sizes, cuts):
    pairs = zip(kinds, sizes[: len(kinds)], strict=True)
    stream = b"".join(docs.audiosocket_frame(kind, bytes(size)) for kind, size in pairs)
    codec = AudioSocketCodec()
    for cut in [*cuts, len(stream)]:
        piece, stream = stream[:cut], stream[cut:]
        check(codec.receive(piece))
    assert codec.buffered <= 3 + 65_535
