"""Telnyx media streaming over websockets (sans-I/O codec)."""
