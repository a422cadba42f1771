"""The live-stream resampler: continuity across frames, fidelity, aliasing, delay."""

import numpy as np
import pytest

from telephony.resample import StreamResampler, resample


def tone(freq, rate, seconds=1.0, amplitude=10_000):
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * amplitude).astype(np.int16)


def stream(resampler, pcm, chunk):
    return np.concatenate(
        [resampler.process(pcm[i : i + chunk]) for i in range(0, pcm.size, chunk)]
    )


def snr_db(signal, reference):
    noise = signal.astype(np.float64) - reference
    return 10 * np.log10((reference**2).mean() / (noise**2).mean())


@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (16000, 8000), (16000, 24000)])
def test_frames_out_match_frames_in_exactly(src, dst):
    r = StreamResampler(src, dst)
    frame = src // 50
    sizes = {r.process(np.zeros(frame, np.int16)).size for _ in range(20)}
    assert sizes == {dst // 50}


@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (16000, 8000)])
def test_tone_survives_with_high_snr_and_small_delay(src, dst):
    r = StreamResampler(src, dst)
    out = stream(r, tone(1000, src), src // 50)
    t = np.arange(out.size) / dst
    ideal = np.sin(2 * np.pi * 1000 * (t - r.delay_s)) * 10_000
    assert r.delay_s < 0.005
    assert snr_db(out[dst // 10 :], ideal[dst // 10 :]) > 60


def test_downsampling_rejects_content_above_the_new_nyquist():
    r = StreamResampler(16000, 8000)
    out = stream(r, tone(6000, 16000), 320)
    # A 6 kHz tone cannot exist at 8 kHz: it must be filtered, not folded to 2 kHz.
    assert np.abs(out[800:]).max() < 100


def test_round_trip_8k_16k_8k_keeps_phone_band_tones():
    up, down = StreamResampler(8000, 16000), StreamResampler(16000, 8000)
    signal = tone(300, 8000) // 2 + tone(3000, 8000) // 2
    back = stream(down, stream(up, signal, 160), 320)
    t = np.arange(back.size) / 8000 - (up.delay_s + down.delay_s)
    ideal = (np.sin(2 * np.pi * 300 * t) + np.sin(2 * np.pi * 3000 * t)) * 5000
    assert snr_db(back[800:], ideal[800:]) > 40


def test_reset_forgets_previous_audio():
    r = StreamResampler(16000, 8000)
    r.process(tone(440, 16000, 0.1))
    r.reset()
    assert np.abs(r.process(np.zeros(320, np.int16))).max() == 0


def test_whole_clip_resample_keeps_duration():
    out = resample(tone(440, 22050), 22050, 16000)
    assert abs(out.size - 16000) <= 1


def test_bad_rates_are_rejected():
    with pytest.raises(ValueError):
        StreamResampler(0, 8000)
    with pytest.raises(ValueError):
        StreamResampler(44100, 16000)
