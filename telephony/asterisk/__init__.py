"""Asterisk: chan_websocket and AudioSocket (sans-I/O codecs, the AudioSocket TCP server)."""
