"""LocalChat on a real (tiny) transformers model, and the tool-call parser on scripted text.

The model is a 2-layer Llama with RANDOM WEIGHTS built in the test (no download: its
word-level tokenizer is trained here on a few banking sentences), so what it says is
gibberish: these tests check the mechanics (chat template with tools, streaming in a
thread, max_tokens, stopping when the consumer goes), not the words. Its generation
config suppresses the special tokens, so it always writes exactly max_tokens words.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from models.llm import ChatChunk, ChatMessage, ToolCall, ToolSpec
from models.llm_local import LocalChat, ToolCallParser

SENTENCES = [
    "a replacement card costs five pounds",
    "your new card will arrive in five working days",
    "you can freeze your card in the app",
    "international payments cost fifteen pounds",
]
SPECIALS = ["[UNK]", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"]
TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|> {{ m.content }}"
    "{% if m.tool_calls %}{% for c in m.tool_calls %} call {{ c.function.name }}"
    "{% endfor %}{% endif %} <|end|> {% endfor %}"
    "{% if tools %}<|system|> tools {% for t in tools %}{{ t.function.name }} "
    "{% endfor %}<|end|> {% endif %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
TOOL = ToolSpec("search_knowledge", "Look up public facts.")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    words.train_from_iterator(SENTENCES, trainers.WordLevelTrainer(special_tokens=SPECIALS))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=words, unk_token="[UNK]", eos_token="<|end|>", pad_token="[UNK]"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIALS[2:]})
    tokenizer.chat_template = TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)  # random weights
    model.generation_config.suppress_tokens = tokenizer.convert_tokens_to_ids(SPECIALS)
    path = tmp_path_factory.mktemp("tiny-chat")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def chat(model_dir):
    return LocalChat(model_dir)


def ask():
    return [ChatMessage("system", "You are the bank."), ChatMessage("user", "card fee")]


def test_text_streams_in_several_chunks_and_stops_at_max_tokens(chat):
    chunks = list(chat.stream(ask(), max_tokens=6, temperature=0.0))
    texts = [c.text for c in chunks if c.text]
    assert len(texts) >= 2  # streamed as decoded, not all at the end
    assert len("".join(texts).split()) == 6  # one word per token, exactly max_tokens
    assert chunks[-1].finish_reason == "length"
    more = list(chat.stream(ask(), max_tokens=11, temperature=0.0))
    assert len("".join(c.text for c in more).split()) == 11


def test_sampling_with_a_temperature_also_streams(chat):
    chunks = list(chat.stream(ask(), max_tokens=4, temperature=0.7))
    assert len("".join(c.text for c in chunks).split()) == 4


def test_the_chat_template_sees_tools_and_tool_messages(chat):
    messages = [
        *ask(),
        ChatMessage("assistant", "", tool_calls=(ToolCall("c1", "search_knowledge", "{}"),)),
        ChatMessage("tool", "cards cost five pounds", tool_call_id="c1", name="search_knowledge"),
    ]
    prompt = chat.render(messages, [TOOL])
    assert "tools search_knowledge" in prompt
    assert "call search_knowledge" in prompt
    assert "<|tool|> cards cost five pounds" in prompt
    assert prompt.endswith("<|assistant|>")
    assert "tools" not in chat.render(ask())
    assert list(chat.stream(messages, [TOOL], max_tokens=3, temperature=0.0))


def test_closing_the_stream_early_stops_the_generation_thread(chat):
    stream = chat.stream(ask(), max_tokens=400, temperature=0.0)
    next(stream)
    stream.close()  # joins the worker, which the stopping criterion ends at the next token
    assert not [t for t in threading.enumerate() if t.name == "llm-local-generate"]


def test_a_directory_without_a_chat_template_is_refused(model_dir, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.chat_template = None
    tokenizer.save_pretrained(tmp_path)
    (tmp_path / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(ValueError, match="no chat template"):
        LocalChat(tmp_path)


def test_importing_the_backend_imports_neither_torch_nor_transformers():
    code = (
        "import sys, models.llm_local, models.llm_openai; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------ ToolCallParser


def feed_all(pieces: list[str]) -> list[ChatChunk]:
    parser = ToolCallParser()
    out = [chunk for piece in pieces for chunk in parser.feed(piece)]
    return out + parser.finish()


def chars(text: str) -> list[str]:
    return list(text)


STREAM = (
    'Let me look. <tool_call>\n{"name": "search_knowledge", "arguments": '
    '{"query": "card fee"}}\n</tool_call> Done.'
)


@pytest.mark.parametrize("split", [lambda s: [s], chars, lambda s: [s[:17], s[17:40], s[40:]]])
def test_a_tool_call_block_is_lifted_out_of_the_text_however_it_is_split(split):
    out = feed_all(split(STREAM))
    assert "".join(c.text for c in out) == "Let me look.  Done."
    assert [c.tool_call for c in out if c.tool_call] == [
        ToolCall("call_0", "search_knowledge", '{"query": "card fee"}')
    ]
    assert not any("tool_call" in c.text or "{" in c.text for c in out)


def test_text_is_released_as_it_comes_and_only_a_possible_tag_is_held_back():
    parser = ToolCallParser()
    assert [c.text for c in parser.feed("Your card <to")] == ["Your card "]
    assert [c.text for c in parser.feed("ast> is ready")] == ["<toast> is ready"]
    assert [c.text for c in parser.feed(" a < b")] == [" a < b"]


def test_two_calls_get_their_own_ids_and_parameters_is_accepted_for_arguments():
    text = (
        '<tool_call>{"name": "get_account_info", "arguments": {"topic": "balance"}}</tool_call>'
        '<tool_call>{"name": "search_knowledge", "parameters": {"query": "fees"}}</tool_call>'
    )
    calls = [c.tool_call for c in feed_all(chars(text)) if c.tool_call]
    assert calls == [
        ToolCall("call_0", "get_account_info", '{"topic": "balance"}'),
        ToolCall("call_1", "search_knowledge", '{"query": "fees"}'),
    ]


def test_a_broken_block_is_dropped_not_spoken(caplog):
    out = feed_all(['Hi. <tool_call>{"name": search_knowledge}</tool_call> Bye.'])
    assert "".join(c.text for c in out) == "Hi.  Bye."
    assert not any(c.tool_call for c in out)
    assert "unreadable tool call" in caplog.text


def test_a_block_cut_off_by_max_tokens_is_still_read_if_its_json_is_whole():
    out = feed_all(['<tool_call>{"name": "search_knowledge", "arguments": {"query": "x"}}'])
    assert [c.tool_call.name for c in out if c.tool_call] == ["search_knowledge"]
    assert feed_all(['<tool_call>{"name": "search_kno']) == []


def test_the_reply_engine_runs_on_the_local_model_and_never_raises(chat):
    from voicebot.dialogue.llm_engine import LlmReplyEngine
    from voicebot.dialogue.plan import ReplyPlan

    plan = ReplyPlan("answer", ("A replacement card costs 5 pounds.",), caller_text="card fee")
    engine = LlmReplyEngine(chat, knowledge=lambda q: [], account=lambda t: None, max_tokens=12)
    out = list(engine.phrase(plan))
    # Gibberish from random weights: either it passed the guardrail or the template came.
    assert out
    assert all(s and "<" not in s for s in out)
