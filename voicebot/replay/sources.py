"""What can be replayed, and how each kind becomes the caller's side of a call.

- A caller-leg WAV (any format, e.g. the 8 kHz mu-law of a phone line): sent as Twilio
  media messages through the real Twilio codec, exactly as `voicebot dial` would.
- A recorded call directory with `capture.jsonl`: the carrier's own inbound audio bytes
  and key presses (exactly what the live bot received), re-sent through the codec.
- A recorded call directory with `recording.wav` (or `.wav.enc`): its left channel is
  the caller audio exactly as the live bot processed it (16 kHz, after the edge
  conversion), fed frame by frame.
- A folder of any of these (sorted by name).
A recorded directory's `transcript.json` is the original the replay can be compared to,
and its `events.jsonl` says whether the original line could transfer to a person (the
dialogue offers one only where it could, so the replay pretends the same).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from telephony.events import BOT_FRAME_SAMPLES, BOT_SAMPLE_RATE, PCM16
from voicebot.dial import caller_audio
from voicebot.recording.files import decrypt_recording, unseal
from voicebot.wavio import WavError, read_pcm16_channels

CAPTURE = "capture.jsonl"
RECORDING = "recording.wav"
TRANSCRIPT = "transcript.json"
EVENTS = "events.jsonl"


class SourceError(ValueError):
    """An input that cannot be replayed."""


@dataclass(frozen=True, slots=True)
class Source:
    """One call to replay."""

    name: str
    path: Path
    kind: str  # "wav" | "capture" | "recording"
    original: Path | None = None


@dataclass(frozen=True, slots=True)
class CallerSide:
    """The caller's side of a call: mu-law bytes (carrier side) or 16 kHz frames."""

    ulaw: bytes | None = None
    #: 16 kHz PCM16 frames as the live bot processed them.
    frames: tuple[PCM16, ...] | None = None
    #: Key presses with their call-clock times.
    dtmf: tuple[tuple[float, str], ...] = ()
    #: Whether the original call could be transferred to a person (False when unknown).
    can_transfer: bool = False
    #: How the original call's transfers ended, in order (True: put through).
    transfers: tuple[bool, ...] = ()

    @property
    def ticks(self) -> int:
        """How many 20 ms frames of caller input there are."""
        if self.ulaw is not None:
            return (len(self.ulaw) + 159) // 160
        return len(self.frames or ())


def _classify(path: Path) -> Source | None:
    if path.is_file() and path.suffix.lower() == ".wav":
        return Source(path.stem, path, "wav")
    if not path.is_dir():
        return None
    original = path / TRANSCRIPT if (path / TRANSCRIPT).is_file() else None
    for name, kind in ((CAPTURE, "capture"), (RECORDING, "recording")):
        for candidate in (path / name, path / f"{name}.enc"):
            if candidate.is_file():
                return Source(path.name, candidate, kind, original)
    return None


def discover(root: Path) -> list[Source]:
    """The calls under `root` (itself one call, or a folder of calls and WAVs)."""
    if not root.exists():
        raise SourceError(f"{root} does not exist")
    single = _classify(root)
    if single is not None:
        return [single]
    found: list[Source] = []
    for child in sorted(root.iterdir()):
        source = _classify(child)
        if source is None and child.is_dir() and (child / "calls").is_dir():
            found += [s for c in sorted((child / "calls").iterdir()) if (s := _classify(c))]
        elif source is not None:
            found.append(source)
    if not found:
        raise SourceError(f"{root}: no WAV files or recorded calls to replay")
    names = [s.name for s in found]
    if len(set(names)) != len(names):
        found = [
            Source(f"{i:03d}-{s.name}", s.path, s.kind, s.original) for i, s in enumerate(found)
        ]
    return found


def _read_capture(path: Path, key: bytes | None) -> CallerSide:
    if path.suffix == ".enc":
        if key is None:
            raise SourceError(f"{path} is encrypted: set the recording key to replay it")
        text = b"".join(unseal(path, key)).decode()
    else:
        text = path.read_text(encoding="utf-8")
    audio: list[bytes] = []
    dtmf: list[tuple[float, str]] = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
            message = json.loads(entry["text"]) if entry.get("dir") == "in" else None
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a torn last line after a crash, or a binary frame
        if not isinstance(message, dict):
            continue
        if message.get("event") == "media":
            media = message.get("media") or {}
            if media.get("track", "inbound") in ("inbound", "inbound_track"):
                try:
                    audio.append(base64.b64decode(media.get("payload", ""), validate=True))
                except (binascii.Error, ValueError):
                    continue
        elif message.get("event") == "dtmf":
            digit = (message.get("dtmf") or {}).get("digit")
            if isinstance(digit, str):
                dtmf.append((float(entry.get("t", 0.0)), digit))
    return CallerSide(ulaw=b"".join(audio), dtmf=tuple(dtmf))


def _recording_frames(path: Path, key: bytes | None) -> tuple[PCM16, ...]:
    if path.suffix == ".enc":
        if key is None:
            raise SourceError(f"{path} is encrypted: set the recording key to replay it")
        data = decrypt_recording(path, key)
    else:
        data = path.read_bytes()
    samples, rate = read_pcm16_channels(data)
    if rate != BOT_SAMPLE_RATE or samples.shape[1] != 2:
        raise SourceError(f"{path}: expected a 16 kHz stereo voicebot recording")
    caller = np.ascontiguousarray(samples[:, 0])
    usable = caller.size // BOT_FRAME_SAMPLES * BOT_FRAME_SAMPLES
    return tuple(caller[:usable].reshape(-1, BOT_FRAME_SAMPLES))


def load(source: Source, key: bytes | None = None) -> CallerSide:
    """Read a source into the caller's side of a call."""
    try:
        if source.kind == "wav":
            return CallerSide(ulaw=caller_audio(source.path))
        if source.kind == "capture":
            side = _read_capture(source.path, key)
        else:
            side = CallerSide(frames=_recording_frames(source.path, key))
    except (OSError, WavError) as exc:
        raise SourceError(f"{source.path}: {exc}") from exc
    can_transfer, transfers = _line_facts(source.path.parent / EVENTS)
    return replace(side, can_transfer=can_transfer, transfers=transfers)


def _line_facts(events: Path) -> tuple[bool, tuple[bool, ...]]:
    """From the original events log: could the line transfer (calls recorded before the
    `can_transfer` event existed: False), and how each transfer ended."""
    can_transfer, transfers = False, []
    try:
        with events.open(encoding="utf-8") as lines:
            for line in lines:
                if '"can_transfer"' not in line and '"transfer"' not in line:
                    continue
                with contextlib.suppress(json.JSONDecodeError):
                    entry = json.loads(line)
                    if not isinstance(entry, dict):
                        continue
                    if entry.get("event") == "can_transfer":
                        can_transfer = entry.get("value") is True
                    elif entry.get("event") == "transfer" and entry.get("state") != "started":
                        transfers.append(entry.get("state") == "transferred")
    except OSError:
        pass
    return can_transfer, tuple(transfers)


def original_turns(source: Source) -> dict[str, object] | None:
    """The original call's transcript, when the source has one."""
    if source.original is None:
        return None
    data: dict[str, object] = json.loads(source.original.read_text(encoding="utf-8"))
    return data


def iter_ulaw_frames(ulaw: bytes) -> Iterator[bytes]:
    """160-byte (20 ms) mu-law frames, the last one padded with silence."""
    for start in range(0, len(ulaw), 160):
        yield ulaw[start : start + 160].ljust(160, b"\xff")
