"""Clause-first speech: where a first sentence splits, the order audio and marks go out,
and what the caller heard when they cut in between a clause and the rest of it."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace

import numpy as np
import pytest

from telephony.connection import CallConnection
from telephony.twilio.codec import TwilioCodec
from telephony.twilio.peer import BotClear, BotMark, BotMedia, TwilioPeer
from voicebot.call import Call
from voicebot.dialogue.core import Decision, Outcome
from voicebot.metrics import Metrics
from voicebot.reply import (
    CLAUSE_PAUSE_S,
    Reply,
    SpeechUnit,
    clause_pause,
    speech_parts,
    speech_units,
    split_first_clause,
)
from voicebot.speech_cache import SpeechCache
from voicebot.workers import ModelWorkers

CLAUSE = "To freeze your card straight away,"
REST = "open the app and tap Cards."
LONG = f"{CLAUSE} {REST} Then choose Freeze."


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        (LONG.split(" Then")[0], (CLAUSE, REST)),
        # The earliest boundary with enough words on both sides, not simply the first.
        ("Yes, your transfer of 40 pounds has gone through today.", None),
        (
            "Yes, as of this morning, your balance is 1,000 pounds.",
            ("Yes, as of this morning,", "your balance is 1,000 pounds."),
        ),
        # Never inside a number, an amount or a time.
        ("Your balance is 1,250.75 pounds after the fee of £2.50 today.", None),
        ("We open at 9:30 on weekdays and at 10:00 on Saturdays.", None),
        # Digits read in groups stay together.
        ("Your reference is 12, 34, 56 and it is valid for a week.", None),
        # Spaced dashes are clause boundaries; a hyphen inside a word is not.
        (
            "Your card is frozen now — nobody can use it until you unfreeze it.",
            ("Your card is frozen now —", "nobody can use it until you unfreeze it."),
        ),
        ("Your six-month statement is ready to download in the app now.", None),
        # A one- or two-word clause, or a one-word rest, is never spoken on its own.
        ("Sure, I can freeze your card for you right now.", None),
        ("Your card ending in four two is frozen, okay.", None),
    ],
)
def test_split_first_clause(sentence, expected):
    assert split_first_clause(sentence) == expected


def test_only_a_long_first_sentence_is_split_and_the_parts_join_back():
    sentences = [LONG, "Anything else, while you're here, at all?"]
    units = speech_units(sentences)
    assert units == (
        SpeechUnit(CLAUSE, ends_sentence=False),
        SpeechUnit(REST),
        SpeechUnit("Then choose Freeze."),
        SpeechUnit("Anything else, while you're here, at all?"),
    )
    assert " ".join(speech_parts(sentences)) == " ".join(sentences)
    assert speech_units(["Sure, I can do that."]) == (SpeechUnit("Sure, I can do that."),)
    assert all(len(u.text.split()) > 1 for u in speech_units([LONG]))


def test_marks_are_per_sentence_and_a_barge_in_mid_sentence_hears_none_of_it():
    def spoken(cut_after: int | None) -> str:
        reply = Reply("r1", turn=1)
        marks = [reply.add_unit(unit) for unit in speech_units([LONG])]
        assert marks == [None, 0, 1]  # no mark between the clause and the rest
        assert reply.sentences == (f"{CLAUSE} {REST}", "Then choose Freeze.")
        for mark in [m for m in marks if m is not None][: cut_after or 0]:
            reply.on_mark(str(mark))
        reply.cleared = True  # the barge-in: later marks do not count
        for mark in marks:
            if mark is not None:
                reply.on_mark(str(mark))
        return reply.heard_text()

    assert spoken(None) == ""  # cut in after the first clause: the sentence was not heard
    assert spoken(1) == f"{CLAUSE} {REST}"
    assert spoken(2) == f"{CLAUSE} {REST} Then choose Freeze."


def test_a_first_clause_gets_a_comma_pause_and_nothing_is_cut():
    rate = 16_000
    voice = np.concatenate([np.full(800, 3000, np.int16), np.zeros(int(0.1 * rate), np.int16)])
    padded = clause_pause(voice, rate)
    assert np.array_equal(padded[: voice.size], voice)
    assert abs((padded.size - 800) / rate - CLAUSE_PAUSE_S) < 0.002
    long_tail = np.concatenate([voice, np.zeros(rate, np.int16)])
    assert clause_pause(long_tail, rate).size == long_tail.size


class GatedVoice:
    """A fake voice around the real Piper one: it logs what it is asked to say and
    holds back every unit but the first clause until the caller has received audio
    (a gate the test opens), so a bot that waited for the whole sentence deadlocks and
    shows up as a closed gate, with no timing involved."""

    def __init__(self, real) -> None:
        self.real = real
        self.asked: list[str] = []
        self.gate = threading.Event()
        self.gate_was_open: list[bool] = []

    def synthesize(self, text: str):
        self.asked.append(text)
        if text != CLAUSE:
            self.gate_was_open.append(self.gate.wait(5.0))
        return self.real.synthesize(text)


class LongGreeting:
    """The real dialogue core, but its greeting is `LONG` (a split first sentence)."""

    def __init__(self, real) -> None:
        self._real = real

    def greeting(self, state):
        return Decision((LONG,), Outcome.GREETING, state)

    def __getattr__(self, name: str):
        return getattr(self._real, name)


async def greet(services, tmp_path, *, key_during_clause: bool):
    """One Twilio call on a real Call, codec and connection, with the caller's side
    played by Twilio's sans-I/O peer in memory; returns the peer's log and the record."""
    voice = GatedVoice(services.workers.synthesizer)
    workers = ModelWorkers(None, voice, None, speech_cache=SpeechCache(None))
    config = replace(
        services.config, server=replace(services.config.server, data_dir=str(tmp_path))
    )
    bot = replace(
        services,
        config=config,
        workers=workers,
        dialogue=LongGreeting(services.dialogue),
        metrics=Metrics(),
        store=None,
    )
    codec, peer, log = TwilioCodec(), TwilioPeer("CA1", "MZ1", "AC1"), []
    done = asyncio.Event()

    def carrier(message: str) -> None:
        for event in codec.receive(message):
            conn.push(event)

    frames = 0

    async def send(message) -> None:
        nonlocal frames
        got = peer.receive(message)
        if isinstance(got, BotMedia):
            frames += 1
            if frames == 1:
                log.append("audio")
                if not key_during_clause:
                    voice.gate.set()
            elif frames == 5 and key_during_clause:  # 100 ms of the clause sent
                carrier(peer.dtmf("5"))  # the caller cuts in: a key press is a barge-in
        elif isinstance(got, BotMark):
            log.append(got.name)
            carrier(peer.mark(got.name))  # played at once, as far as the bot knows
            if got.name == "r1.end":
                done.set()
        elif isinstance(got, BotClear):
            log.append("clear")
            voice.gate.set()  # the rest of the sentence is only made now: too late
            done.set()

    async def close(code: int, reason: str) -> None:
        return None

    conn = CallConnection(codec, send, close)
    carrier(peer.connected())
    carrier(peer.start())
    async with Call(conn, bot) as call:
        task = asyncio.create_task(call.run())
        await asyncio.wait_for(done.wait(), 60)
        carrier(peer.stop())
        await asyncio.wait_for(task, 30)
    workers.close()
    return voice, log, call.record.prompts[0]


async def test_first_clause_audio_goes_out_before_the_rest_is_synthesised(services, tmp_path):
    voice, log, greeting = await greet(services, tmp_path, key_during_clause=False)
    assert voice.asked == [CLAUSE, REST, "Then choose Freeze."]
    assert voice.gate_was_open == [True, True]  # the rest waited for audio to reach the caller
    assert log == ["audio", "r1.0", "r1.1", "r1.end"]  # marks per sentence
    assert greeting.heard_text == LONG and not greeting.barge_in


async def test_a_barge_in_between_the_clause_and_the_rest_hears_nothing_of_it(services, tmp_path):
    _, log, greeting = await greet(services, tmp_path, key_during_clause=True)
    assert log[:2] == ["audio", "clear"] and "r1.0" not in log, log
    assert greeting.barge_in and greeting.heard_text == ""
