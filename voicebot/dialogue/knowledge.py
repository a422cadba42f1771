"""The bank's knowledge graph: Turtle files in, SPARQL answers out.

A domain pack is a directory of Turtle files (see ``domain/bank``). It is parsed once at
start-up into one rdflib graph and checked against the pack's own schema
(``schema.ttl``: which properties each class needs, which properties are single-valued,
which datatypes they carry), so a typo in the data stops the bot before the first call
instead of producing a wrong or empty answer mid-call.

SPARQL is the only way facts leave the graph. Queries are fixed strings prepared once;
anything that comes from a caller or a classifier (an intent name) is passed as an
``initBindings`` value, never spliced into query text, so it cannot change the query.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import OWL, RDF, RDFS, XSD
from rdflib.plugins.sparql import prepareQuery
from rdflib.term import Node

BK = Namespace("https://voicebot.dev/ns/bank#")
DEFAULT_PACK = Path(__file__).parent / "domain" / "bank"

_NS = {"bk": BK, "rdf": RDF, "rdfs": RDFS, "owl": OWL, "xsd": XSD}
_MAX_ANSWER_FACTS = 3


class PackError(ValueError):
    """A domain pack cannot be used: unreadable Turtle or data that breaks the schema."""


class UnknownIntent(KeyError):
    """The graph has no intent of that name (a classifier/pack mismatch, or hostile input)."""

    def __init__(self, intent: str) -> None:
        super().__init__(intent)
        self.intent = intent

    def __str__(self) -> str:
        return f"no intent named {self.intent!r} in the knowledge graph"


@dataclass(frozen=True, slots=True)
class Fact:
    """One fact node as plain strings, so templates and LLM prompts never touch rdflib.

    ``values`` maps a property's local name (``feeFor``, ``amount``, ``label``...) to its
    literal values, sorted so that rendering is deterministic; ``steps`` holds a
    procedure's step texts in their ``bk:order``.
    """

    node: str
    kind: str
    values: Mapping[str, tuple[str, ...]]
    steps: tuple[str, ...] = ()

    def __hash__(self) -> int:
        return hash((self.node, self.kind, tuple(sorted(self.values.items())), self.steps))

    @property
    def name(self) -> str:
        """The node's local name, e.g. ``fee_atm`` (what ``bk:answerOrder`` lists)."""
        return _local(self.node)

    def first(self, prop: str) -> str | None:
        """The single value of a functional property, or None when it is absent."""
        found = self.values.get(prop, ())
        return found[0] if found else None


def _sort_key(text: str) -> tuple[str, str]:
    """Case-insensitive order, so "euros" sits between "Canadian dollars" and "Japanese yen"."""
    return (text.casefold(), text)


def _local(iri: object) -> str:
    text = str(iri)
    return text.rsplit("#", 1)[-1] if "#" in text else text.rsplit("/", 1)[-1]


_FACT_BODY = """
    ?fact a ?kind . ?kind rdfs:subClassOf bk:Fact .
    ?fact ?p ?o . FILTER(isLiteral(?o))
"""
_STEP_BODY = """
    ?fact a ?kind . ?kind rdfs:subClassOf bk:Fact .
    ?fact bk:step ?step . ?step bk:order ?n ; bk:text ?text .
"""
_QUERIES = {
    "intents": "SELECT ?name WHERE { ?i a bk:Intent ; bk:intentName ?name } ORDER BY ?name",
    "intent": """SELECT ?label ?topic ?order WHERE {
        ?i a bk:Intent ; bk:intentName ?name ; rdfs:label ?label ;
           bk:topic ?topic ; bk:answerOrder ?order } ORDER BY ?label""",
    "answers": "SELECT ?fact WHERE { ?i a bk:Intent ; bk:intentName ?name ; bk:answer ?fact }",
    "fact_values": "SELECT ?fact ?kind ?p ?o WHERE {" + _FACT_BODY + "}",
    "fact_steps": "SELECT ?fact ?n ?text WHERE {" + _STEP_BODY + "} ORDER BY ?fact ?n",
    "bank": "SELECT ?name WHERE { ?b a bk:Bank ; rdfs:label ?name } ORDER BY ?name",
    "contacts": "SELECT ?fact WHERE { ?b a bk:Bank ; bk:contactPoint ?fact } ORDER BY ?fact",
    "fact_kinds": "SELECT ?kind WHERE { ?kind rdfs:subClassOf bk:Fact } ORDER BY ?kind",
}


