"""The static-KV greedy decoder gives openai-whisper's own greedy tokens.

Random-weight models are built in the tests (small shapes, say so: a fake only in its
weights), and the real tiny.en weights are used where the CTranslate2 converter is
present. Everything runs on the CPU; the CUDA-graph path has its own test that runs
only where there is a GPU (the same step code, replayed).
"""

from __future__ import annotations

import copy
import importlib.util
from dataclasses import replace

import numpy as np
import pytest
import torch

whisper = pytest.importorskip("whisper")

from models.whisper_arch import (  # noqa: E402
    SHAPES,
    Dims,
    FallbackWhisper,
    encode,
    log_mel,
    mel_filters,
    random_model,
    slaney_mel,
    token_spec,
)
from models.whisper_static import StaticGreedyDecoder, dynamic_greedy  # noqa: E402

#: tiny.en's vocabulary and layout, but 2 narrow layers: fast, and every code path.
SMALL = replace(
    SHAPES["tiny.en"],
    n_audio_state=64,
    n_audio_head=2,
    n_audio_layer=2,
    n_text_state=64,
    n_text_head=2,
    n_text_layer=2,
)
OPTIONS = whisper.DecodingOptions(language="en", without_timestamps=True, fp16=False)


def reference(model: torch.nn.Module, features: torch.Tensor, max_tokens: int) -> list:
    """openai-whisper's greedy decode of already-encoded audio of any length.

    `decode` takes encoder output instead of a mel when its shape is the model's
    (n_audio_ctx, n_audio_state), so a shallow copy with its dims set to the trimmed
    length lets it decode trimmed audio with its own, unmodified loop.
    """
    view = copy.copy(model)
    view.dims = replace(model.dims, n_audio_ctx=features.shape[1])
    return whisper.decode(view, features, replace(OPTIONS, sample_len=max_tokens))


@pytest.fixture(scope="module")
def small_model() -> torch.nn.Module:
    return random_model(SMALL, seed=3, std=0.2, fallback=False)


def test_static_tokens_equal_whisper_greedy_on_random_weights(small_model):
    spec = token_spec(SMALL)
    features = encode(small_model, torch.randn(3, 80, 400))  # 4 s windows
    expected = reference(small_model, features, 24)
    got = StaticGreedyDecoder(small_model, spec, max_tokens=24).decode(features)
    assert [g.tokens for g in got] == [e.tokens for e in expected]
    for g, e in zip(got, expected, strict=True):
        assert g.avg_logprob == pytest.approx(e.avg_logprob, abs=1e-4)
        assert g.no_speech_prob == pytest.approx(e.no_speech_prob, rel=1e-3)
    assert dynamic_greedy(small_model, spec, features, 24) == [e.tokens for e in expected]


def test_padding_rows_and_reused_slots_do_not_change_results(small_model):
    decoder = StaticGreedyDecoder(small_model, token_spec(SMALL), max_tokens=12)
    features = encode(small_model, torch.randn(3, 80, 200))
    alone = [decoder.decode(features[i : i + 1])[0].tokens for i in range(3)]
    padded = decoder.decode(features, batch_bucket=8)  # 5 rows of padding
    again = decoder.decode(features, batch_bucket=8)  # the same slot, reset
    assert [p.tokens for p in padded] == alone == [a.tokens for a in again]


def test_sequences_end_at_eot_each_on_its_own():
    """EOT's embedding scaled up so rows end early, each at its own step."""
    model = random_model(SMALL, seed=5, std=0.2, fallback=False)
    spec = token_spec(SMALL)
    with torch.no_grad():
        model.decoder.token_embedding.weight[spec.eot] *= 12
    features = encode(model, torch.randn(4, 80, 200, generator=torch.Generator().manual_seed(0)))
    expected = reference(model, features, 10)
    got = StaticGreedyDecoder(model, spec, max_tokens=10).decode(features)
    assert [g.tokens for g in got] == [e.tokens for e in expected]
    assert {len(g.tokens) for g in got} == {7, 9}
    for g, e in zip(got, expected, strict=True):
        assert g.avg_logprob == pytest.approx(e.avg_logprob, abs=1e-4)


