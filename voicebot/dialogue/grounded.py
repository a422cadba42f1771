"""Grounded template replies: every sentence the bot speaks about the bank comes from a fact.

The knowledge graph holds facts (fees, limits, durations, procedures...); this module
phrases them with one template per fact class from ``templates.toml`` and turns numbers
into words a TTS voice reads well ("2 pounds 50", "0.5 percent"). Nothing here knows
about individual intents, so adding an intent or changing a fee is a data change only.

The engine renders every fact in the pack when it is built: a missing template, an
unknown placeholder or a symbol the voice would stumble on fails at start-up, not in
the middle of a call.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from string import Formatter
from typing import Any

from voicebot.dialogue.knowledge import DEFAULT_PACK, Fact, KnowledgeGraph

TEMPLATES_FILE = "templates.toml"

#: Prompts the dialogue core relies on, with the placeholders it passes to each.
REQUIRED_PROMPTS: Mapping[str, frozenset[str]] = {
    key: frozenset({"bank_name"} | extra)
    for key, extra in {
        "greeting": set(),
        "greet_reply": set(),
        "clarify": set(),
        "clarify_intent": {"intent_label"},
        "not_heard": set(),
        "handoff_offer": set(),
        "handoff_offer_upset": set(),
        "handoff_offer_failure": set(),
        "handoff_accepted": set(),
        "handoff_declined": set(),
        "transfer_failed": set(),
        "handoff_unavailable": set(),
        "handoff_unavailable_upset": set(),
        "handoff_unavailable_failure": set(),
        "handoff_unavailable_help": set(),
        "anything_else": set(),
        "goodbye": set(),
        "thanks_reply": set(),
        "dtmf_operator": set(),
        "dtmf_unavailable": set(),
        "dtmf_unknown": set(),
        "dtmf_unknown_no_transfer": set(),
        "apology_error": set(),
        "apology_error_no_transfer": set(),
        "shutdown": set(),
        "repeat_nothing": set(),
        "ask_account": set(),
        "ask_account_again": set(),
        "ask_secret": set(),
        "ask_secret_again": set(),
        "verify_failed": set(),
        "verify_locked": set(),
        "verified": set(),
        "balance": {"balance", "available"},
        "balance_overdrawn": {"overdrawn", "available"},
        "transactions_intro": {"count"},
        "transaction_out": {"day", "amount", "merchant"},
        "transaction_in": {"day", "amount", "merchant"},
        "no_transactions": set(),
        "confirm_freeze": {"card_kind", "ending"},
        "confirm_freeze_offer": set(),
        "freeze_done": {"ending"},
        "already_frozen": {"ending"},
        "offer_replacement": set(),
        "confirm_replacement": {"ending", "card_kind"},
        "replacement_done": {"ending", "reference"},
        "offer_dispute": set(),
        "ask_transaction": {"choices"},
        "ask_transaction_again": {"example"},
        "confirm_dispute": {"amount", "merchant", "day"},
        "dispute_done": {"amount", "merchant", "reference"},
        "action_cancelled": set(),
        "action_failed": set(),
        "anything_more": set(),
        "sorry": set(),
    }.items()
}

#: Text a TTS voice would read badly or literally; no rendered sentence may contain it.
UNSPEAKABLE = ("{", "}", "£", "$", "€", "%", "http", "www.", "&", "#", "*", "_", "/", "<", ">", "@")


class TemplateError(ValueError):
    """The template pack cannot phrase some fact or prompt."""


class UnknownPrompt(KeyError):
    """The dialogue core asked for a prompt the template pack does not define."""

    def __str__(self) -> str:
        return f"no prompt named {self.args[0]!r} in the template pack"


# ---------------------------------------------------------------------- verbalization


def say_money(value: Decimal | str | int) -> str:
    """Pounds and pence as spoken: 2.5 -> "2 pounds 50", 1 -> "1 pound", 0.3 -> "30 pence"."""
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"not an amount of money: {value!r}") from exc
    if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"not an amount of money in pounds and pence: {value!r}")
    pounds, pence = int(amount), int((amount % 1) * 100)
    if pounds == 0 and pence:
        return "1 penny" if pence == 1 else f"{pence} pence"
    said = "1 pound" if pounds == 1 else f"{pounds} pounds"
    if pence == 0:
        return said
    # "2 pounds 50" is how people say it; "2 pounds 05" would be read "oh five".
    return f"{said} {pence}" if pence >= 10 else f"{said} {pence} pence"


def say_percent(value: Decimal | str | int) -> str:
    """A percentage as spoken, without trailing zeros: 0.50 -> "0.5 percent", 2.0 -> "2 percent"."""
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"not a percentage: {value!r}") from exc
    if not number.is_finite() or number < 0:
        raise ValueError(f"not a percentage: {value!r}")
    text = format(number.normalize(), "f")
    return f"{text} percent"


def say_list(items: Iterable[str], word: str = "and") -> str:
    """Join for the ear: "a", "a and b", "a, b and c" (no serial comma, UK style)."""
    parts = list(items)
    if len(parts) <= 1:
        return "".join(parts)
    return f"{', '.join(parts[:-1])} {word} {parts[-1]}"


def say_steps(steps: Iterable[str], then: str = "then") -> str:
    """Ordered steps as one clause: "open the app, tap Cards, then tap Freeze"."""
    parts = list(steps)
    if len(parts) <= 1:
        return "".join(parts)
    return f"{', '.join(parts[:-1])}, {then} {parts[-1]}"


def say_count(count: int, unit: str) -> str:
    """A number with its unit, singular for one: (1, "working days") -> "1 working day"."""
    if count == 1 and unit.endswith("s"):
        unit = unit[:-1]
    return f"{count} {unit}"


_SENTENCE_START = re.compile(r"(^|[.?!]\s+)([a-z])")


def _tidy(text: str) -> str:
    """Single spaces, a capital at the start of each sentence, and a final full stop."""
    text = " ".join(text.split())
    text = _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)
    return text if text.endswith((".", "?", "!")) else text + "."


def _fields(template: str) -> set[str]:
    """Placeholder names in a str.format template; only plain names are allowed."""
    names = set()
    for _, name, spec, conversion in Formatter().parse(template):
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise TemplateError(f"placeholder {{{name}}} in {template!r} must be a plain name")
        names.add(name)
    return names


# ---------------------------------------------------------------------- templates


@dataclass(frozen=True, slots=True)
class _Form:
    when: str | None
    texts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _ClassTemplate:
    forms: tuple[_Form, ...]
    optional: Mapping[str, str]


def _parse_class(kind: str, table: Any) -> _ClassTemplate:
    if (
        not isinstance(table, Mapping)
        or not isinstance(table.get("forms"), list)
        or not table["forms"]
    ):
        raise TemplateError(f"[facts.{kind}] needs a non-empty forms list")
    forms = []
    for form in table["forms"]:
        texts = form.get("text") if isinstance(form, Mapping) else None
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise TemplateError(f"[facts.{kind}] has a form without a list of text strings")
        for text in texts:
            _fields(text)
        when = form.get("when")
        forms.append(_Form(when=str(when) if when else None, texts=tuple(texts)))
    optional = table.get("optional", {})
    if not isinstance(optional, Mapping) or not all(isinstance(v, str) for v in optional.values()):
        raise TemplateError(f"[facts.{kind}] optional must map property names to fragments")
    return _ClassTemplate(forms=tuple(forms), optional=dict(optional))


class GroundedReplies:
    """Phrases the facts that answer an intent, and the dialogue core's fixed prompts."""

    def __init__(self, graph: KnowledgeGraph, templates: Mapping[str, Any]) -> None:
        """Bind a graph to a template pack; raises TemplateError if any fact can't be said."""
        self._graph = graph
        fmt = templates.get("format", {})
        self._money = frozenset(fmt.get("money", ()))
        self._percent = frozenset(fmt.get("percent", ()))
        self._join_or = frozenset(fmt.get("join_or", ()))
        self._join_and = frozenset(fmt.get("join_and", ()))
        self._or = str(fmt.get("or_word", "or"))
        self._and = str(fmt.get("and_word", "and"))
        self._then = str(fmt.get("then_word", "then"))
        self._span = {
            key: str(fmt.get("span", {}).get(key, "")) for key in ("exact", "up_to", "range")
        }
        facts = templates.get("facts", {})
        self._classes = {kind: _parse_class(kind, table) for kind, table in facts.items()}
        self._prompts = {str(k): str(v) for k, v in templates.get("prompts", {}).items()}
        self._bank_name = graph.bank_name()
        self._check()

    @classmethod
    def from_pack(cls, pack_dir: Path = DEFAULT_PACK) -> GroundedReplies:
        """Load a pack directory: its Turtle facts and its ``templates.toml``."""
        path = Path(pack_dir) / TEMPLATES_FILE
        try:
            templates = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise TemplateError(f"{path}: cannot read templates: {exc}") from exc
        return cls(KnowledgeGraph.load(pack_dir), templates)

    @property
    def graph(self) -> KnowledgeGraph:
        """The knowledge graph the replies are grounded in (for LLM prompts, clarifying)."""
        return self._graph

    def answer(self, intent: str, variant: int = 0) -> list[str]:
        """Sentences answering ``intent``, one per fact, in speaking order.

        ``variant`` picks an alternative phrasing where a template has one (for a caller
        who asks to hear it again); the same variant always gives the same text.
        Raises UnknownIntent for an intent the graph does not have.
        """
        return [self.render(fact, variant) for fact in self._graph.facts_for_intent(intent)]

    def contact_points(self) -> list[str]:
        """When the bank's people can be reached, as spoken sentences (for a caller who
        wants a person on a line that cannot transfer)."""
        return [self.render(fact) for fact in self._graph.contact_points()]

    def render(self, fact: Fact, variant: int = 0) -> str:
        """One fact as spoken text, using the first template form the fact qualifies for."""
        template = self._classes.get(fact.kind)
        if template is None:
            raise TemplateError(f"no template for fact class {fact.kind} ({fact.name})")
        form = next((f for f in template.forms if f.when is None or f.when in fact.values), None)
        if form is None:
            raise TemplateError(f"no [facts.{fact.kind}] form fits {fact.name}")
        values = self._slots(fact)
        slots = dict(values)
        for prop, fragment in template.optional.items():
            slots[prop] = self._fill(fragment, values, fact) if prop in fact.values else ""
        return _tidy(self._fill(form.texts[variant % len(form.texts)], slots, fact))

    def prompt(self, key: str, **slots: str) -> str:
        """A fixed prompt ("greeting", "clarify_intent"...), with ``{bank_name}`` filled in."""
        template = self._prompts.get(key)
        if template is None:
            raise UnknownPrompt(key)
        try:
            return template.format_map({"bank_name": self._bank_name, **slots})
        except KeyError as exc:
            raise TemplateError(f"prompt {key!r} needs the slot {exc.args[0]!r}") from None

    # ------------------------------------------------------------------ internals

    def _fill(self, template: str, slots: Mapping[str, str], fact: Fact) -> str:
        try:
            return template.format_map(slots)
        except KeyError as exc:
            raise TemplateError(
                f"{fact.name} ({fact.kind}) has no value for {{{exc.args[0]}}} in {template!r}"
            ) from None

    def _slots(self, fact: Fact) -> dict[str, str]:
        """Property values as spoken text, plus the derived {steps} and {span} slots."""
        slots: dict[str, str] = {}
        for prop, values in fact.values.items():
            if prop in self._money:
                slots[prop] = say_money(values[0])
            elif prop in self._percent:
                slots[prop] = say_percent(values[0])
            elif prop in self._join_or:
                slots[prop] = say_list(values, self._or)
            else:
                slots[prop] = say_list(values, self._and)
        if fact.steps:
            slots["steps"] = say_steps(fact.steps, self._then)
        unit = fact.first("unit")
        count = fact.first("count")
        if unit is not None and count is not None:
            slots["unit"] = say_count(int(count), unit).split(" ", 1)[1]
        low, high = fact.first("minValue"), fact.first("maxValue")
        if unit is not None and low is not None and high is not None:
            shape = "exact" if low == high else "up_to" if int(low) == 0 else "range"
            spoken_unit = say_count(int(high), unit).split(" ", 1)[1]
            slots["span"] = self._span[shape].format(min=low, max=high, unit=spoken_unit)
        return slots

    def _check(self) -> None:
        """Fail fast: every fact class has a template, every fact and prompt renders cleanly."""
        problems: list[str] = []
        kinds = set(self._graph.fact_kinds())
        for kind in sorted(kinds - self._classes.keys()):
            problems.append(f"no [facts.{kind}] template")
        for kind in sorted(self._classes.keys() - kinds):
            problems.append(f"[facts.{kind}] is not a fact class in the graph")
        if not all(self._span.values()):
            problems.append("[format.span] needs exact, up_to and range")
        for fact in self._graph.facts():
            if fact.kind not in self._classes:
                continue
            forms = self._classes[fact.kind].forms
            for variant in range(max(len(form.texts) for form in forms)):
                try:
                    problems += _unspeakable(self.render(fact, variant), fact.name)
                except (TemplateError, ValueError) as exc:
                    problems.append(str(exc))
                    break
        for key, allowed in REQUIRED_PROMPTS.items():
            if key not in self._prompts:
                problems.append(f"missing prompt {key!r}")
                continue
            try:
                extra = _fields(self._prompts[key]) - allowed
            except TemplateError as exc:
                problems.append(str(exc))
                continue
            if extra:
                problems.append(f"prompt {key!r} uses slots the core never passes: {sorted(extra)}")
                continue
            filled = self.prompt(key, **{slot: "x" for slot in allowed - {"bank_name"}})
            problems += _unspeakable(filled, f"prompt {key!r}")
        if problems:
            raise TemplateError("template pack is invalid:\n  - " + "\n  - ".join(problems))


def _unspeakable(text: str, where: str) -> list[str]:
    return [f"{where} would say {bad!r}: {text!r}" for bad in UNSPEAKABLE if bad in text]
