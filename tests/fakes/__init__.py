"""Fakes: stand-ins for parts that cannot run here (an LLM server, a scripted model)."""
