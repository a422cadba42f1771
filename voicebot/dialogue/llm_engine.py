"""The LLM reply engine: a model phrases the policy's reply, sentence by sentence, guarded.

The dialogue core decides what a turn is about (a `ReplyPlan`); this engine lets a
chat model say it more naturally, with the same grounded facts, the conversation so
far and tone guidance, plus two tools (public knowledge, and the caller's account once
verified). Sentences are spoken as soon as each is complete, so the caller hears the
first while the model is still writing the rest.

A bank cannot let a model improvise, so every sentence passes the guardrail first:

- a verbatim plan (legal wording, confirmations) is spoken as the template, no model;
- every number, amount or date must be one the plan's facts, allowed values,
  template or this turn's tool results state (`Grounding`);
- while the caller is not verified, nothing that looks like an account detail passes,
  nor a claim that they are verified, whatever the model was talked into;
- no PIN or password, no links, no symbols the voice would read out.

The first sentence that fails ends the model's part: it and the rest are dropped and
the template sentences not yet conveyed are spoken instead. A model error, a reply
slower than ``timeout_s`` (checked between chunks; the backends bound each read
themselves) or an empty reply falls back the same way. `phrase` never raises.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Generator, Iterator, Sequence

from models.llm import ChatMessage, ChatModel, ToolCall
from voicebot.dialogue.llm_guardrail import (
    SentenceSplitter,
    claims_verification,
    clean_for_voice,
    looks_like_account_fact,
    names_a_secret,
    uncovered,
)
from voicebot.dialogue.llm_prompt import (
    GET_ACCOUNT_INFO,
    NOT_VERIFIED,
    NOTHING_FOUND,
    SEARCH_KNOWLEDGE,
    TOOLS,
    build_messages,
)
from voicebot.dialogue.llm_values import Grounding
from voicebot.dialogue.plan import ReplyPlan

log = logging.getLogger(__name__)

#: Rounds in which the model may call tools; the round after them offers none.
MAX_TOOL_ROUNDS = 3


class _Blocked(Exception):
    """A generated sentence failed the guardrail, or the model failed; why, PII-free."""


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


class LlmReplyEngine:
    """Phrases a `ReplyPlan` with a `ChatModel`, falling back to its template sentences.

    ``knowledge(query)`` returns public facts as sentences; ``account(topic)`` returns
    the caller's account facts, or None when the caller is not verified. ``clock``
    is injected so the reply deadline is testable without waiting.
    """

    def __init__(
        self,
        model: ChatModel,
        *,
        knowledge: Callable[[str], Sequence[str]],
        account: Callable[[str], Sequence[str] | None],
        max_tokens: int = 160,
        temperature: float = 0.2,
        timeout_s: float = 8.0,
        bank_name: str = "the bank",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._model = model
        self._knowledge = knowledge
        self._account = account
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.timeout_s = timeout_s
        self.bank_name = bank_name
        self._clock = clock

    def phrase(self, plan: ReplyPlan) -> Iterator[str]:
        """The reply's sentences, each yielded as soon as it is complete and checked."""
        if plan.verbatim:
            yield from plan.template_sentences
            return
        spoken: list[str] = []
        sentences = self._sentences(plan)
        failed = True
        try:
            while True:
                try:
                    sentence = next(sentences)
                except StopIteration:
                    failed = not spoken
                    if failed:
                        log.warning("llm guardrail: empty reply (act %s); template", plan.act)
                    break
                except _Blocked as exc:
                    log.warning("llm guardrail: %s (act %s); template instead", exc, plan.act)
                    break
                except Exception as exc:
                    log.warning("llm guardrail: model failed (%r); template instead", exc)
                    break
                spoken.append(sentence)
                yield sentence
        finally:
            try:
                sentences.close()
            except Exception:
                log.exception("llm reply engine: closing the model stream failed")
        if failed:
            yield from uncovered(plan.template_sentences, spoken)

    def _sentences(self, plan: ReplyPlan) -> Generator[str, None, None]:
        deadline = self._clock() + self.timeout_s
        grounding = Grounding([*plan.allowed_values, *plan.facts, *plan.template_sentences])
        messages = build_messages(plan, self.bank_name)
        for round_ in range(MAX_TOOL_ROUNDS + 1):
            tools = TOOLS if round_ < MAX_TOOL_ROUNDS else ()
            splitter = SentenceSplitter()
            text: list[str] = []
            calls: list[ToolCall] = []
            stream = self._model.stream(
                messages, tools, max_tokens=self.max_tokens, temperature=self.temperature
            )
            try:
                for chunk in stream:
                    if self._clock() > deadline:
                        raise _Blocked(f"no complete reply within {self.timeout_s} s")
                    if chunk.tool_call is not None and tools:
                        calls.append(chunk.tool_call)
                    if chunk.text:
                        text.append(chunk.text)
                        for raw in splitter.feed(chunk.text):
                            yield from self._check(raw, plan, grounding)
                for raw in splitter.flush():
                    yield from self._check(raw, plan, grounding)
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
            if not calls:
                return
            messages.append(
                ChatMessage(role="assistant", content="".join(text), tool_calls=tuple(calls))
            )
            for call in calls:
                answer, facts = self._run_tool(call, plan)
                grounding.add(facts)
                messages.append(
                    ChatMessage(role="tool", content=answer, tool_call_id=call.id, name=call.name)
                )
            if self._clock() > deadline:
                raise _Blocked(f"no complete reply within {self.timeout_s} s")

    def _check(self, raw: str, plan: ReplyPlan, grounding: Grounding) -> Iterator[str]:
        """The sentence as it will be spoken (nothing if it was only symbols), or _Blocked."""
        text = clean_for_voice(raw)
        if text is None:
            raise _Blocked("a sentence the voice cannot say (a link or symbols)")
        if not text:
            return
        bad = grounding.ungrounded(text)
        if bad:
            kinds = ", ".join(sorted({value.kind for value in bad}))
            raise _Blocked(f"{len(bad)} ungrounded value(s) ({kinds}) in a generated sentence")
        if names_a_secret(text):
            raise _Blocked("a PIN, password or security code in a generated sentence")
        templates = {_norm(sentence) for sentence in plan.template_sentences}
        if not plan.verified and _norm(text) not in templates:
            if looks_like_account_fact(text):
                raise _Blocked("an account detail while the caller is not verified")
            if claims_verification(text):
                raise _Blocked("a claim that the caller is verified while they are not")
        yield text

    def _run_tool(self, call: ToolCall, plan: ReplyPlan) -> tuple[str, list[str]]:
        """The tool's answer for the model, and the facts it grounds (none on refusal)."""
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            return "error: the arguments must be a JSON object", []
        try:
            if call.name == SEARCH_KNOWLEDGE:
                query = str(arguments.get("query", "")).strip()
                if not query:
                    return "error: a query is required", []
                facts = [str(fact) for fact in self._knowledge(query)]
            elif call.name == GET_ACCOUNT_INFO:
                if not plan.verified:
                    return NOT_VERIFIED, []
                found = self._account(str(arguments.get("topic", "")).strip())
                if found is None:
                    return NOT_VERIFIED, []
                facts = [str(fact) for fact in found]
            else:
                return f"error: there is no tool named {call.name!r}", []
        except Exception as exc:
            log.warning("llm tool %s failed: %r", call.name, exc)
            return "error: the lookup failed", []
        return ("\n".join(facts) or NOTHING_FOUND), facts