def test_fallback_architecture_loads_whisper_weights_and_agrees(small_model):
    fallback = FallbackWhisper(Dims(**vars(small_model.dims)))
    missing, unexpected = fallback.load_state_dict(small_model.state_dict(), strict=False)
    assert not unexpected and not missing
    mel = torch.randn(2, 80, 3000)
    with torch.no_grad():
        full = small_model.encoder(mel)  # openai-whisper's own 30 s forward
    assert torch.allclose(encode(small_model, mel), full, atol=1e-5)
    assert torch.allclose(encode(fallback, mel), full, atol=1e-4)
    spec, fallback_spec = token_spec(SMALL), token_spec(SMALL, fallback=True)
    features = encode(fallback, mel[:, :, :400])
    ours = StaticGreedyDecoder(fallback, fallback_spec, max_tokens=8).decode(features)
    theirs = StaticGreedyDecoder(small_model, spec, max_tokens=8).decode(features)
    assert [o.tokens for o in ours] == [t.tokens for t in theirs]


def test_token_layout_without_the_tokenizer_matches_it():
    for name in ("tiny.en", "base", "large-v3-turbo"):
        real, computed = token_spec(SHAPES[name]), token_spec(SHAPES[name], fallback=True)
        assert (computed.prompt, computed.eot, computed.no_speech) == (
            real.prompt,
            real.eot,
            real.no_speech,
        )
        assert set(computed.suppress) <= set(real.suppress)
        assert computed.suppress_first == real.suppress_first


def test_mel_front_end_is_whispers_per_utterance():
    for n_mels in (80, 128):
        assert np.allclose(slaney_mel(16_000, 400, n_mels), mel_filters(n_mels).numpy(), atol=1e-6)
    rng = np.random.default_rng(0)
    loud, quiet = rng.standard_normal(32_000) * 0.3, rng.standard_normal(16_000) * 0.01
    batch = np.zeros((2, 64_000), np.float32)
    batch[0, :32_000], batch[1, :16_000] = loud, quiet
    ours = log_mel(torch.from_numpy(batch), mel_filters(80))
    for row, clip in enumerate((loud, quiet)):
        theirs = whisper.log_mel_spectrogram(clip.astype(np.float32), padding=480_000)[:, :400]
        assert torch.allclose(ours[row], theirs, atol=1e-4)


def test_max_tokens_must_fit_whispers_context(small_model):
    with pytest.raises(ValueError, match="max_tokens"):
        StaticGreedyDecoder(small_model, token_spec(SMALL), max_tokens=500)


@pytest.mark.skipif(
    importlib.util.find_spec("models.whisper_convert") is None, reason="no converter"
)
def test_real_tiny_en_weights_same_tokens_as_whisper_on_speech():
    from models.weights import WeightsError
    from models.whisper_arch import load_checkpoint
    from models.whisper_convert import converted_checkpoint
    from tests.helpers import TWO_QUESTIONS, flite_pcm

    try:
        model = load_checkpoint(str(converted_checkpoint("tiny.en")), fallback=False)
    except WeightsError as exc:
        pytest.skip(f"tiny.en not packaged here: {exc}")
    spec = token_spec(model_dims := SHAPES["tiny.en"])
    assert model_dims.n_vocab == model.dims.n_vocab
    clips = [flite_pcm(text).astype(np.float32) / 32768 for text in TWO_QUESTIONS]
    mels = torch.stack([whisper.log_mel_spectrogram(c, padding=480_000)[:, :3000] for c in clips])
    expected = whisper.decode(model, mels, replace(OPTIONS, sample_len=48))
    got = StaticGreedyDecoder(model, spec, max_tokens=48).decode(encode(model, mels))
    assert [g.tokens for g in got] == [e.tokens for e in expected]
    assert "account" in spec.decode_text(got[0].tokens).lower()  # type: ignore[misc]
    assert len(got[0].tokens) != len(got[1].tokens)  # each stopped at its own EOT


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_replay_equals_eager_steps():
    model = random_model(SMALL, seed=3, std=0.2).cuda()
    spec = token_spec(SMALL)
    features = encode(model, torch.randn(3, 80, 400, device="cuda"))
    eager = StaticGreedyDecoder(model, spec, max_tokens=16, cuda_graphs=False).decode(features)
    graph = StaticGreedyDecoder(model, spec, max_tokens=16, cuda_graphs=True)
    assert [g.tokens for g in graph.decode(features, batch_bucket=4)] == [e.tokens for e in eager]
