"""G.711 codecs against the standard's fixed points and, where available, audioop."""

import warnings

import numpy as np
import pytest

from telephony.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)


def test_ulaw_fixed_points():
    # G.711: 0xFF and 0x7F are the two zeros, 0x00 is the most negative, 0x80 the most positive.
    assert ulaw_decode(bytes([0xFF, 0x7F, 0x00, 0x80])).tolist() == [0, 0, -32124, 32124]
    assert ulaw_encode(np.array([0, 32767, -32768], dtype=np.int16)) == bytes([0xFF, 0x80, 0x00])


def test_alaw_fixed_points():
    assert alaw_decode(bytes([0xD5, 0x55, 0x2A, 0xAA])).tolist() == [8, -8, -32256, 32256]


@pytest.mark.parametrize(
    ("encode", "decode", "max_error"),
    [(ulaw_encode, ulaw_decode, 1024), (alaw_encode, alaw_decode, 1024)],
)
def test_round_trip_error_is_within_one_quantisation_step(encode, decode, max_error):
    decoded = decode(encode(ALL_PCM)).astype(np.int32)
    error = np.abs(decoded - ALL_PCM.astype(np.int32))
    assert error.max() <= max_error
    # Companding: small signals keep small absolute errors.
    small = np.abs(ALL_PCM.astype(np.int32)) < 256
    assert error[small].max() <= 16


def test_every_code_decodes_and_reencodes_to_itself():
    codes = bytes(range(256))
    # 0x7F (negative zero) re-encodes as 0xFF (positive zero); every other code is a fixed point.
    expected = bytes(0xFF if c == 0x7F else c for c in codes)
    assert ulaw_encode(ulaw_decode(codes)) == expected
    assert alaw_encode(alaw_decode(codes)) == codes


def test_matches_audioop_bit_for_bit_where_available():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    raw = ALL_PCM.tobytes()
    assert ulaw_encode(ALL_PCM) == audioop.lin2ulaw(raw, 2)
    assert alaw_encode(ALL_PCM) == audioop.lin2alaw(raw, 2)
    codes = bytes(range(256))
    assert ulaw_decode(codes).tobytes() == audioop.ulaw2lin(codes, 2)
    assert alaw_decode(codes).tobytes() == audioop.alaw2lin(codes, 2)