class KnowledgeGraph:
    """A loaded, validated domain pack, answering the dialogue core's questions."""

    def __init__(self, graph: Graph, source: str = "<graph>") -> None:
        """Wrap an already-parsed graph; raises PackError when it breaks the schema."""
        self._graph = graph
        self._q = {key: prepareQuery(text, initNs=_NS) for key, text in _QUERIES.items()}
        _validate(graph, source)

    @classmethod
    def load(cls, pack_dir: Path = DEFAULT_PACK) -> KnowledgeGraph:
        """Parse every ``*.ttl`` in ``pack_dir`` (in name order) and validate the result."""
        files = sorted(Path(pack_dir).glob("*.ttl"))
        if not files:
            raise PackError(f"domain pack {pack_dir} has no .ttl files")
        graph = Graph()
        for path in files:
            try:
                graph.parse(path, format="turtle")
            except Exception as exc:  # rdflib raises several unrelated types
                raise PackError(f"{path}: not valid Turtle: {exc}") from exc
        return cls(graph, source=str(pack_dir))

    @property
    def rdf(self) -> Graph:
        """The parsed graph, for components that run their own prepared SPARQL queries
        (entity linking). Callers must bind caller text as values, never splice it."""
        return self._graph

    # ------------------------------------------------------------------ queries

    def _select(self, key: str, **bindings: Any) -> list[Any]:
        return list(self._graph.query(self._q[key], initBindings=bindings))

    def intents(self) -> list[str]:
        """Every intent name in the pack, sorted."""
        return [str(row.name) for row in self._select("intents")]

    def _intent_row(self, intent: str) -> Any:
        rows = self._select("intent", name=Literal(intent))
        if not rows:
            raise UnknownIntent(intent)
        return rows[0]

    def intent_label(self, intent: str) -> str:
        """A short noun phrase for confirming or clarifying ("a lost or stolen card")."""
        return str(self._intent_row(intent).label)

    def intent_topic(self, intent: str) -> str:
        """The intent's broad topic ("cards", "transfers"...), for menus and routing."""
        return str(self._intent_row(intent).topic)

    def facts_for_intent(self, intent: str) -> list[Fact]:
        """The facts that answer ``intent``, in the speaking order of ``bk:answerOrder``."""
        order = str(self._intent_row(intent).order).split()
        facts = {
            fact.name: fact
            for row in self._select("answers", name=Literal(intent))
            for fact in self._facts(fact=row.fact)
        }
        return [facts[name] for name in order]

    def facts(self) -> list[Fact]:
        """Every fact node in the pack, sorted by IRI (used to validate templates)."""
        return self._facts()

    def fact_kinds(self) -> list[str]:
        """Local names of the fact classes the schema declares ("Fee", "Limit"...)."""
        return [_local(row.kind) for row in self._select("fact_kinds")]

    def bank_name(self) -> str:
        """The bank's spoken name, for greetings and goodbyes."""
        return str(self._select("bank")[0].name)

    def contact_points(self) -> list[Fact]:
        """Where and when callers reach the bank's people (``bk:contactPoint``), by IRI."""
        return [fact for row in self._select("contacts") for fact in self._facts(fact=row.fact)]

    def _facts(self, **bindings: Any) -> list[Fact]:
        values: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        kinds: dict[str, str] = {}
        for row in self._select("fact_values", **bindings):
            node = str(row.fact)
            kinds[node] = _local(row.kind)
            values[node][_local(row.p)].append(str(row.o))
        steps: dict[str, list[str]] = defaultdict(list)
        for row in self._select("fact_steps", **bindings):
            steps[str(row.fact)].append(str(row.text))
        return [
            Fact(
                node=node,
                kind=kinds[node],
                values=MappingProxyType(
                    {p: tuple(sorted(v, key=_sort_key)) for p, v in sorted(values[node].items())}
                ),
                steps=tuple(steps.get(node, ())),
            )
            for node in sorted(kinds)
        ]


