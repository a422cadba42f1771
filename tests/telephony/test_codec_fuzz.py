"""Property-based bad input for the Twilio codec: whatever arrives, it answers with events.

A carrier (or anything that reaches the media port) may send malformed JSON, invalid
base64, odd payload sizes, unknown events, binary frames, repeated or out-of-order
sequence numbers. The codec is sans-I/O: every message must come back as a list of
events (a `ProtocolError` for what it cannot use), never as an exception that would
reach the server loop, and media it accepts must always be whole 16 kHz PCM16 samples.
"""

from __future__ import annotations

import base64
import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telephony.events import AudioIn, Event, ProtocolError
from telephony.twilio.codec import TwilioCodec
from tests.fixtures import twilio_messages as docs

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EVENTS = ["connected", "start", "media", "dtmf", "mark", "stop", "clear", "", "MEDIA", "x" * 300]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def started() -> TwilioCodec:
    codec = TwilioCodec()
    codec.receive(docs.START)
    return codec


def check(events: list[Event]) -> None:
    assert isinstance(events, list)
    for event in events:
        if isinstance(event, AudioIn):
            assert event.pcm.dtype == np.int16 and event.pcm.ndim == 1
        if isinstance(event, ProtocolError):
            assert event.message  # a clear reason, for the log line


@FUZZ
@given(st.text(max_size=400) | st.binary(max_size=400))
def test_any_frame_is_events_never_an_exception(frame):
    check(started().receive(frame))


@FUZZ
@given(
    event=st.sampled_from(EVENTS),
    body=st.dictionaries(st.text(max_size=16), json_values, max_size=6),
    sequence=st.one_of(st.none(), st.integers(-5, 10**12), st.text(max_size=8)),
)
def test_any_json_object_with_any_event_is_events(event, body, sequence):
    message = {"event": event, **body}
    if sequence is not None:
        message["sequenceNumber"] = sequence
    check(started().receive(json.dumps(message)))


@FUZZ
@given(payload=st.binary(max_size=3000), mangle=st.sampled_from(["ok", "cut", "junk", "pad"]))
def test_media_payloads_of_any_size_or_encoding(payload, mangle):
    encoded = base64.b64encode(payload).decode()
    encoded = {
        "ok": encoded,
        "cut": encoded[:-1],
        "junk": encoded + "!*",
        "pad": "=" + encoded,
    }[mangle]
    message = {
        "event": "media",
        "sequenceNumber": "3",
        "streamSid": "MZ18ad3ab5a668481ce02b83e7395059f0",
        "media": {"track": "inbound", "chunk": "2", "timestamp": "5", "payload": encoded},
    }
    events = started().receive(json.dumps(message))
    check(events)
    audio = [e for e in events if isinstance(e, AudioIn)]
    errors = [e for e in events if isinstance(e, ProtocolError)]
    if mangle == "ok":  # mu-law is a byte a sample: any whole payload is audio
        assert not errors
    if mangle == "junk":  # not base64 at all: refused, never decoded into noise
        assert errors and not audio


@FUZZ
@given(st.lists(st.integers(0, 40), min_size=1, max_size=60))
def test_out_of_order_and_repeated_sequence_numbers_never_replay_audio(sequence):
    codec = started()
    accepted = []
    for number in sequence:
        message = json.loads(docs.MEDIA_INBOUND)
        message["sequenceNumber"] = str(number)
        events = codec.receive(json.dumps(message))
        check(events)
        if any(isinstance(e, AudioIn) for e in events):
            accepted.append(number)
    assert accepted == sorted(set(accepted))  # strictly increasing: no duplicate, no rewind
