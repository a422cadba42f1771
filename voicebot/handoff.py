"""Handing a caller to a person: the carrier-side transfer, from the call's point of view.

The dialogue decides *that* a caller goes to a person (`Handoff` in the decision); the
carrier's front door knows *how* (SIP REFER, a Twilio REST redirect), and sets
`CallConnection.transferer`. This module holds the settings that arm the Twilio
redirect and the one step the Call takes once the caller has heard "I'll put you
through": try the transfer with a timeout and report what happened, so the Call can
record it and, when it failed, tell the caller instead of leaving them in silence.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from telephony.connection import CallConnection, ConnectionClosed, TransferFailed
from telephony.twilio.rest import DEFAULT_API_URL, TransferTarget, TwilioCalls
from voicebot.config import Config, ConfigError

log = logging.getLogger(__name__)

#: A transfer that has not completed by then has failed (REFER or REST included).
TRANSFER_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class TransferResult:
    """How a transfer went: `ok`, or the error the caller's record keeps."""

    ok: bool
    error: str = ""


def twilio_transfer(config: Config) -> tuple[TwilioCalls | None, TransferTarget | None]:
    """The REST client and target that let Twilio calls be transferred, or (None, None).

    A target without credentials is a configuration error at start-up, not a transfer
    that fails while a caller is waiting.
    """
    twilio = config.twilio
    if not twilio.transfer_number and not twilio.transfer_queue:
        return None, None
    try:
        target = TransferTarget(number=twilio.transfer_number, queue=twilio.transfer_queue)
    except ValueError as exc:
        raise ConfigError(f"[twilio] transfer_number / transfer_queue: {exc}") from None
    sid, token = config.twilio_account_sid(), config.twilio_auth_token()
    if not sid or not token:
        raise ConfigError(
            f"[twilio] transfers need {twilio.account_sid_env} and {twilio.auth_token_env} "
            "in the environment"
        )
    return TwilioCalls(sid, token, api_url=twilio.api_url or DEFAULT_API_URL), target


async def transfer(
    conn: CallConnection, reason: str, timeout_s: float = TRANSFER_TIMEOUT_S
) -> TransferResult:
    """Ask the carrier to hand this call to a person; never raises."""
    if not conn.can_transfer:
        return TransferResult(False, f"no transfer target for {conn.carrier} calls")
    try:
        await asyncio.wait_for(conn.transfer(reason), timeout_s)
    except TimeoutError:
        return TransferResult(False, f"transfer timed out after {timeout_s:.0f} s")
    except (TransferFailed, ConnectionClosed) as exc:
        return TransferResult(False, str(exc)[:200])
    except Exception as exc:  # a carrier bug must not take the call down
        log.exception("transfer failed unexpectedly")
        return TransferResult(False, f"transfer failed: {exc!r}"[:200])
    return TransferResult(True)
