"""A real softphone, baresip (Debian baresip-core), calls the bot as a person would.

baresip runs headless with a config directory made here: its `aufile` module plays a
flite recording of a banking question as the microphone, the `sndfile` filter writes
what it hears to a WAV, and the `aubridge` device stands in for a loudspeaker. The test
drives it over `ctrl_tcp` (dial, hang up, quit) the way a desk phone's user would, and
hangs up only once the bot has finished its answer. baresip is a different SIP and RTP
stack from ours and from sipp (its own SDP, SSRC, ptime and dialog handling), which is
why it is worth a call of its own. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from telephony.resample import resample
from tests.helpers import flite_pcm, transcribe_async, wait_for_transcript, words
from tests.telephony.sip.peers import (
    call_dirs,
    events,
    free_udp_port,
    require_binary,
    sip_bridge,
    stopped,
    wait_for_event,
)
from voicebot.wavio import read_wav, write_wav

pytestmark = pytest.mark.slow

MODULES = Path("/usr/lib/baresip/modules")
QUESTION = "How do I close my account?"


@pytest.fixture(scope="module")
def baresip() -> str:
    return require_binary("baresip", "baresip-core")


def write_config(directory: Path, *, sip_port: int, ctrl_port: int, microphone: Path) -> None:
    """A baresip config dir: loopback only, G.711, a WAV as microphone, no sound card."""
    directory.mkdir()
    lines = {
        "poll_method": "epoll",
        "net_interface": "127.0.0.1",  # else it advertises the host's LAN address in SDP
        "sip_listen": f"127.0.0.1:{sip_port}",
        "audio_source": f"aufile,{microphone}",
        "audio_player": "aubridge,speaker",  # a device with no listener: no sound card needed
        "audio_alert": "aubridge,speaker",
        "audio_srate": "8000",
        "audio_channels": "1",
        "rtp_ports": "22000-22999",
        "ctrl_tcp_listen": f"127.0.0.1:{ctrl_port}",
        "snd_path": str(directory / "heard"),
        "module_path": str(MODULES),
    }
    modules = ["g711.so", "aufile.so", "aubridge.so", "sndfile.so", "ctrl_tcp.so"]
    text = "".join(f"{key}\t{value}\n" for key, value in lines.items())
    text += "".join(f"module\t{name}\n" for name in modules)
    text += "module_app\taccount.so\nmodule_app\tmenu.so\n"
    (directory / "config").write_text(text)
    (directory / "accounts").write_text("<sip:caller@127.0.0.1>;regint=0\n")
    (directory / "contacts").write_text("")
    (directory / "heard").mkdir()


class Phone:
    """baresip's ctrl_tcp: netstring-framed JSON commands, responses and events."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.events: list[dict] = []
        self._token = 0

    @classmethod
    async def connect(cls, port: int, proc: asyncio.subprocess.Process) -> Phone:
        for _ in range(100):
            if proc.returncode is not None:
                raise AssertionError(f"baresip exited with {proc.returncode}")
            try:
                return cls(*await asyncio.open_connection("127.0.0.1", port))
            except OSError:
                await asyncio.sleep(0.1)
        raise AssertionError("baresip's ctrl_tcp never listened")

    async def _read(self) -> dict:
        length = int((await self.reader.readuntil(b":"))[:-1])
        body = await self.reader.readexactly(length + 1)  # the JSON and the trailing comma
        return dict(json.loads(body[:-1]))

    async def command(self, command: str, params: str = "") -> dict:
        """Send a command; its response (events that arrive meanwhile are kept)."""
        self._token += 1
        token = str(self._token)
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self.writer.write(b"%d:%s," % (len(body), body))
        await self.writer.drain()
        while True:
            message = await asyncio.wait_for(self._read(), 10)
            if message.get("response") and message.get("token") == token:
                assert message.get("ok"), message
                return message
            self.events.append(message)

    async def event(self, kind: str, timeout_s: float = 15.0) -> dict:
        """The next event of type `kind` (CALL_ESTABLISHED, CALL_CLOSED, ...)."""
        for seen in self.events:
            if seen.get("type") == kind:
                self.events.remove(seen)
                return seen
        async with asyncio.timeout(timeout_s):
            while True:
                message = await self._read()
                if message.get("type") == kind:
                    return message
                self.events.append(message)

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def phone(baresip, tmp_path) -> AsyncIterator[tuple[Phone, Path]]:
    """baresip with a spoken question as its microphone; stopped whatever happens."""
    pcm = flite_pcm(QUESTION, "rms")
    # aufile wants S16LE at the call's rate; the long tail keeps the call up until we hang up
    # (baresip hangs up by itself when the file ends).
    speech = resample(pcm, 16000, 8000)
    microphone = tmp_path / "microphone.wav"
    write_wav(microphone, np.concatenate([np.zeros(4000, np.int16), speech,
                                          np.zeros(8000 * 60, np.int16)]), 8000)  # fmt: skip
    config, ctrl_port = tmp_path / "baresip", free_udp_port()
    write_config(config, sip_port=free_udp_port(), ctrl_port=ctrl_port, microphone=microphone)
    log = (tmp_path / "baresip.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        baresip, "-f", str(config), "-t", "90", stdin=asyncio.subprocess.DEVNULL,
        stdout=log, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    client = None
    try:
        client = await Phone.connect(ctrl_port, proc)
        yield client, config / "heard"
        await client.command("quit")
        await asyncio.wait_for(proc.wait(), 10)
    finally:
        if client is not None:
            client.close()
        await stopped(proc)
        log.close()


@pytest.fixture
async def bridge(services):
    async with sip_bridge(services, (44000, 44999)) as server:
        yield server


async def test_baresip_calls_asks_hears_the_answer_and_hangs_up(phone, bridge, services, config):
    client, heard_dir = phone
    data = Path(config.server.data_dir)
    before = call_dirs(data)
    await client.command("dial", f"sip:bot@127.0.0.1:{bridge.port}")
    await client.event("CALL_ESTABLISHED")
    [directory] = call_dirs(data) - before

    def answered(event: dict, seen: list[dict]) -> bool:
        """The reply to the caller's question (not the greeting) has been played out."""
        replies = {e["reply"] for e in seen if e["event"] == "decision"}
        return event["event"] == "reply_done" and event["reply"] in replies

    done = await wait_for_event(directory, answered, timeout_s=40)
    await client.command("hangup")
    await client.event("CALL_CLOSED")  # our BYE was answered

    record = await wait_for_transcript(directory)
    assert record["carrier"] == "sip" and record["end_reason"] == "bye"
    assert record["custom_parameters"]["From"] == "caller"
    [turn] = record["turns"]
    assert {"close", "account"} <= words(turn["caller_text"]), turn
    assert turn["bot_text"] and turn["heard_text"] == turn["bot_text"], turn
    log = events(directory)
    assert [e["event"] for e in log[-2:]] == ["stop", "end"], log[-5:]
    # Nothing recorded is lost: both legs, up to the hangup.
    recording = read_wav(directory / "recording.wav")
    length_s = recording.pcm.shape[0] / recording.sample_rate
    assert length_s >= record["ended_s"] - 1.0, (length_s, record["ended_s"])

    # What baresip played to its "speaker" holds the bot's answer.
    [dump] = heard_dir.glob("*-dec.wav")
    started = next(e["t"] for e in log if e["event"] == "bot_audio" and e["reply"] == done["reply"])
    heard = await transcribe_async(services, dump, max(0.0, started - 0.5))
    said = words(turn["bot_text"])
    assert len(words(heard) & said) >= 0.5 * len(said), (heard, said)
