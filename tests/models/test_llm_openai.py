"""OpenAiChat against a FAKE OpenAI-compatible server on 127.0.0.1 (recorded SSE replies).

The client, its sockets and its HTTP are real; only the server is a fake (no LLM server
runs here). Each reply is sent in small chunked-encoding pieces cut mid-line and
mid-JSON, so line reassembly is exercised as it is on a real network.
"""

from __future__ import annotations

import json

import pytest

from models.llm import ChatChunk, ChatMessage, LlmError, ToolCall, ToolSpec
from models.llm_openai import OpenAiChat
from tests.fakes.openai_server import FakeOpenAiServer, Reply
from tests.fixtures import openai_sse
from tests.helpers import free_port

TOOL = ToolSpec(
    "search_knowledge",
    "Look up public facts.",
    {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
)
MESSAGES = [
    ChatMessage("system", "You are the bank's assistant."),
    ChatMessage("user", "How much is a new card?"),
    ChatMessage(
        "assistant",
        "",
        tool_calls=(ToolCall("call_1", "search_knowledge", '{"query": "card fee"}'),),
    ),
    ChatMessage("tool", "A replacement card costs 5 pounds.", tool_call_id="call_1", name="x"),
]


@pytest.fixture
def server():
    with FakeOpenAiServer() as fake:
        yield fake


def run(server, reply: Reply, **kwargs) -> list[ChatChunk]:
    server.replies.append(reply)
    chat = OpenAiChat(server.base_url, "qwen2.5-7b", **kwargs)
    return list(chat.stream(MESSAGES, [TOOL], max_tokens=64, temperature=0.3))


def test_text_deltas_split_mid_word_and_mid_line_come_through_whole(server):
    chunks = run(server, Reply(openai_sse.TEXT, piece=13))
    assert "".join(c.text for c in chunks) == openai_sse.TEXT_SAID
    assert len([c for c in chunks if c.text]) == 4  # streamed, not buffered into one
    assert chunks[-1].finish_reason == "stop"
    assert not any(c.tool_call for c in chunks)


def test_the_request_is_an_openai_chat_completion_with_stream_and_tools(server):
    run(server, Reply(openai_sse.TEXT), api_key="sk-test-123")
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer sk-test-123"
    body = request.body
    assert body["model"] == "qwen2.5-7b"
    assert body["stream"] is True
    assert body["max_tokens"] == 64 and body["temperature"] == 0.3
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool"]
    assert body["messages"][1]["content"] == "How much is a new card?"
    call = body["messages"][2]["tool_calls"][0]
    assert call == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "search_knowledge", "arguments": '{"query": "card fee"}'},
    }
    assert body["messages"][3]["tool_call_id"] == "call_1"
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "search_knowledge",
                "description": "Look up public facts.",
                "parameters": dict(TOOL.parameters),
            },
        }
    ]


def test_no_key_no_authorization_header_and_no_tools_no_tools_field(server):
    server.replies.append(Reply(openai_sse.TEXT))
    chat = OpenAiChat(server.base_url + "/", "m")
    list(chat.stream(MESSAGES[:2], max_tokens=8, temperature=0.0))
    (request,) = server.requests
    assert "Authorization" not in request.headers
    assert "tools" not in request.body


def test_a_tool_call_in_fragments_is_handed_on_once_complete(server):
    chunks = run(server, Reply(openai_sse.TOOL_CALL, piece=17))
    calls = [c.tool_call for c in chunks if c.tool_call]
    assert calls == [
        ToolCall("call_Qm3vX8", "search_knowledge", '{"query": "replacement card fee"}')
    ]
    assert json.loads(calls[0].arguments) == {"query": "replacement card fee"}
    assert chunks[-1].finish_reason == "tool_calls"


def test_parallel_tool_calls_interleaved_by_index_and_a_keepalive_comment(server):
    chunks = run(server, Reply(openai_sse.PARALLEL_TOOL_CALLS))
    assert "".join(c.text for c in chunks) == "Let me check. "
    calls = [c.tool_call for c in chunks if c.tool_call]
    assert calls == [
        ToolCall("call_a", "get_account_info", '{"topic": "balance"}'),
        ToolCall("call_b", "search_knowledge", '{"query": "fees"}'),
    ]


def test_ollama_whole_tool_call_in_one_chunk_with_finish_stop(server):
    chunks = run(server, Reply(openai_sse.OLLAMA_TOOL_CALL))
    calls = [c.tool_call for c in chunks if c.tool_call]
    assert calls == [ToolCall("call_x1", "get_account_info", '{"topic":"balance"}')]


