"""Running partials on scripted timelines: when the turn-taker asks for one, and when not."""

from dataclasses import replace

from tests.voicebot import test_turns
from voicebot.turns import CallerResumed, Partial, Speculate, TurnEnded

#: Fixed endpointing (600 ms), speculation at 60 ms, a partial every 400 ms of speech.
CONFIG = replace(test_turns.CONFIG, early_asr_ms=60, early_asr_busy_ms=150, partial_every_ms=400)


class Timeline(test_turns.Timeline):
    """The turn-taking timeline of tests/voicebot/test_turns.py, with its partials."""

    def __init__(self, config=CONFIG):
        super().__init__(config)

    def partials(self) -> list[Partial]:
        return [a for a in self.actions if isinstance(a, Partial)]


def test_a_partial_every_interval_of_speech_while_the_caller_speaks():
    line = Timeline().feed("S" * 100 + "." * 35)  # 2 s of speech
    partials = line.partials()
    # The turn starts at frame 3 with those three frames counted: 400 ms of speech is
    # frame 20, then every 20 frames; none after the caller stops.
    assert [p.at for p in partials] == [0.4, 0.8, 1.2, 1.6, 2.0]
    assert [p.speech_ms for p in partials] == [400, 800, 1200, 1600, 2000]
    assert {p.turn for p in partials} == {1}
    kinds = [type(a).__name__ for a in line.actions]
    assert kinds[-2:] == ["Speculate", "TurnEnded"]  # endpointing is untouched


def test_partials_change_nothing_else():
    pattern = "." * 3 + "S" * 70 + "." * 10 + "S" * 40 + "." * 40
    with_partials = Timeline().feed(pattern)
    without = Timeline(replace(CONFIG, partial_every_ms=0)).feed(pattern)
    assert without.partials() == []
    assert [a for a in with_partials.actions if not isinstance(a, Partial)] == without.actions


def test_a_due_partial_waits_for_the_asr_worker_and_is_not_skipped():
    line = Timeline().feed("S" * 25, busy=True)  # 500 ms of speech, the worker busy
    assert line.partials() == []
    line.feed("S", busy=False)
    assert [(p.at, p.speech_ms) for p in line.partials()] == [(0.52, 520)]
    line.feed("S" * 19)  # the next one is 400 ms of speech after that one
    assert [p.speech_ms for p in line.partials()] == [520]
    line.feed("S")
    assert [p.speech_ms for p in line.partials()] == [520, 920]


def test_no_partial_in_a_pause_or_on_a_lone_speech_frame():
    # Due at 400 ms of speech, reached on a frame that ends a short gap: the caller may
    # be trailing off (the speculation would then queue behind the partial), so wait
    # until the last onset window (60 ms) is all speech again.
    line = Timeline().feed("S" * 19 + "." * 2 + "S")
    assert line.partials() == []
    line.feed("SS")
    assert [p.speech_ms for p in line.partials()] == [440]
    # Never in a pause, even with one overdue (the worker was busy until the caller
    # stopped): the speculation is what the pause needs, and it comes first.
    line = Timeline().feed("S" * 25, busy=True).feed("." * 5)
    assert line.partials() == [] and any(isinstance(a, Speculate) for a in line.actions)


def test_after_the_caller_resumes_partials_go_on_counting_the_turns_speech():
    line = Timeline().feed("S" * 15 + "." * 5 + "S" * 15)  # 300 ms, a pause, 300 ms more
    kinds = [type(a).__name__ for a in line.actions]
    assert kinds[:3] == ["CallerStarted", "Speculate", "CallerResumed"]
    assert isinstance(line.actions[2], CallerResumed)
    (partial,) = line.partials()
    assert partial.speech_ms == 400  # the turn's speech, across the pause


def test_no_partial_close_to_a_forced_end():
    config = replace(CONFIG, max_turn_ms=2000)
    line = Timeline(config).feed("S" * 110)  # never pauses: cut at 2 s
    assert [p.speech_ms for p in line.partials()] == [400, 800, 1200]  # not 1600: too close
    (ended,) = (a for a in line.actions if isinstance(a, TurnEnded))
    assert ended.forced


def test_each_turn_counts_its_own_speech():
    line = Timeline().feed("S" * 30 + "." * 35)  # 600 ms of speech: one partial
    line.turns.on_bot_done(line.t)  # the bot answered; listening again
    line.feed("S" * 25)
    assert [(p.turn, p.speech_ms) for p in line.partials()] == [(1, 400), (2, 400)]