# ---------------------------------------------------------------------- validation
#
# The checks walk triples with rdflib's graph API rather than SPARQL: the same checks as
# SPARQL queries took about 2 s on this pack (rdflib's engine is slow at whole-graph
# joins), and start-up must stay well under a second. Answers still come only via SPARQL.


def _name(term: object) -> str:
    """A term as a reader of the Turtle files writes it: ``bk:fee_atm``, ``xsd:decimal``."""
    for prefix, namespace in _NS.items():
        if str(term).startswith(str(namespace)):
            return f"{prefix}:{str(term)[len(str(namespace)) :]}"
    return str(term)


def _validate(graph: Graph, source: str) -> None:
    """Collect every problem in the pack and raise them together, so one run fixes all."""
    problems = [
        *_check_requirements(graph),
        *_check_values(graph),
        *_check_terms(graph),
        *_check_steps(graph),
        *_check_intents(graph),
    ]
    banks = set(graph.subjects(RDF.type, BK.Bank))
    if len(banks) != 1:
        problems.append(f"the pack needs exactly one bk:Bank, found {len(banks)}")
    if problems:
        listed = "\n  - ".join(sorted(set(problems)))
        raise PackError(f"domain pack {source} is invalid:\n  - {listed}")


def _instances(graph: Graph, cls: Node) -> set[Node]:
    """Nodes typed with ``cls`` or one of its subclasses."""
    classes = set(graph.transitive_subjects(RDFS.subClassOf, cls))
    return {node for c in classes for node in graph.subjects(RDF.type, c)}


def _check_requirements(graph: Graph) -> list[str]:
    """``bk:requires`` groups: each node needs enough values among the listed properties."""
    problems = []
    for kind, group in graph.subject_objects(BK.requires):
        props = sorted(graph.objects(group, BK.anyOf), key=str)
        need = _count(graph.value(group, BK.minCount)) or 1
        most = _count(graph.value(group, BK.maxCount))
        wanted = " or ".join(_name(p) for p in props)
        for node in _instances(graph, kind):
            found = {value for prop in props for value in graph.objects(node, prop)}
            where = f"{_name(node)} ({_local(kind)})"
            if len(found) < need:
                many = f"at least {need} values of " if need > 1 else ""
                problems.append(f"{where} needs {many}{wanted}")
            if most is not None and len(found) > most:
                problems.append(f"{where} may have only {most} of {wanted}")
    return problems


def _count(value: Node | None) -> int | None:
    """An xsd:integer schema setting (bk:minCount, bk:maxCount), or None when unset."""
    if isinstance(value, Literal) and isinstance(value.value, int):
        return value.value
    return None


def _check_values(graph: Graph) -> list[str]:
    """Single-valued properties, literal datatypes, duration ranges, one class per fact."""
    problems = []
    for prop in graph.subjects(RDF.type, OWL.FunctionalProperty):
        for node in set(graph.subjects(prop, None)):
            if len(set(graph.objects(node, prop))) > 1:
                problems.append(f"{_name(node)} has more than one {_name(prop)}")
    for prop, datatype in graph.subject_objects(RDFS.range):
        allowed = {datatype} | ({XSD.integer} if datatype == XSD.decimal else set())
        for node, value in graph.subject_objects(prop):
            where = f"{_name(node)} {_name(prop)}"
            if not isinstance(value, Literal) or value.datatype not in allowed:
                problems.append(f"{where} must be {_name(datatype)}")
            elif value.ill_typed or (datatype == XSD.boolean and value.value is not True):
                problems.append(f"{where} has a bad value {value!s}")
    for node in graph.subjects(RDF.type, BK.Duration):
        low, high = graph.value(node, BK.minValue), graph.value(node, BK.maxValue)
        if isinstance(low, Literal) and isinstance(high, Literal) and low.value > high.value:
            problems.append(f"{_name(node)} has bk:minValue above bk:maxValue")
    kinds = set(graph.subjects(RDFS.subClassOf, BK.Fact))
    for node in _instances(graph, BK.Fact):
        count = len(set(graph.objects(node, RDF.type)) & kinds)
        if count != 1:
            problems.append(f"{_name(node)} has {count} fact classes; it needs exactly one")
    return problems


