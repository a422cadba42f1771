"""Reply engines: who phrases a `ReplyPlan`. Templates by default, an LLM when configured.

The policy has already decided what the reply is about; the engine only words it. An
LLM engine is built per turn around one shared chat model, because its tools must see
this call's state: `get_account_info` reads the account of the caller verified in this
call and no other, through the same `AccountView` the templates use, and answers "not
verified" otherwise. `search_knowledge` reads the public graph through entity linking.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from voicebot.config import LlmConfig
from voicebot.dialogue.accounts import Verified
from voicebot.dialogue.core import DialogueCore
from voicebot.dialogue.intents import Embed
from voicebot.dialogue.plan import ReplyPlan

log = logging.getLogger(__name__)


class ReplyEngine(Protocol):
    """Phrases one plan as a stream of whole sentences (blocking; run in a worker)."""

    def phrase(self, plan: ReplyPlan) -> Iterator[str]: ...


class TemplateEngine:
    """The grounded templates, as they are."""

    def phrase(self, plan: ReplyPlan) -> Iterator[str]:
        """The plan's template sentences."""
        yield from plan.template_sentences


class LlmEngines:
    """One chat model shared by every call; `for_call` binds a call's credential."""

    def __init__(
        self,
        model: Any,
        config: LlmConfig,
        core: DialogueCore,
        search: Callable[[str], Sequence[str]],
    ) -> None:
        self.model = model
        self.config = config
        self.core = core
        self.search = search

    def for_call(self, verified: Verified | None) -> ReplyEngine:
        """An engine whose account tool sees only this call's verified customer."""
        from voicebot.dialogue.llm_engine import LlmReplyEngine

        def account(topic: str) -> Sequence[str] | None:
            tasks = self.core.tasks
            if verified is None or tasks is None:
                return None
            return tasks.account_sentences(verified, topic)

        engine: ReplyEngine = LlmReplyEngine(
            self.model,
            knowledge=self.search,
            account=account,
            max_tokens=self.config.max_tokens,
            temperature=self.config.temperature,
            timeout_s=self.config.timeout_s,
            bank_name=self.core.graph.bank_name(),
        )
        return engine

    def phrase(self, plan: ReplyPlan, verified: Verified | None = None) -> Iterator[str]:
        """Phrase with this call's credential (None: the account tool refuses)."""
        return self.for_call(verified).phrase(plan)


def chat_model(config: LlmConfig) -> Any:
    """The configured chat model (an OpenAI-compatible endpoint or a local directory)."""
    if config.engine == "openai":
        from models.llm_openai import OpenAiChat

        if not config.url:
            raise ValueError("[llm] engine openai needs url (or --llm-url)")
        key = os.environ.get(config.api_key_env) or None
        return OpenAiChat(config.url, config.model, api_key=key, timeout_s=config.timeout_s)
    if config.engine == "local":
        from models.llm_local import LocalChat

        if not config.model:
            raise ValueError("[llm] engine local needs model = a transformers directory")
        return LocalChat(config.model, device=config.device)
    raise ValueError(f"unknown [llm] engine {config.engine!r} (known: template, openai, local)")


def build_engine_with_linking(
    config: LlmConfig, core: DialogueCore, embed: Embed | None
) -> LlmEngines | None:
    """`build_engine` with the knowledge tool searching the graph by entity linking
    (the linker is built only when an LLM engine is configured: it costs seconds)."""
    if config.engine in ("", "template"):
        return None
    from voicebot.dialogue.linking import EntityLinker

    linker = EntityLinker.build(core.graph, core.replies, embed)
    return build_engine(config, core, linker.search)


def build_engine(
    config: LlmConfig, core: DialogueCore, search: Callable[[str], Sequence[str]] | None = None
) -> LlmEngines | None:
    """None for the template engine (the default), else the shared LLM engines."""
    if config.engine in ("", "template"):
        return None
    return LlmEngines(chat_model(config), config, core, search or (lambda _query: ()))
