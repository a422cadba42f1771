"""A chat model behind an OpenAI-compatible Chat Completions endpoint, streamed.

vLLM, llama.cpp's server, Ollama and the OpenAI API itself all answer
``POST {base_url}/chat/completions`` with ``stream: true`` as server-sent events: one
``data: {json}`` line per chunk, a blank line between events, ``data: [DONE]`` at the
end. Text arrives as ``choices[0].delta.content``; a tool call arrives in fragments
(``delta.tool_calls[i]``: the id and name first, then the JSON arguments piece by
piece) that we assemble by ``index`` and hand on only when complete.

Only the standard library is used (``http.client``): one short-lived connection per
reply, a timeout on connect and on every read (so a server that stalls mid-stream
cannot hold a call), and every failure surfaces as `LlmError` with a message an
operator can act on. Closing the iterator early closes the connection, which makes
vLLM and llama.cpp abort the generation.
"""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from models.llm import ChatChunk, ChatMessage, LlmError, ToolCall, ToolSpec, message_payload

log = logging.getLogger(__name__)

#: Longest SSE line we accept; a chunk is a few hundred bytes, so this means garbage.
MAX_LINE = 1 << 20
#: How much of an error body we read to explain an HTTP error.
MAX_ERROR_BODY = 4096


class StreamDecoder:
    """Turns decoded ``chat.completion.chunk`` objects into `ChatChunk`s.

    Kept apart from the HTTP code so the fragment assembly can be reasoned about on
    its own: tool-call pieces are keyed by ``index`` (a server that omits it gets the
    fragment's position) and released on ``finish_reason`` or at the end of stream.
    """

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def feed(self, obj: Any) -> list[ChatChunk]:
        """Chunks for one decoded event."""
        if not isinstance(obj, dict):
            raise LlmError(f"unexpected stream event: {obj!r:.200}")
        if "error" in obj:
            raise LlmError(f"the model server reported an error: {error_text(obj)}")
        out: list[ChatChunk] = []
        for choice in obj.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or choice.get("message") or {}
            content = delta.get("content")
            if isinstance(content, str) and content:
                out.append(ChatChunk(text=content))
            for position, fragment in enumerate(delta.get("tool_calls") or []):
                self._add_fragment(position, fragment)
            finish = choice.get("finish_reason")
            if finish:
                out.extend(self.finish())
                out.append(ChatChunk(finish_reason=str(finish)))
        return out

    def finish(self) -> list[ChatChunk]:
        """Release every tool call still being assembled, in index order."""
        calls = [
            ChatChunk(
                tool_call=ToolCall(
                    id=entry["id"] or f"call_{index}",
                    name=entry["name"],
                    arguments=entry["arguments"] or "{}",
                )
            )
            for index, entry in sorted(self._calls.items())
        ]
        self._calls.clear()
        return calls

    def _add_fragment(self, position: int, fragment: Any) -> None:
        if not isinstance(fragment, dict):
            raise LlmError(f"unexpected tool call fragment: {fragment!r:.200}")
        index = fragment.get("index", position)
        entry = self._calls.setdefault(int(index), {"id": "", "name": "", "arguments": ""})
        if fragment.get("id"):
            entry["id"] = str(fragment["id"])
        function = fragment.get("function") or {}
        name = function.get("name")
        # The name comes once; a server that repeats it must not make it doubled.
        if name and name != entry["name"]:
            entry["name"] += str(name)
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # some servers send an object, not text
            entry["arguments"] += json.dumps(arguments)
        elif isinstance(arguments, str):
            entry["arguments"] += arguments


def error_text(obj: Any) -> str:
    """The human part of an error body (OpenAI, vLLM, llama.cpp and Ollama shapes)."""
    if isinstance(obj, dict):
        error = obj.get("error", obj.get("detail", obj.get("message")))
        if isinstance(error, dict):
            return str(error.get("message", error))[:500]
        if error is not None:
            return str(error)[:500]
    return str(obj)[:500]


class OpenAiChat:
    """`ChatModel` over HTTP(S) to an OpenAI-compatible server."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) base URL: {base_url!r}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = f"{parts.path}/chat/completions"
        self.url = f"{parts.scheme}://{parts.netloc}{self._path}"
        self.model = model
        self._api_key = api_key
        self.timeout_s = timeout_s

    def __repr__(self) -> str:  # never show the key
        return f"OpenAiChat({self.url!r}, model={self.model!r})"

    def stream(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        *,
        max_tokens: int,
        temperature: float,
    ) -> Iterator[ChatChunk]:
        """POST the conversation and yield chunks as the server streams them."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [message_payload(m) for m in messages],
            "stream": True,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if tools:
            body["tools"] = [tool.as_openai() for tool in tools]
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
        }
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        connection = self._connect()
        try:
            connection.request("POST", self._path, json.dumps(body).encode(), headers)
            response = connection.getresponse()
            if response.status != 200:
                detail = response.read(MAX_ERROR_BODY).decode("utf-8", "replace")
                try:
                    detail = error_text(json.loads(detail))
                except ValueError:
                    detail = detail.strip()[:500]
                raise LlmError(f"HTTP {response.status} from {self.url}: {detail}")
            kind = response.getheader("Content-Type", "")
            if kind.startswith("application/json"):  # a server that ignored stream=true
                yield from self._whole(response)
                return
            yield from self._events(response)
        except TimeoutError as exc:
            raise LlmError(f"no answer from {self.url} within {self.timeout_s} s") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise LlmError(f"connection to {self.url} failed: {exc!r}") from exc
        finally:
            connection.close()

    def _connect(self) -> http.client.HTTPConnection:
        # The timeout applies to the connect and then to every single socket read.
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout_s)
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout_s)

    def _events(self, response: http.client.HTTPResponse) -> Iterator[ChatChunk]:
        decoder = StreamDecoder()
        for payload in sse_data(response):
            if payload.strip() == "[DONE]":
                break
            try:
                obj = json.loads(payload)
            except ValueError as exc:
                raise LlmError(f"malformed JSON in the stream from {self.url}: {exc}") from exc
            yield from self._feed(decoder, obj)
        yield from decoder.finish()

    def _feed(self, decoder: StreamDecoder, obj: Any) -> list[ChatChunk]:
        try:
            return decoder.feed(obj)
        except (AttributeError, TypeError, ValueError) as exc:  # a chunk of the wrong shape
            raise LlmError(f"unexpected chunk from {self.url}: {exc!r}: {obj!r:.200}") from exc

    def _whole(self, response: http.client.HTTPResponse) -> Iterator[ChatChunk]:
        try:
            obj = json.loads(response.read())
        except ValueError as exc:
            raise LlmError(f"malformed JSON from {self.url}: {exc}") from exc
        decoder = StreamDecoder()
        yield from self._feed(decoder, obj)
        yield from decoder.finish()


def sse_data(response: http.client.HTTPResponse) -> Iterator[str]:
    """The ``data`` of each server-sent event (multi-line data joined by newlines)."""
    data: list[str] = []
    while True:
        line = response.readline(MAX_LINE)
        if not line:
            break
        if not line.endswith(b"\n") and len(line) >= MAX_LINE:
            raise LlmError("a server-sent event line is longer than 1 MiB")
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if not text:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if text.startswith(":"):  # a comment / keep-alive
            continue
        field, _, value = text.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)