def _check_terms(graph: Graph) -> list[str]:
    """Catch typos: every bk: term is declared, links point at the right kind, labels exist."""
    problems = []
    typed = set(graph.subjects(RDF.type, None))
    classes = set(graph.subjects(RDF.type, RDFS.Class))
    facts, products = _instances(graph, BK.Fact), set(graph.subjects(RDF.type, BK.Product))
    for subject, prop, value in graph:
        if str(prop).startswith(str(BK)) and prop not in typed:
            problems.append(f"{_name(prop)} is used but never declared (a typo?)")
        if prop == RDF.type and str(value).startswith(str(BK)) and value not in classes:
            problems.append(f"{_name(value)} is used as a class but never declared (a typo?)")
        if (
            isinstance(value, URIRef)
            and str(value).startswith(str(BK))
            and (value, None, None) not in graph
        ):
            problems.append(f"{_name(value)} is linked from {_name(subject)} but not defined")
        if prop == BK.answer and value not in facts:
            problems.append(f"{_name(subject)} bk:answer {_name(value)} is not a fact")
        if prop == BK.appliesTo and value not in products:
            problems.append(f"{_name(subject)} bk:appliesTo {_name(value)} is not a product")
    for node in typed:
        if isinstance(node, URIRef) and (node, RDFS.label, None) not in graph:
            problems.append(f"{_name(node)} has no rdfs:label")
    return problems


def _check_steps(graph: Graph) -> list[str]:
    """Every procedure step has a position and a text, and positions do not repeat."""
    problems = []
    orders: dict[str, list[int]] = defaultdict(list)
    for node, step in graph.subject_objects(BK.step):
        order, text = graph.value(step, BK.order), graph.value(step, BK.text)
        if not isinstance(step, BNode | URIRef) or order is None or text is None:
            problems.append(f"{_name(node)} has a step without bk:order and bk:text")
        elif isinstance(order, Literal) and isinstance(order.value, int):
            orders[_name(node)].append(order.value)
    for where, numbers in orders.items():
        if len(set(numbers)) != len(numbers):
            problems.append(f"{where} has two steps with the same bk:order")
    return problems


def _check_intents(graph: Graph) -> list[str]:
    """Intent names are unique, topics are known, and answerOrder names exactly the answers."""
    problems = []
    topics = {str(name) for name in graph.objects(None, BK.topicName)}
    owner: dict[str, str] = {}
    for node in graph.subjects(RDF.type, BK.Intent):
        where = _name(node)
        for intent in map(str, graph.objects(node, BK.intentName)):
            if intent in owner:
                problems.append(f"{where} and {owner[intent]} share the name {intent!r}")
            owner[intent] = where
        for topic in map(str, graph.objects(node, BK.topic)):
            if topic not in topics:
                problems.append(f"{where} has topic {topic!r}, which no bk:Topic names")
        answers = {_local(fact) for fact in graph.objects(node, BK.answer)}
        order = str(graph.value(node, BK.answerOrder, default=Literal(""))).split()
        if len(order) != len(set(order)) or set(order) != answers:
            problems.append(f"{where} bk:answerOrder does not list exactly its bk:answer facts")
        if len(answers) > _MAX_ANSWER_FACTS:
            problems.append(f"{where} has more than {_MAX_ANSWER_FACTS} answer facts")
    return problems
