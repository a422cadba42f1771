"""The Twilio REST redirect that hands a call to a person, against a fake API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest

from telephony.twilio.rest import TransferTarget, TwilioCalls, TwilioRestError
from tests.fakes.twilio_rest import FakeTwilioRest
from tests.helpers import free_port

SID, TOKEN = "AC" + "1" * 32, "secret-token"


def test_a_number_is_dialled_and_a_sip_uri_goes_through_sip():
    number = ET.fromstring(TransferTarget(number="+441234567890", dial_timeout_s=20).twiml())
    assert number.find("Dial").text == "+441234567890"
    assert number.find("Dial").get("timeout") == "20"
    sip = ET.fromstring(TransferTarget(number="sip:agents@pbx.example.com").twiml())
    assert sip.find("Dial/Sip").text == "sip:agents@pbx.example.com"


def test_a_queue_is_enqueued_and_markup_in_names_is_escaped():
    root = ET.fromstring(TransferTarget(queue="card <fraud> & disputes").twiml())
    assert root.find("Enqueue").text == "card <fraud> & disputes"


@pytest.mark.parametrize("kwargs", [{}, {"number": "+1", "queue": "q"}])
def test_a_target_needs_exactly_one_destination(kwargs):
    with pytest.raises(ValueError, match="exactly one"):
        TransferTarget(**kwargs)


async def test_the_update_carries_twiml_and_basic_auth():
    async with FakeTwilioRest(SID, TOKEN) as api:
        calls = TwilioCalls(SID, TOKEN, api_url=api.url)
        twiml = TransferTarget(queue="support").twiml()
        await calls.update_twiml("CA42", twiml)
    (update,) = api.updates
    assert (update.account_sid, update.call_sid, update.twiml) == (SID, "CA42", twiml)
    assert update.authorized


async def test_a_refusal_is_an_error_with_twilios_answer():
    async with FakeTwilioRest(SID, TOKEN) as api:
        calls = TwilioCalls(SID, "wrong-token", api_url=api.url)
        with pytest.raises(TwilioRestError, match="401"):
            await calls.update_twiml("CA42", "<Response/>")


async def test_an_unreachable_or_hanging_api_is_an_error_not_a_hang():
    calls = TwilioCalls(SID, TOKEN, api_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TwilioRestError, match="unreachable"):
        await calls.update_twiml("CA42", "<Response/>")
    async with FakeTwilioRest(SID, TOKEN, hang=True) as api:
        slow = TwilioCalls(SID, TOKEN, api_url=api.url, timeout_s=0.5)
        with pytest.raises(TwilioRestError):
            await asyncio.wait_for(slow.update_twiml("CA42", "<Response/>"), 5)


def test_credentials_are_required():
    with pytest.raises(ValueError, match="account SID"):
        TwilioCalls("", TOKEN)
