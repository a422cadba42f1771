"""Call recording: a stereo WAV on the call clock, an events log, and the raw capture."""
