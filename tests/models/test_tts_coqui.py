"""The Coqui TTS backend on a tiny VITS model built here from a config (random weights).

`coqui-tts` is an optional extra: `import TTS` needs torchaudio of the same release as
torch, and PyPI's torchaudio stops at 2.11 and links PyPI's CUDA torch, so it cannot load
beside this project's torch 2.13 CPU build (see WEIGHTS notes). `make test-coqui` runs
this file in its own environment, `.venv-coqui` (torch and torchaudio 2.11 from PyPI, a
CUDA build run on the CPU, with the project's other pins), and requires it to pass there
(VOICEBOT_REQUIRE_COQUI=1, as in CI); elsewhere, as in `make test`, the model test skips,
saying why. The weights are random, so the speech is noise: the test checks the plumbing
(load a model directory, synthesise, 16 kHz PCM16, not silence), not the voice.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from models.tts_coqui import CoquiSynthesizer, CoquiUnavailable, find_checkpoint
from voicebot.config import TtsConfig
from voicebot.tts_backends import build_synthesizer


def _import_tts() -> str | None:
    """None when `TTS` imports here, else why not."""
    try:
        import TTS.utils.synthesizer  # noqa: F401
    except Exception as exc:  # ImportError, or torchaudio failing to load for this torch
        return f"coqui-tts (import TTS) is not usable here: {exc!r}"
    return None


WHY_NOT = _import_tts()
REQUIRE_ENV = "VOICEBOT_REQUIRE_COQUI"


@pytest.fixture(scope="module")
def tiny_vits(tmp_path_factory):
    """A VITS model directory (config.json + model.pth) with few layers and small dims."""
    if WHY_NOT:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{WHY_NOT} but {REQUIRE_ENV}=1 (make test-coqui builds .venv-coqui)")
        pytest.skip(f"{WHY_NOT}; `make test-coqui` runs it in its own environment")
    import torch
    from TTS.tts.configs.vits_config import VitsArgs, VitsConfig
    from TTS.tts.models.vits import Vits

    torch.manual_seed(0)
    args = VitsArgs(
        hidden_channels=16,
        hidden_channels_ffn_text_encoder=32,
        num_heads_text_encoder=2,
        num_layers_text_encoder=1,
        num_layers_posterior_encoder=1,
        num_layers_flow=1,
        resblock_kernel_sizes_decoder=[3],
        resblock_dilation_sizes_decoder=[[1, 3, 5]],  # ResBlock1 takes three
        upsample_initial_channel_decoder=32,
        use_sdp=False,
        init_discriminator=False,
    )
    config = VitsConfig(
        model_args=args, use_phonemes=False, text_cleaner="basic_cleaners", add_blank=True
    )
    config.audio.sample_rate = 22_050
    model = Vits(config)  # fills in the characters and their count (in model.config)
    directory = tmp_path_factory.mktemp("coqui-tiny-vits")
    torch.save({"model": model.state_dict()}, directory / "model.pth")
    model.config.save_json(str(directory / "config.json"))
    return directory


def test_coqui_backend_synthesises_16k_pcm16_from_a_model_directory(tiny_vits):
    voice = CoquiSynthesizer(tiny_vits, device="cpu")
    assert voice.native_rate == 22_050
    audio = voice.synthesize("Your card is frozen now.")
    assert audio.dtype == np.int16 and audio.ndim == 1
    assert audio.size > 0.05 * 16_000  # random durations: short, but there
    assert np.abs(audio.astype(np.int32)).max() > 200
    assert voice.synthesize("  ").size == 0
    built = build_synthesizer(TtsConfig(backend="coqui", model=str(tiny_vits)))
    assert built.synthesize("Hello there.").dtype == np.int16


def test_coqui_is_never_imported_unless_configured():
    code = "import sys, voicebot.app, voicebot.call, models.tts_coqui; print('TTS' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_configured_coqui_without_its_package_or_model_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="model"):
        build_synthesizer(TtsConfig(backend="coqui"))
    with pytest.raises(ValueError, match="unknown TTS backend"):
        build_synthesizer(replace(TtsConfig(), backend="espeak"))
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        CoquiSynthesizer(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no single Coqui checkpoint"):
        find_checkpoint(tmp_path)
    (tmp_path / "best_model.pth").write_bytes(b"")
    assert find_checkpoint(tmp_path).name == "best_model.pth"
    if WHY_NOT:
        with pytest.raises(CoquiUnavailable, match=r"pip install 'voicebot\[coqui\]'"):
            CoquiSynthesizer(tmp_path)
