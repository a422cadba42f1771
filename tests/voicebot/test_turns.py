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

#: Fixed endpointing: these tests are about the state machine's timing, not the words.
CONFIG = TurnConfig(
    speech_start_ms=60,
    early_asr_ms=200,
    endpoint_ms=600,
    barge_in_ms=240,
    min_speech_ms=200,
    endpointing="fixed",
    partial_every_ms=0,  # running partials: tests/voicebot/test_turns_partials.py
)
#: Adaptive endpointing, the default, with its bounds spelled out.
ADAPTIVE = TurnConfig(
    speech_start_ms=60,
    early_asr_ms=150,
    min_endpoint_ms=300,
    endpoint_ms=600,
    max_endpoint_ms=1200,
    min_speech_ms=200,
    partial_every_ms=0,
)


class Timeline:
    """Feeds 20 ms frames and remembers every action with its frame time."""

    def __init__(self, config=CONFIG):
        self.turns = TurnTaker(config)
        self.t = 0.0
        self.actions = []

    def feed(self, pattern, *, busy=False):
        """pattern: a string of 'S' (speech) and '.' (silence), one char per 20 ms frame;
        `busy`: the ASR worker is computing during these frames."""
        for char in pattern:
            self.t = round(self.t + 0.02, 3)
            self.turns.asr_busy = busy
            for action in self.turns.on_frame(self.t, char == "S"):
                self.actions.append(action)
        return self

    def kinds(self):
        return [type(a).__name__ for a in self.actions]

    def hear(self, text, after_ms=0):
        """The speculative transcript arrives `after_ms` after the latest frame."""
        at = round(self.t + after_ms / 1000, 3)
        self.actions.extend(self.turns.on_transcript(self.turns.turn, at, text))
        return self

    def ended(self):
        return [a for a in self.actions if isinstance(a, TurnEnded)]


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
    config = TurnConfig(max_turn_ms=2000, endpointing="fixed")
    line = Timeline(config).feed("S" * 150)
    ended = [a for a in line.actions if isinstance(a, TurnEnded)]
    assert len(ended) == 1 and ended[0].forced


def test_no_speculation_for_too_little_speech():
    line = Timeline().feed("SSSSS" + "." * 40)
    assert not any(isinstance(a, Speculate) for a in line.actions)
    assert isinstance(line.actions[-1], TurnDiscarded)


# ------------------------------------------------------------ adaptive endpointing


def test_no_cut_off_on_a_pause_after_and():
    # "I want to check my balance and ..." 900 ms pause ... "my savings".
    line = Timeline(ADAPTIVE).feed("S" * 50 + "." * 8)  # speculation starts at 160 ms
    assert line.kinds()[-1] == "Speculate"
    line.hear("I want to check my balance and").feed("." * 37)  # 900 ms of silence
    assert line.ended() == []  # a fixed 600 ms endpoint would have answered here
    line.feed("S" * 30)
    assert "CallerResumed" in line.kinds()
    assert line.turns.state == TurnState.CALLER_SPEAKING and line.turns.turn == 1


def test_after_a_trailing_and_the_turn_still_ends_at_the_maximum():
    line = Timeline(ADAPTIVE).feed("S" * 50 + "." * 8).hear("so I was wondering if").feed("." * 60)
    (ended,) = line.ended()
    assert round(ended.at - ended.speech_end, 3) == 1.2
    assert ended.endpoint == "incomplete" and ended.endpoint_ms == 1200


def test_a_complete_question_is_answered_sooner():
    line = Timeline(ADAPTIVE).feed("S" * 50 + "." * 8).hear("How do I close my account?")
    line.feed("." * 10)
    (ended,) = line.ended()
    assert round(ended.at - ended.speech_end, 3) == 0.3  # min_endpoint_ms, not 600
    assert ended.endpoint == "complete"


def test_a_late_transcript_of_a_complete_turn_ends_it_at_once():
    # Whisper took 500 ms: the 300 ms endpoint has passed, so the turn ends on arrival.
    line = Timeline(ADAPTIVE).feed("S" * 50 + "." * 32)
    assert line.ended() == []  # waiting for the words, up to max_endpoint_ms
    line.hear("Please freeze my card.", after_ms=5)
    (ended,) = line.ended()
    # 640 ms of silence is past even a statement's 450 ms endpoint.
    assert ended.at == round(line.t + 0.005, 3) and ended.endpoint == "statement"


def test_digits_being_read_out_wait_longer():
    line = Timeline(ADAPTIVE).feed("S" * 50 + "." * 8).hear("My account number is 4 5 6 7")
    line.feed("." * 40)  # 960 ms: the next digit group may still come
    assert line.ended() == []
    line.feed("." * 20)
    assert line.ended()[0].endpoint == "number"


def test_without_a_transcript_the_wait_is_bounded():
    line = Timeline(ADAPTIVE).feed("S" * 50 + "." * 70)  # ASR never answers
    (ended,) = line.ended()
    assert round(ended.at - ended.speech_end, 3) == 1.2 and ended.endpoint == "pending"


def test_a_stale_transcript_changes_nothing():
    line = Timeline(ADAPTIVE).feed("S" * 50 + "." * 8 + "S" * 10)  # spoke through the pause
    line.hear("Please freeze my card.")
    line.feed("." * 20)
    assert line.ended() == []  # the new pause has no words yet: 400 ms is not enough
    line = Timeline(ADAPTIVE).feed("S" * 50 + "." * 70)
    before = list(line.actions)
    assert line.hear("Thanks.").actions == before  # the turn is over already


def test_fixed_endpointing_ignores_the_words():
    line = Timeline(CONFIG).feed("S" * 50 + "." * 11).hear("How do I close my account?")
    line.feed("." * 20)
    (ended,) = line.ended()
    assert round(ended.at - ended.speech_end, 3) == 0.6 and ended.endpoint == "fixed"


def test_speculation_waits_longer_while_the_asr_worker_is_busy():
    early = TurnConfig(early_asr_ms=60, early_asr_busy_ms=200, endpointing="fixed")
    idle = Timeline(early).feed("S" * 30 + "." * 8)
    busy = Timeline(early)
    busy.feed("S" * 30 + "." * 8, busy=True)  # 160 ms of silence: enough when idle, not busy
    assert [a.at for a in idle.actions if isinstance(a, Speculate)] == [round(0.6 + 0.06, 3)]
    assert [a for a in busy.actions if isinstance(a, Speculate)] == []
    busy.feed(".")  # the worker came free: the pause is already long enough
    assert [a.at for a in busy.actions if isinstance(a, Speculate)] == [round(0.6 + 0.18, 3)]
