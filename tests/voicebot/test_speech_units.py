"""Spoken units of a reply, what was heard of it, and the speech cache."""

from __future__ import annotations

import asyncio

import numpy as np

from voicebot.reply import Reply, mark_name, parse_mark, speech_parts
from voicebot.speech_cache import SpeechCache


def test_speech_parts_split_sentences_and_a_long_first_clause():
    parts = speech_parts(
        ["To freeze your card, open the app and tap Cards. Then choose Freeze.", "Anything else?"]
    )
    assert parts == (
        "To freeze your card,",
        "open the app and tap Cards.",
        "Then choose Freeze.",
        "Anything else?",
    )
    assert (
        " ".join(parts)
        == "To freeze your card, open the app and tap Cards. Then choose Freeze. Anything else?"
    )
    assert speech_parts(["Short one, really."]) == ("Short one, really.",)
    assert speech_parts([]) == ()


def test_heard_text_is_the_prefix_of_parts_whose_marks_came_back():
    reply = Reply("r7", turn=1)
    reply.sentences = ("One.", "Two.", "Three.")
    for name in ("r7.0", "r7.2"):
        reply.on_mark(parse_mark(name)[1])
    assert reply.heard_text() == "One."
    reply.on_mark("1")
    assert reply.heard_text() == "One. Two. Three."
    assert not reply.finished.is_set()
    reply.on_mark("end")
    assert reply.finished.is_set()
    assert parse_mark(mark_name("r12", "end")) == ("r12", "end")


def test_marks_after_a_clear_do_not_count_as_heard():
    reply = Reply("r1", turn=1)
    reply.sentences = ("One.", "Two.")
    reply.on_mark("0")
    reply.cleared = True
    reply.on_mark("1")
    assert reply.heard_text() == "One."


def test_cache_pins_to_disk_and_reloads_after_a_restart(tmp_path):
    audio = np.arange(1000, dtype=np.int16)
    first = SpeechCache(tmp_path / "voice", lru_size=2)
    first.pin("Hello.", audio)
    first.save("Hello.", audio)
    again = SpeechCache(tmp_path / "voice", lru_size=2)
    assert again.get("Hello.") is None  # memory starts empty; disk is read on request
    assert np.array_equal(again.load("Hello."), audio)
    assert again.is_pinned("Hello.") and np.array_equal(again.get("Hello."), audio)


def test_lru_keeps_only_the_most_recent_one_off_phrases():
    cache = SpeechCache(None, lru_size=2)
    for text in ("a", "b", "c"):
        cache.remember(text, np.zeros(10, np.int16))
    assert cache.get("a") is None and cache.get("c") is not None
    cache.pin("p", np.ones(5, np.int16))
    for text in ("d", "e", "f"):
        cache.remember(text, np.zeros(10, np.int16))
    assert cache.get("p") is not None and len(cache) == 3


def test_a_corrupt_cache_file_is_ignored(tmp_path):
    cache = SpeechCache(tmp_path, lru_size=2)
    cache.save("Hi.", np.zeros(4, np.int16))
    next(tmp_path.glob("*.npy")).write_bytes(b"not numpy")
    assert cache.load("Hi.") is None


async def test_prepare_speech_waits_for_no_calls_and_synthesises_each_phrase_once(
    tmp_path, services
):
    from voicebot.workers import ModelWorkers

    class CountingVoice:
        """The real Piper voice, counting what it is asked to say."""

        def __init__(self, real):
            self.real, self.calls = real, []

        def synthesize(self, text):
            self.calls.append(text)
            return self.real.synthesize(text)

    voice = CountingVoice(services.workers.synthesizer)
    workers = ModelWorkers(None, voice, None, speech_cache=SpeechCache(tmp_path))
    idle = asyncio.Event()
    task = asyncio.create_task(workers.prepare_speech(["Hello.", "Goodbye.", "Hello."], idle))
    await asyncio.sleep(0.05)
    assert voice.calls == []  # a call is in progress: nothing is synthesised
    idle.set()
    assert await task == 2
    assert voice.calls == ["Hello.", "Goodbye."]
    assert (await workers.synthesize("Goodbye.")).ms == 0.0
    workers.close()


async def test_a_template_phrase_said_on_demand_is_kept_on_disk_for_the_next_run(
    tmp_path, services
):
    from voicebot.workers import ModelWorkers

    said: list[str] = []

    class CountingVoice:
        def synthesize(self, text):
            said.append(text)
            return services.workers.synthesizer.synthesize(text)

    for _ in range(2):  # a second server (or replay worker) starts with an empty memory
        cache = SpeechCache(tmp_path / "voice")
        cache.keep = frozenset({"Your card is frozen."})
        workers = ModelWorkers(None, CountingVoice(), None, speech_cache=cache)
        await workers.synthesize("Your card is frozen.")
        await workers.synthesize("A one-off sentence.")
        for _ in range(100):  # the disk write happens off the reply's path
            if list((tmp_path / "voice").glob("*.npy")):
                break
            await asyncio.sleep(0.02)
        workers.close()
    assert said == ["Your card is frozen.", "A one-off sentence.", "A one-off sentence."]
    assert len(list((tmp_path / "voice").glob("*.npy"))) == 1
