"""`voicebot chat`: scripted conversations through the CLI, with templates and with an LLM.

The LLM is a FAKE OpenAI-compatible server on 127.0.0.1 (tests/fakes/openai_server.py)
that streams the replies each test queues; no real model runs here.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.fakes.openai_server import FakeOpenAiServer, Reply
from voicebot.cli import main
from voicebot.dialogue.grounded import say_money


def sse(text: str, piece: int = 9) -> str:
    """An OpenAI streaming body that sends `text` in small content deltas."""
    chunks = [text[i : i + piece] for i in range(0, len(text), piece)]
    events = [
        {"choices": [{"index": 0, "delta": {"content": c}, "finish_reason": None}]} for c in chunks
    ]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def chat(tmp_path: Path, capsys, lines: list[str], *flags: str) -> list[dict]:
    script = tmp_path / "caller.txt"
    script.write_text("\n".join(lines) + "\n")
    assert main(["chat", "--script", str(script), "--json", *flags]) == 0
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_a_scripted_balance_check_with_keypad_pin(tmp_path, capsys):
    turns = chat(tmp_path, capsys, ["what's my balance", "dtmf 12345678", "dtmf 4321", "bye"])
    assert [t["outcome"] for t in turns] == ["greeting", "verify", "verify", "account", "closing"]
    assert turns[3]["verified"] and say_money("1523.40") in turns[3]["bot"]
    assert turns[3]["facts"] and turns[3]["facts"][0] in turns[3]["bot"]


def test_replies_come_from_the_llm_when_grounded_and_from_templates_when_not(tmp_path, capsys):
    with FakeOpenAiServer() as server:
        server.replies.append(
            Reply(body=sse("Standard delivery takes 3 to 5 working days. Anything else?"))
        )
        server.replies.append(Reply(body=sse("Sure. Your balance is 1523 pounds 40.")))
        turns = chat(
            tmp_path,
            capsys,
            [
                "how long does it take for a new card to be delivered",
                "what does it cost to top up by card",
                "what's my balance",
            ],
            "--llm-url",
            server.base_url,
            "--llm-model",
            "fake-model",
        )
        requests = list(server.requests)
    delivery, top_up, balance = turns[1:]
    assert delivery["bot"] == "Standard delivery takes 3 to 5 working days. Anything else?"
    system = requests[0].body["messages"][0]["content"]
    assert any(fact in system for fact in delivery["facts"])  # the prompt is grounded
    assert requests[0].body["model"] == "fake-model" and requests[0].body["stream"] is True
    # The model tried to read a balance to an unverified caller: the guardrail spoke the
    # template answer instead.
    assert "1523" not in top_up["bot"] and top_up["bot"].endswith(" ".join(top_up["facts"]))
    # Verification prompts are verbatim: the model is not asked.
    assert balance["outcome"] == "verify" and len(requests) == 2
