"""A FAKE chat model that replays scripted rounds, for testing the reply engine.

A real LLM cannot run here and would not say the dangerous things on cue, so this one
says exactly what the test scripts: each call to `stream` plays the next round (text
pieces, tool calls, or an exception to raise at that point). It records what it was
asked (messages and tools), how many items of each round were consumed, and whether
the engine closed the stream, so tests can see streaming and early stops happen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from models.llm import ChatChunk, ChatMessage, ToolCall, ToolSpec

Item = str | ChatChunk | ToolCall | BaseException


def pieces(text: str, size: int = 7) -> list[str]:
    """Text cut into pieces of `size` characters, mid-word, as token streams are."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def tool(name: str, arguments: str, call_id: str = "call_1") -> ToolCall:
    return ToolCall(id=call_id, name=name, arguments=arguments)


@dataclass
class Asked:
    messages: list[ChatMessage]
    tools: list[ToolSpec]
    max_tokens: int
    temperature: float


class ScriptedChatModel:
    """``ScriptedChatModel([round1_items], [round2_items], ...)``.

    ``on_item`` is called before each item is handed out (e.g. to advance a fake clock).
    """

    def __init__(self, *rounds: Sequence[Item], on_item: Callable[[], None] | None = None):
        self.rounds = [list(r) for r in rounds]
        self.on_item = on_item
        self.asked: list[Asked] = []
        self.consumed: list[int] = []
        self.closed: list[bool] = []

    def stream(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        *,
        max_tokens: int,
        temperature: float,
    ) -> Iterator[ChatChunk]:
        index = len(self.asked)
        self.asked.append(Asked(list(messages), list(tools), max_tokens, temperature))
        self.consumed.append(0)
        self.closed.append(False)
        items = self.rounds[index] if index < len(self.rounds) else []
        return self._play(index, items)

    def _play(self, index: int, items: list[Item]) -> Iterator[ChatChunk]:
        try:
            for item in items:
                if self.on_item is not None:
                    self.on_item()
                self.consumed[index] += 1
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, ToolCall):
                    yield ChatChunk(tool_call=item)
                elif isinstance(item, ChatChunk):
                    yield item
                else:
                    yield ChatChunk(text=item)
            yield ChatChunk(finish_reason="stop")
        finally:
            self.closed[index] = True


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
