"""`voicebot chat`: a text conversation with the same dialogue core the phone line uses.

For integrators trying a domain pack or an LLM, and for scripted tests: type what a
caller would say; ``dtmf 1234#`` presses keys. ``--debug`` shows what the core
understood (intent, confidence, slots, sentiment, policy state) and the graph facts
the reply is grounded in. ``--script FILE`` reads the caller's lines from a file and
``--json`` prints one JSON object per turn instead of prose.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from voicebot.config import load_config
from voicebot.dialogue.core import DialogueCore
from voicebot.dialogue.engines import LlmEngines
from voicebot.dialogue.state import Decision, DialogueState

DTMF_PREFIX = "dtmf "


def _lines(source: TextIO, interactive: bool) -> Iterator[str]:
    while True:
        if interactive:
            print("you> ", end="", flush=True)
        line = source.readline()
        if not line:
            return
        line = line.strip()
        if line and not line.startswith("#"):
            yield line


def _debug(decision: Decision) -> dict[str, Any]:
    state = decision.state
    plan = decision.plan
    return {
        "intent": decision.intent,
        "confidence": round(decision.confidence, 3),
        "alternatives": [[name, round(p, 3)] for name, p in decision.alternatives],
        "slots": dict(decision.slots),
        "sentiment": round(decision.sentiment, 3),
        "outcome": decision.outcome.value,
        "task": state.task,
        "stage": state.stage,
        "verified": state.verified is not None,
        "handoff": None if decision.handoff is None else decision.handoff.reason,
        "action": None if decision.action is None else decision.action.reference,
        "facts": list(plan.facts) if plan is not None else [],
        "tone": plan.tone.describe() if plan is not None else "",
    }


class ChatSession:
    """One text conversation: state in, decision out, replies through the chosen engine."""

    def __init__(self, core: DialogueCore, engine: LlmEngines | None = None) -> None:
        self.core = core
        self.engine = engine
        self.state = DialogueState()

    def greet(self) -> Decision:
        """The greeting a caller hears when the call connects."""
        decision = self.core.greeting(self.state)
        self.state = decision.state
        return decision

    def turn(self, line: str) -> Decision:
        """A caller line, or key presses after ``dtmf ``; the last decision is returned."""
        if line.lower().startswith(DTMF_PREFIX):
            decision = None
            for digit in line[len(DTMF_PREFIX) :].replace(" ", ""):
                decision = self.core.on_dtmf(self.state, digit)
                self.state = decision.state
            if decision is None:
                raise ValueError("dtmf needs at least one key (0-9, *, #)")
            return decision
        decision = self.core.respond(self.state, line)
        self.state = decision.state
        return decision

    def speak(self, decision: Decision) -> Iterable[str]:
        """The reply sentences, phrased by the engine when one is configured."""
        if self.engine is None or decision.plan is None:
            return decision.sentences
        phrased: Iterable[str] = self.engine.phrase(decision.plan, decision.state.verified)
        return phrased


def _cmd_chat(args: argparse.Namespace) -> int:
    from voicebot.dialogue.engines import build_engine_with_linking
    from voicebot.dialogue.loader import load_dialogue

    overrides = {
        "llm": {
            "engine": args.llm_engine,
            "url": args.llm_url,
            "model": args.llm_model,
        },
        "dialogue": {"intent_model": args.intent_model},
    }
    if args.llm_url and not args.llm_engine:
        overrides["llm"]["engine"] = "openai"
    config = load_config(args.config, overrides=overrides)
    embed = None
    if config.dialogue.intent_model == "knn":
        from models.embedder_minilm import MiniLmEmbedder

        embed = MiniLmEmbedder(config.dialogue.encoder).embed
    core = load_dialogue(config.dialogue, embed)
    if embed is None and config.llm.engine not in ("", "template"):
        from models.embedder_minilm import MiniLmEmbedder

        embed = MiniLmEmbedder(config.dialogue.encoder).embed
    session = ChatSession(core, build_engine_with_linking(config.llm, core, embed))
    with contextlib.ExitStack() as stack:
        source: TextIO = (
            stack.enter_context(open(args.script, encoding="utf-8")) if args.script else sys.stdin
        )
        interactive = args.script is None and sys.stdin.isatty() and not args.json
        _show(session.greet(), session, args)
        for line in _lines(source, interactive):
            if not args.json and not interactive:
                print(f"caller: {line}")
            try:
                decision = session.turn(line)
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                continue
            _show(decision, session, args, line)
            if decision.end_call or decision.state.transferred:
                break
    return 0


def _show(
    decision: Decision, session: ChatSession, args: argparse.Namespace, line: str = ""
) -> None:
    sentences = list(session.speak(decision)) if decision.sentences else []
    if args.json:
        record = {"caller": line, "bot": " ".join(sentences), **_debug(decision)}
        print(json.dumps(record), flush=True)
        return
    if args.debug:
        print(f"  [{json.dumps(_debug(decision))}]")
    if sentences:
        print(f"bot: {' '.join(sentences)}", flush=True)


def register(sub: Any) -> None:
    """Add `chat` to the CLI's subcommands."""
    chat = sub.add_parser("chat", help="talk to the dialogue core in text (same policy and graph)")
    chat.add_argument("--config", help="TOML configuration file")
    chat.add_argument("--debug", action="store_true", help="show intent, slots, state and facts")
    chat.add_argument("--json", action="store_true", help="one JSON object per turn")
    chat.add_argument("--script", type=Path, help="caller lines from a file instead of stdin")
    chat.add_argument("--intent-model", help='"knn", or a train-intents directory')
    chat.add_argument("--llm-engine", choices=["template", "openai", "local"], help="reply engine")
    chat.add_argument("--llm-url", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    chat.add_argument("--llm-model", help="model name at the endpoint, or a local directory")
    chat.set_defaults(func=_cmd_chat)
