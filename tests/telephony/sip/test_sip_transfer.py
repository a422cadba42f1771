"""Handing a SIP caller to a person: the real bot REFERs a real `sipp` caller.

The caller (scenarios/uac_transfer.xml) says "Hello.", presses 0 by RFC 4733, and then
plays the transferee's side of RFC 3515: 202 Accepted to the bot's REFER, and a NOTIFY
whose message/sipfrag reports how the call to the agent went. On "200 OK" the bot
hangs up (it no longer has the caller) and records the transfer; on "486 Busy Here"
it tells the caller it could not put them through and the call goes on until the
caller hangs up. Everything stays on 127.0.0.1; sipp missing skips (or fails under
VOICEBOT_REQUIRE_SIPP=1), as in test_sipp.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from telephony.sip.server import SipServer, SipSettings
from tests.helpers import build_call
from tests.telephony.sip import test_sipp as base
from tests.telephony.sip.test_sipp import SCENARIOS, existing, new_calls, run_sipp, scenario

pytestmark = pytest.mark.slow

AGENT = "sip:agent@127.0.0.1:5099"
sipp = base.sipp  # the same fixture: skip, or fail where sipp is required
recorder = base.recorder  # where the bot's RTP goes


@pytest.fixture
async def bridge(services: Any) -> AsyncIterator[SipServer]:
    """The app's own call handler behind a SIP bridge that transfers to `AGENT`."""
    from voicebot.app import build_server, warm_prompts

    await warm_prompts(services)
    handler = build_server(services).handler
    settings = SipSettings(host="127.0.0.1", port=0, rtp_ports=(24000, 24999), agent_uri=AGENT)
    server = SipServer(handler, settings)
    await server.start()
    yield server
    await server.close()


async def transfer_call(
    sipp: str, bridge: SipServer, recorder: Any, services: Any, tmp_path: Path, frag: str
) -> tuple[dict[str, Any], str]:
    """One sipp call that presses 0 and answers the REFER with `frag`; its record and Refer-To."""
    call = build_call(tmp_path / "hello.wav", ["Hello."], tail_s=1.0)
    after = "refer_done.part" if frag.startswith("SIP/2.0 2") else "refer_failed.part"
    path = scenario(
        tmp_path,
        "uac_transfer.xml",
        recorder.port,
        wav=call.path,
        dtmf_at_ms=3000,
        refer_wait_ms=30_000,
        frag=frag,
        after=(SCENARIOS / after).read_text(),
        stay_ms=12_000,  # long enough to hear "I could not put you through"
    )
    data = Path(services.config.server.data_dir)
    before = existing(data)
    await run_sipp(sipp, bridge, path, limit_s=90)
    await bridge.drain(15)
    [directory] = new_calls(data, before)
    record = json.loads((directory / "transcript.json").read_text())
    target, header = (tmp_path / "refer_to.txt").read_text().splitlines()
    assert header == f"<{target}>"  # the whole Refer-To value was the bracketed URI
    return record, target


async def test_a_notified_200_transfers_the_caller_and_the_bot_hangs_up(
    sipp: str, bridge: SipServer, recorder: Any, services: Any, tmp_path: Path
) -> None:
    record, refer_to = await transfer_call(
        sipp, bridge, recorder, services, tmp_path, "SIP/2.0 200 OK"
    )
    assert refer_to == AGENT
    assert record["carrier"] == "sip"
    assert record["handoff"]["transfer"] == "transferred", record["handoff"]
    assert "0" in record["handoff"]["reason"]
    assert record["end_reason"].startswith("transferred"), record["end_reason"]
    # The caller heard "I'll put you through" (the DTMF prompt), and nothing after it.
    assert [p["kind"] for p in record["prompts"]][-1] == "dtmf"


async def test_a_busy_agent_is_told_to_the_caller_and_the_call_goes_on(
    sipp: str, bridge: SipServer, recorder: Any, services: Any, tmp_path: Path
) -> None:
    record, refer_to = await transfer_call(
        sipp, bridge, recorder, services, tmp_path, "SIP/2.0 486 Busy Here"
    )
    assert refer_to == AGENT
    assert record["handoff"]["transfer"] == "transfer_failed", record["handoff"]
    assert "486" in record["handoff"]["error"]
    told = record["prompts"][-1]
    assert told["kind"] == "transfer_failed" and told["bot_text"], record["prompts"]
    assert record["end_reason"] == "bye"  # the caller hung up later; the bot did not
