"""Twilio Media Streams: the websocket codec, the voice webhook's TwiML and signatures."""
