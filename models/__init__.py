"""ML backends behind small Protocols: VAD, ASR, TTS, text embeddings; weight loading.

Nothing here imports `voicebot` or `telephony`. A backend takes arrays and text and
returns arrays and text. Heavy imports (torch, ctranslate2, onnxruntime) happen inside
the backend's constructor, never at package import, so the CLI starts fast and a
missing optional backend only fails when it is chosen.
"""
