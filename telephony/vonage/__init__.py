"""Vonage Voice API websockets (sans-I/O codec)."""