def test_crlf_line_endings_are_read_like_lf(server):
    chunks = run(server, Reply(openai_sse.TEXT.replace("\n", "\r\n")))
    assert "".join(c.text for c in chunks) == openai_sse.TEXT_SAID


def test_a_server_that_ignores_stream_true_is_still_understood(server):
    reply = Reply(openai_sse.WHOLE_JSON, content_type="application/json")
    chunks = run(server, reply)
    assert "".join(c.text for c in chunks) == "Cards cost 5 pounds."
    assert [c.tool_call.name for c in chunks if c.tool_call] == ["search_knowledge"]


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(openai_sse.ERROR_500, 500, "application/json"), "HTTP 500.*CUDA out of memory"),
        (Reply(openai_sse.ERROR_401, 401, "application/json"), "HTTP 401.*Incorrect API key"),
        (Reply("Bad Gateway", 502, "text/plain"), "HTTP 502.*Bad Gateway"),
        (Reply(openai_sse.MALFORMED), "malformed JSON"),
        (Reply(openai_sse.IN_STREAM_ERROR), "longer than the maximum model length"),
        (Reply('data: {"choices": [{"delta": "oops"}]}\n\n'), "unexpected chunk"),
        (Reply('data: {"choices": [{"delta": {"tool_calls": [7]}}]}\n\n'), "unexpected tool"),
        (Reply('data: ["a list"]\n\n'), "unexpected stream event"),
    ],
)
def test_errors_become_llm_errors_that_say_what_went_wrong(server, reply, message):
    with pytest.raises(LlmError, match=message):
        run(server, reply)


def test_text_before_a_broken_chunk_is_still_delivered(server):
    server.replies.append(Reply(openai_sse.MALFORMED))
    stream = OpenAiChat(server.base_url, "m").stream(MESSAGES, max_tokens=8, temperature=0)
    assert next(stream).text == "Hello"
    with pytest.raises(LlmError, match="malformed JSON"):
        next(stream)


def test_a_server_that_stalls_mid_stream_times_out_on_the_read(server):
    server.replies.append(Reply(openai_sse.TEXT, piece=400, hang_after=2))
    chat = OpenAiChat(server.base_url, "m", timeout_s=0.3)
    got: list[str] = []
    with pytest.raises(LlmError, match=r"no answer .* within 0\.3 s"):
        for chunk in chat.stream(MESSAGES, max_tokens=8, temperature=0):
            got.append(chunk.text)
    assert "".join(got).startswith("A replacement ca")  # what came before the stall


def test_a_server_that_never_answers_times_out():
    with FakeOpenAiServer() as fake:
        fake.replies.append(Reply(openai_sse.TEXT, hang_after=0))
        chat = OpenAiChat(fake.base_url, "m", timeout_s=0.3)
        with pytest.raises(LlmError, match=r"within 0\.3 s"):
            list(chat.stream(MESSAGES, max_tokens=8, temperature=0))


def test_nothing_listening_is_a_clear_error():
    chat = OpenAiChat(f"http://127.0.0.1:{free_port()}/v1", "m", timeout_s=2)
    with pytest.raises(
        LlmError, match=r"connection to http://127\.0\.0\.1:\d+/v1/chat/completions failed"
    ):
        list(chat.stream(MESSAGES, max_tokens=8, temperature=0))


def test_closing_the_stream_early_is_quiet_and_the_next_reply_works(server):
    server.replies.append(Reply(openai_sse.TEXT, piece=400))
    server.replies.append(Reply(openai_sse.TEXT))
    chat = OpenAiChat(server.base_url, "m")
    stream = chat.stream(MESSAGES, max_tokens=8, temperature=0)
    next(stream)
    stream.close()
    assert "".join(c.text for c in chat.stream(MESSAGES, max_tokens=8, temperature=0)) == (
        openai_sse.TEXT_SAID
    )


@pytest.mark.parametrize("url", ["ftp://host/v1", "127.0.0.1:8000/v1", "http:///v1"])
def test_a_bad_base_url_is_refused_at_construction(url):
    with pytest.raises(ValueError, match="base URL"):
        OpenAiChat(url, "m")


def test_the_key_is_not_in_the_repr():
    assert "sk-secret" not in repr(OpenAiChat("http://127.0.0.1:1/v1", "m", api_key="sk-secret"))
