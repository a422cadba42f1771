"""Turn-taking: who has the floor, decided from VAD frames and playout progress.

A small state machine (listening, caller speaking, thinking, bot speaking) that does no
I/O: it takes one VAD decision per 20 ms frame, plus "the bot's audio started" and
"the bot finished", and returns actions for the Call to carry out. Time is passed in,
so every rule is unit-testable with made-up timelines.

Rules that protect the caller:
- A turn ends only after enough silence. At `early_asr_ms` the Call starts transcribing
  speculatively (`early_asr_busy_ms` while the ASR worker is busy, see `asr_busy`; and
  throws that away if the caller goes on); with adaptive endpointing
  the words of that transcript, passed back through `on_transcript`, set how much
  silence is enough (`voicebot.endpointing`): `min_endpoint_ms` after a complete
  question, `max_endpoint_ms` after a trailing "and" or half an account number, and
  `max_endpoint_ms` at most while the transcript is still being computed. With fixed
  endpointing it is always `endpoint_ms`.
- If the caller speaks again while the bot is still thinking (nothing audible yet), the
  turn simply continues: the pause was not the end, and the caller is never cut off.
- Once the bot is audible, sustained caller speech (`barge_in_ms`) interrupts it.
- Very short bursts (`min_speech_ms`) are noise, not turns.
- While the caller speaks, every `partial_every_ms` of their speech the Call may
  transcribe the turn so far (`Partial`): a running transcript for QA and integrators.
  It never answers and never moves the endpoint, and it is only asked for when it
  cannot hold up the turn's real transcript: the ASR worker is idle, the caller is in
  mid-speech (not in a pause, where the speculation is due within `early_asr_ms`), and
  the forced end of a long turn is not near.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from voicebot.config import TurnConfig
from voicebot.endpointing import Endpoint, EndpointPolicy

FRAME_MS = 20


class TurnState(StrEnum):
    """Who has the floor."""

    LISTENING = "listening"
    CALLER_SPEAKING = "caller_speaking"
    THINKING = "thinking"
    BOT_SPEAKING = "bot_speaking"


@dataclass(frozen=True, slots=True)
class CallerStarted:
    """A new caller turn began (`preroll` frames before `at` belong to it)."""

    turn: int
    at: float


@dataclass(frozen=True, slots=True)
class Speculate:
    """The caller paused: transcribe what we have now, but do not answer yet.

    `silence_ms` is how long the pause had lasted: more than `early_asr_ms` means the
    ASR worker was busy when it was due (QA reads it to see what held a turn up).
    """

    turn: int
    at: float
    silence_ms: int = 0


@dataclass(frozen=True, slots=True)
class Partial:
    """The caller is speaking: transcribe the turn so far, to show it, never to answer.

    `speech_ms` is how much of the turn was speech when it was asked for.
    """

    turn: int
    at: float
    speech_ms: int


@dataclass(frozen=True, slots=True)
class CallerResumed:
    """The caller went on speaking: any speculative or unheard reply is void."""

    turn: int
    at: float


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """The caller has finished; `speech_end` is when the last speech frame ended.

    `endpoint_ms` is the silence that was required and `endpoint` why (the words'
    completion class, see `voicebot.endpointing.Completion`), for the call's log.
    """

    turn: int
    at: float
    speech_end: float
    speech_ms: int
    forced: bool = False
    endpoint_ms: int = 0
    endpoint: str = ""


@dataclass(frozen=True, slots=True)
class TurnDiscarded:
    """The 'turn' was too short to be speech (a click, a cough, line noise)."""

    turn: int
    at: float


@dataclass(frozen=True, slots=True)
class BargeIn:
    """The caller is talking over the bot: stop speaking now."""

    turn: int
    at: float


Action = CallerStarted | Partial | Speculate | CallerResumed | TurnEnded | TurnDiscarded | BargeIn


class TurnTaker:
    """The turn-taking state machine for one call."""

    def __init__(self, config: TurnConfig) -> None:
        self.config = config
        self.policy = EndpointPolicy(config)
        self.state = TurnState.LISTENING
        self.turn = 0
        self._onset_frames = max(1, config.speech_start_ms // FRAME_MS)
        self._barge_frames = max(1, config.barge_in_ms // FRAME_MS)
        self._recent: deque[bool] = deque(maxlen=max(self._barge_frames, self._onset_frames + 2))
        self._silence_frames = 0
        self._speech_frames = 0
        self._turn_frames = 0
        self._speech_end = 0.0
        self._speculating = False
        self._heard: str | None = None  # the transcript of the current pause
        self._forced = False
        self._next_partial_ms = 0  # the turn's speech after which the next partial is due
        #: Set by the Call before each frame: the ASR worker is computing something, so a
        #: speculation now would wait (and cost other callers CPU); speculate later.
        self.asr_busy = False

    # ------------------------------------------------------------ detectors

    def _onset(self) -> bool:
        window = list(self._recent)[-(self._onset_frames + 2) :]
        return sum(window) >= self._onset_frames and window[-1]

    def _sustained(self) -> bool:
        if len(self._recent) < self._barge_frames:
            return False
        window = list(self._recent)[-self._barge_frames :]
        return sum(window) >= 0.8 * self._barge_frames and window[-1]

    def _start_turn(self, at: float) -> CallerStarted:
        self.turn += 1
        self.state = TurnState.CALLER_SPEAKING
        self._silence_frames = 0
        self._speech_frames = sum(self._recent)
        self._turn_frames = len(self._recent)
        self._speech_end = at
        self._speculating = False
        self._heard = None
        self._forced = False
        self._next_partial_ms = self.config.partial_every_ms
        return CallerStarted(self.turn, at)

    def endpoint(self) -> Endpoint:
        """The silence that ends the current pause, given what is known of its words."""
        if self._speculating:
            return self.policy.for_text(self._heard)
        return self.policy.without_transcript()

    # ---------------------------------------------------------------- inputs

    def on_frame(self, at: float, is_speech: bool) -> list[Action]:
        """One VAD decision for the 20 ms frame that ended at `at` (seconds)."""
        self._recent.append(is_speech)
        state = self.state
        if state == TurnState.LISTENING:
            return [self._start_turn(at)] if self._onset() else []
        if state == TurnState.BOT_SPEAKING:
            if self._sustained():
                return [BargeIn(self.turn + 1, at), self._start_turn(at)]
            return []
        if state == TurnState.THINKING:
            # After a forced end (a turn that never paused) the bot answers regardless.
            if self._onset() and not self._forced:
                self.state = TurnState.CALLER_SPEAKING
                self._silence_frames = 0
                self._speech_end = at
                self._heard = None
                return [CallerResumed(self.turn, at)]
            return []
        return self._caller_frame(at, is_speech)

    def _caller_frame(self, at: float, is_speech: bool) -> list[Action]:
        config = self.config
        self._turn_frames += 1
        actions: list[Action] = []
        if is_speech:
            self._speech_frames += 1
            self._silence_frames = 0
            self._speech_end = at
            if self._speculating:
                self._speculating = False
                self._heard = None
                actions.append(CallerResumed(self.turn, at))
        else:
            self._silence_frames += 1
        silence_ms = self._silence_frames * FRAME_MS
        speech_ms = self._speech_frames * FRAME_MS
        forced = self._turn_frames * FRAME_MS >= config.max_turn_ms
        if silence_ms >= self.endpoint().ms or forced:
            actions.append(self._end(at, forced))
        elif (
            silence_ms >= (config.early_asr_busy_ms if self.asr_busy else config.early_asr_ms)
            and not self._speculating
            and speech_ms >= config.min_speech_ms
        ):
            self._speculating = True
            actions.append(Speculate(self.turn, at, silence_ms))
        elif is_speech and self._partial_due(speech_ms):
            self._next_partial_ms = speech_ms + config.partial_every_ms
            actions.append(Partial(self.turn, at, speech_ms))
        return actions

    def _partial_due(self, speech_ms: int) -> bool:
        """Is a running partial due, and can it not hold up the turn's real transcript?

        One ASR worker serves the call: a partial still computing when the caller stops
        makes the speculation wait (`early_asr_busy_ms`, then behind the partial's
        thread, which cannot be stopped). So a partial is only asked for when the worker
        is idle (a due one waits for that rather than being skipped), on a frame whose
        recent past is all speech (a caller in mid-word, not trailing off in a pause
        that the speculation will take in a few frames), and not within one interval of
        the forced end of a turn that never pauses.
        """
        every = self.config.partial_every_ms
        if every <= 0 or self.asr_busy or speech_ms < self._next_partial_ms:
            return False
        recent = list(self._recent)[-self._onset_frames :]
        if len(recent) < self._onset_frames or not all(recent):
            return False
        return (self._turn_frames * FRAME_MS) + every < self.config.max_turn_ms

    def _end(self, at: float, forced: bool) -> Action:
        endpoint = self.endpoint()
        speech_ms = self._speech_frames * FRAME_MS
        self._speculating = False
        self._heard = None
        self._forced = forced
        if speech_ms < self.config.min_speech_ms and not forced:
            self.state = TurnState.LISTENING
            return TurnDiscarded(self.turn, at)
        self.state = TurnState.THINKING
        return TurnEnded(
            self.turn,
            at,
            self._speech_end,
            speech_ms,
            forced,
            endpoint_ms=endpoint.ms,
            endpoint=endpoint.reason.value,
        )

    def on_transcript(self, turn: int, at: float, text: str) -> list[Action]:
        """The speculative transcript of the caller's current pause is `text`.

        Sets how long this pause must last; if it has lasted that long already, the
        turn ends now. A transcript of a pause the caller has since spoken through, or
        of a turn that is over, changes nothing.
        """
        if self.state != TurnState.CALLER_SPEAKING or turn != self.turn or not self._speculating:
            return []
        self._heard = text
        if self._silence_frames * FRAME_MS >= self.endpoint().ms:
            return [self._end(at, forced=False)]
        return []

    def on_bot_audio(self, at: float) -> None:
        """The bot's first audio of a reply or prompt went out."""
        if self.state in (TurnState.THINKING, TurnState.LISTENING):
            self.state = TurnState.BOT_SPEAKING

    def on_bot_done(self, at: float) -> None:
        """The bot finished (or abandoned) what it was saying, or had nothing to say."""
        if self.state in (TurnState.BOT_SPEAKING, TurnState.THINKING):
            self.state = TurnState.LISTENING
            self._recent.clear()
