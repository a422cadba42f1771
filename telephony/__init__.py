"""Carrier-facing side of the bot: wire formats, audio codecs and the media server.

Nothing here imports `voicebot` or `models`: carriers hand a carrier-neutral stream of
events (see `telephony.events`) to a call handler and take commands back.
"""
