"""A chat model from a local transformers causal-LM directory, streamed token by token.

For machines that run the model themselves (no server). The model's own chat template
renders the conversation and the tool list (``apply_chat_template(..., tools=...,
add_generation_prompt=True)``); `model.generate` runs in a thread and a
`TextIteratorStreamer` hands text back as it is decoded, so the reply engine can speak
the first sentence while the rest is still being generated.

Local instruct models (Qwen 2.5/3, Hermes, and others trained on the same convention)
write a tool call as ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` in
the text; `ToolCallParser` lifts those blocks out of the stream, so they are never
spoken, and hands them on as `ToolCall`s like the HTTP backend does.

torch and transformers are imported inside the class: importing this module costs
nothing.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from models.llm import ChatChunk, ChatMessage, LlmError, ToolCall, ToolSpec, message_payload

log = logging.getLogger(__name__)

OPEN = "<tool_call>"
CLOSE = "</tool_call>"


class ToolCallParser:
    """Splits a text stream into spoken text and ``<tool_call>`` blocks.

    Text that could be the start of an opening tag (``"<tool"``) is held back until
    the next piece tells which it is; text inside a block is never released as text.
    A block whose JSON is broken is dropped with a warning: it is not speech either.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._inside = False
        self._count = 0

    def feed(self, text: str) -> list[ChatChunk]:
        """Chunks that are certain after `text` arrived."""
        self._buffer += text
        out: list[ChatChunk] = []
        while True:
            if self._inside:
                end = self._buffer.find(CLOSE)
                if end < 0:
                    return out
                out.extend(self._call(self._buffer[:end]))
                self._buffer = self._buffer[end + len(CLOSE) :]
                self._inside = False
                continue
            start = self._buffer.find(OPEN)
            if start >= 0:
                out.extend(_text(self._buffer[:start]))
                self._buffer = self._buffer[start + len(OPEN) :]
                self._inside = True
                continue
            keep = _partial_tag(self._buffer)
            out.extend(_text(self._buffer[: len(self._buffer) - keep]))
            self._buffer = self._buffer[len(self._buffer) - keep :]
            return out

    def finish(self) -> list[ChatChunk]:
        """The rest at end of stream; an unclosed block (cut by max_tokens) is tried too."""
        rest, inside = self._buffer, self._inside
        self._buffer, self._inside = "", False
        return self._call(rest) if inside else _text(rest)

    def _call(self, block: str) -> list[ChatChunk]:
        try:
            obj = json.loads(block.strip())
        except ValueError:
            obj = None
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            log.warning("local model wrote an unreadable tool call; dropped")
            return []
        arguments = obj.get("arguments", obj.get("parameters", {}))
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        call = ToolCall(id=f"call_{self._count}", name=obj["name"], arguments=text)
        self._count += 1
        return [ChatChunk(tool_call=call)]


def _text(text: str) -> list[ChatChunk]:
    return [ChatChunk(text=text)] if text else []


def _partial_tag(text: str) -> int:
    """Length of the longest end of `text` that is a proper beginning of ``<tool_call>``."""
    for size in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if OPEN.startswith(text[-size:]):
            return size
    return 0


class LocalChat:
    """`ChatModel` on a local transformers model directory (with a chat template)."""

    def __init__(self, path: str | Path, device: str = "cpu", *, timeout_s: float = 60.0) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(str(path))
        if not getattr(self._tokenizer, "chat_template", None):
            raise ValueError(f"{path} has no chat template; it is not a chat model")
        model: Any = AutoModelForCausalLM.from_pretrained(str(path))
        self._model = model.to(device).eval()
        self.device = device
        #: Longest wait for the next piece of text before the reply is given up.
        self.timeout_s = timeout_s
        self.path = str(path)

    def render(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()) -> str:
        """The prompt text exactly as the model will see it (useful to debug a template)."""
        text = self._tokenizer.apply_chat_template(
            [message_payload(m, structured=True) for m in messages],
            tools=[tool.as_openai() for tool in tools] or None,
            add_generation_prompt=True,
            tokenize=False,
        )
        return str(text)

    def stream(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        *,
        max_tokens: int,
        temperature: float,
    ) -> Iterator[ChatChunk]:
        """Generate in a thread; yield text as it is decoded and tool calls when closed."""
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        torch = self._torch
        prompt = self.render(messages, tools)
        # The template already wrote any BOS token; adding special tokens would double it.
        inputs = self._tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        inputs = inputs.to(self.device)
        prompt_len = int(inputs["input_ids"].shape[1])
        streamer: Any = TextIteratorStreamer(
            self._tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=self.timeout_s
        )
        stop = threading.Event()
        produced = [0]

        class StopWhenClosed(StoppingCriteria):
            """Ends generation once the consumer has gone, and counts new tokens."""

            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                produced[0] = int(input_ids.shape[1]) - prompt_len
                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool)

        settings: dict[str, Any] = {
            **inputs,
            "streamer": streamer,
            "max_new_tokens": max_tokens,
            "stopping_criteria": StoppingCriteriaList([StopWhenClosed()]),
            "do_sample": temperature > 0,
        }
        if temperature > 0:
            settings["temperature"] = temperature
        errors: list[BaseException] = []

        def generate() -> None:
            try:
                with torch.inference_mode():
                    self._model.generate(**settings)
            except BaseException as exc:  # handed to the consumer below
                errors.append(exc)
                streamer.end()

        worker = threading.Thread(target=generate, name="llm-local-generate", daemon=True)
        worker.start()
        parser = ToolCallParser()
        try:
            for text in streamer:
                yield from parser.feed(text)
            if errors:
                raise LlmError(f"local generation failed: {errors[0]!r}") from errors[0]
            yield from parser.finish()
            yield ChatChunk(finish_reason="length" if produced[0] >= max_tokens else "stop")
        except queue.Empty as exc:
            raise LlmError(f"local model produced nothing for {self.timeout_s} s") from exc
        finally:
            stop.set()
            worker.join(self.timeout_s)
