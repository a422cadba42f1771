"""The chat-model capability: messages in, a stream of text deltas and tool calls out.

One Protocol for every LLM backend (an OpenAI-compatible HTTP endpoint, a local
transformers model, a scripted fake in tests), so the reply engine that grounds and
guards the model's words never knows which one it talks to. `stream` is blocking and
is consumed from a worker thread: a backend never needs to know about asyncio. A
consumer may stop early (a guardrail tripped, the caller barged in) by closing the
iterator; backends release their connection or stop generating when that happens.

The shapes follow the OpenAI Chat Completions conventions (roles ``system``, ``user``,
``assistant``, ``tool``; tool arguments as a JSON string) because every server we
target (vLLM, llama.cpp, Ollama) and the transformers chat templates speak them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class LlmError(RuntimeError):
    """A chat model failed: unreachable, an HTTP error, a bad response, a timeout."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One complete call the model asks for; ``arguments`` is a JSON object as text."""

    id: str
    name: str
    arguments: str = "{}"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a conversation.

    ``tool_calls`` is set on an assistant message that asked for tools; a ``tool``
    message answers one of them by ``tool_call_id`` (and ``name``, which some chat
    templates print).
    """

    role: str
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call; ``parameters`` is a JSON Schema object."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )

    def as_openai(self) -> dict[str, Any]:
        """The ``tools`` entry both the OpenAI API and transformers chat templates take."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }


@dataclass(frozen=True, slots=True)
class ChatChunk:
    """A piece of the model's answer: a text delta, or one completed tool call.

    Tool calls arrive only once complete (backends assemble the fragments), so a
    consumer never sees half a JSON argument. ``finish_reason`` is set on the last
    chunk when the backend reports one (``stop``, ``length``, ``tool_calls``).
    """

    text: str = ""
    tool_call: ToolCall | None = None
    finish_reason: str | None = None


class ChatModel(Protocol):
    """Streams one assistant turn for a conversation, optionally offering tools."""

    def stream(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        *,
        max_tokens: int,
        temperature: float,
    ) -> Iterator[ChatChunk]: ...


def message_payload(message: ChatMessage, *, structured: bool = False) -> dict[str, Any]:
    """A message as the OpenAI wire format has it, or (``structured``) as transformers
    chat templates expect it: tool-call arguments as an object instead of a JSON string."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": _parsed(call.arguments) if structured else call.arguments,
                },
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        out["name"] = message.name
    return out


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
