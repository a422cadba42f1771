"""Turn-taking on scripted timelines of VAD decisions (no audio, no clock)."""

from voicebot.config import TurnConfig
from voicebot.turns import (
    BargeIn,
    CallerResumed,
    CallerStarted,
    Speculate,
    TurnDiscarded,
    TurnEnded,
    TurnState,
    TurnTaker,
)

CONFIG = TurnConfig(
    speech_start_ms=60, early_asr_ms=200, endpoint_ms=600, barge_in_ms=240, min_speech_ms=200
)


class Timeline:
    """Feeds 20 ms frames and remembers every action with its frame time."""

    def __init__(self, config=CONFIG):
        self.turns = TurnTaker(config)
        self.t = 0.0
        self.actions = []

    def feed(self, pattern):
        """pattern: a string of 'S' (speech) and '.' (silence), one char per 20 ms frame."""
        for char in pattern:
            self.t = round(self.t + 0.02, 3)
            for action in self.turns.on_frame(self.t, char == "S"):
                self.actions.append(action)
        return self

    def kinds(self):
        return [type(a).__name__ for a in self.actions]


def test_a_turn_is_speculated_then_ended_after_the_endpoint_silence():
    line = Timeline().feed("." * 5 + "S" * 50 + "." * 35)
    assert line.kinds() == ["CallerStarted", "Speculate", "TurnEnded"]
    started, speculate, ended = line.actions
    assert started.at == 0.16  # three speech frames in
    assert speculate.at == round(1.1 + 0.2, 3)
    assert ended.at == round(1.1 + 0.6, 3)
    assert ended.speech_end == 1.1
    assert ended.speech_ms >= 1000
    assert line.turns.state == TurnState.THINKING


def test_a_pause_shorter_than_the_endpoint_does_not_end_the_turn():
    line = Timeline().feed("S" * 30 + "." * 25 + "S" * 30 + "." * 31)
    kinds = line.kinds()
    assert kinds == ["CallerStarted", "Speculate", "CallerResumed", "Speculate", "TurnEnded"]
    assert line.actions[-1].speech_end == round(0.02 * 85, 3)


def test_caller_going_on_while_the_bot_thinks_continues_the_same_turn():
    line = Timeline().feed("S" * 30 + "." * 30)
    assert isinstance(line.actions[-1], TurnEnded)
    line.feed("..SSS")
    assert isinstance(line.actions[-1], CallerResumed)
    assert line.actions[-1].turn == 1
    assert line.turns.state == TurnState.CALLER_SPEAKING
    line.feed("S" * 20 + "." * 30)
    assert isinstance(line.actions[-1], TurnEnded) and line.actions[-1].turn == 1


def test_short_noise_is_discarded_not_answered():
    line = Timeline().feed("SSSS" + "." * 40)
    assert line.kinds() == ["CallerStarted", "TurnDiscarded"]
    assert line.turns.state == TurnState.LISTENING


def test_single_speech_frames_do_not_start_a_turn():
    line = Timeline().feed(".S..S...S.." * 10)
    assert line.actions == []


def test_barge_in_needs_sustained_speech_while_the_bot_speaks():
    line = Timeline().feed("S" * 30 + "." * 30)
    line.turns.on_bot_audio(line.t)
    assert line.turns.state == TurnState.BOT_SPEAKING
    line.feed("SSS...SS..SSS....")  # coughs and clicks: no barge-in
    assert not any(isinstance(a, BargeIn) for a in line.actions)
    line.feed("S" * 12)
    assert isinstance(line.actions[-2], BargeIn)
    assert isinstance(line.actions[-1], CallerStarted)
    assert line.actions[-1].turn == 2
    assert line.turns.state == TurnState.CALLER_SPEAKING


def test_bot_done_returns_to_listening_and_next_turn_numbers_up():
    line = Timeline().feed("S" * 30 + "." * 30)
    line.turns.on_bot_audio(line.t)
    line.turns.on_bot_done(line.t + 2)
    assert line.turns.state == TurnState.LISTENING
    line.feed("S" * 20)
    assert line.actions[-1] == CallerStarted(2, line.actions[-1].at)


def test_a_turn_that_never_pauses_is_cut_at_the_maximum():
    config = TurnConfig(max_turn_ms=2000)
    line = Timeline(config).feed("S" * 150)
    ended = [a for a in line.actions if isinstance(a, TurnEnded)]
    assert len(ended) == 1 and ended[0].forced


def test_no_speculation_for_too_little_speech():
    line = Timeline().feed("SSSSS" + "." * 40)
    assert not any(isinstance(a, Speculate) for a in line.actions)
    assert isinstance(line.actions[-1], TurnDiscarded)
