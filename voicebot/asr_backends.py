"""Choosing a speech recognizer by name: the one place that maps `[asr] backend` to a class.

The server (`voicebot.app.build_services`) and `voicebot eval-asr` build recognizers
through this, so an evaluation measures exactly what a call would run.
"""

from __future__ import annotations

from models.protocols import SpeechRecognizer
from voicebot.config import AsrConfig

#: faster-whisper: CTranslate2, the CPU default (int8). openai-whisper: PyTorch, the GPU path.
#: whisper-batched: the same weights behind one batching worker shared by every call
#: (static KV cache; CUDA graphs on a GPU).
ASR_BACKENDS = ("faster-whisper", "openai-whisper", "whisper-batched")


def build_recognizer(asr: AsrConfig) -> SpeechRecognizer:
    """Load the recognizer `asr` asks for (models load here: seconds, not milliseconds).

    `compute_type` applies to faster-whisper only; openai-whisper computes in fp16 on
    CUDA and fp32 on the CPU. `threads` for openai-whisper is torch's process-wide
    intra-op count, which the caller sets.
    """
    if asr.backend == "faster-whisper":
        from models.asr_faster_whisper import FasterWhisperRecognizer

        return FasterWhisperRecognizer(
            asr.model,
            device=asr.device,
            compute_type=asr.compute_type,
            cpu_threads=asr.threads,
            num_workers=asr.workers,
            beam_size=asr.beam_size,
            language=asr.language or None,
            min_window_s=asr.min_window_s,
        )
    if asr.backend == "openai-whisper":
        from models.asr_openai_whisper import OpenAiWhisperRecognizer

        if asr.beam_size != 1:
            raise ValueError("[asr] openai-whisper decodes greedily: set beam_size = 1")
        return OpenAiWhisperRecognizer(asr.model, device=asr.device, language=asr.language or None)
    if asr.backend == "whisper-batched":
        from models.asr_batch import BatchPolicy
        from models.asr_openai_whisper import load_whisper
        from models.asr_whisper_batched import batched_whisper
        from models.whisper_arch import to_device
        from models.whisper_windows import step_windows

        model, _ = load_whisper(asr.model, "cpu")
        model = to_device(model, asr.device, half=asr.device.startswith("cuda"))
        policy = BatchPolicy(asr.batch_window_ms / 1000, asr.batch_max, timeout_s=asr.timeout_s)
        return batched_whisper(
            model,
            policy,
            language=asr.language or "en",
            buckets_s=step_windows(asr.min_window_s),
        )
    raise ValueError(f"unknown ASR backend {asr.backend!r} (known: {', '.join(ASR_BACKENDS)})")
