"""Entity linking: which nodes of the bank's knowledge graph a caller's words are about.

The intent classifier says what a caller wants; the linker says what they talk about
("spare card", "contactless", "the express delivery fee"), so an LLM's ``search_knowledge``
tool reaches the facts meant and speaks them in the pack's own words. Linkable nodes:
products and topics (label, synonyms) and facts (label, the text saying what they are about).

Three ways to link, on one 0-1 scale so they sort together:

- exact, 1.0: a name occurs as a whole phrase in the normalised text. Where phrases
  overlap the longest wins: the "card" inside "virtual card" links nothing by itself.
- fuzzy, about 0.65-0.95: the phrase with ASR damage: a misspelt word ("contactles"), a
  word split or run together ("cash point", "topup"), or the name's words out of order
  ("the fee for a spare card"): 0.95 in order, 0.85 out of order, times the mean word
  similarity (difflib; rapidfuzz is not installed). Words under four letters must be equal.
- embedding: the cosine of the text's and a name's sentence embeddings, given an embedder.
  Threshold 0.55, measured: off-topic chat ("what's the weather in Paris", "tell me a
  joke") stays under about 0.45, real mentions reach 0.6-0.95. Names are embedded once at
  build, so a turn costs one embedding.

Only prepared SPARQL reads the graph, and caller text never reaches a query: bindings are
node IRIs the linker chose, so "} DROP ..." is only words. The linker is synchronous and
may embed, so the dialogue core calls it from a worker thread.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import cache
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from rdflib import Graph, URIRef
from rdflib.namespace import RDFS
from rdflib.plugins.sparql import prepareQuery

from voicebot.dialogue.grounded import GroundedReplies
from voicebot.dialogue.intents import Embed
from voicebot.dialogue.knowledge import BK, Fact, KnowledgeGraph

log = logging.getLogger(__name__)

How = Literal["exact", "fuzzy", "embedding"]

#: Fact properties whose text says what a fact is about, linkable like a label.
ABOUT_PROPERTIES = ("feeFor", "limitOf", "durationOf", "goal", "hoursOf", "listOf", "causesOf")
EMBED_THRESHOLD = 0.55
IN_ORDER, OUT_OF_ORDER = 0.95, 0.85
#: A linked topic is broader than a linked product, so its facts weigh less.
TOPIC_WEIGHT = 0.8
#: Text past this is ignored: a turn is a sentence or two, and the encoder reads 64 tokens.
MAX_CHARS, MAX_TOKENS = 1_000, 64
MIN_FUZZY_LEN = 4
_CACHE_LIMIT = 20_000

#: Words that name nothing: trimmed from names' edges, not needed in out-of-order matches.
_STOPWORD_TEXT = (
    "a an the my your our their his her its i im me we you it is are was were be been am "
    "to of for in on at by with from into about and or but that this these those there "
    "do does did can could would should will shall may might must have has had get got "
    "how what when where which who why whats s t much many please some any"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_NS = {"bk": BK, "rdfs": RDFS}
_ABOUT_VALUES = " ".join(f"bk:{prop}" for prop in ABOUT_PROPERTIES)
_QUERIES = {
    "named": """SELECT ?node ?kind ?label WHERE {
        VALUES ?kind { bk:Product bk:Topic } ?node a ?kind ; rdfs:label ?label }""",
    "synonyms": """SELECT ?node ?name WHERE {
        VALUES ?kind { bk:Product bk:Topic } ?node a ?kind ; bk:synonym ?name }""",
    "facts": """SELECT ?node ?kind ?label WHERE {
        ?kind rdfs:subClassOf bk:Fact . ?node a ?kind ; rdfs:label ?label }""",
    "about": f"SELECT ?node ?name WHERE {{ VALUES ?p {{ {_ABOUT_VALUES} }} ?node ?p ?name }}",
    "Product": "SELECT ?fact WHERE { ?fact bk:appliesTo ?node } ORDER BY ?fact",
    "Topic": """SELECT DISTINCT ?fact WHERE { ?node bk:topicName ?name .
        ?intent a bk:Intent ; bk:topic ?name ; bk:answer ?fact } ORDER BY ?fact""",
}
_NON_WORD = re.compile(r"[\W_]+")


@dataclass(frozen=True, slots=True)
class Link:
    """A graph node the text mentions: IRI, label, kind ("Product", "Topic", "Fee"...)."""

    node: str
    label: str
    kind: str
    score: float
    how: How


@dataclass(frozen=True, slots=True, order=True)
class _Node:
    iri: str
    label: str
    kind: str


@dataclass(frozen=True, slots=True)
class _Name:
    """A way to say a node; ``joined``: its words run together ("topup"), fuzzy at best."""

    node: int
    tokens: tuple[str, ...]
    content: frozenset[str]
    joined: bool = False


@dataclass(slots=True)
class _Hit:
    """One name found in the text: where (token positions), how well, and how."""

    node: int
    positions: frozenset[int]
    score: float
    how: How
    phrase: bool = False


def normalise(text: str) -> list[str]:
    """Casefolded word tokens, split at every mark: "top-up" -> top up, "I'd" -> i d.

    Splitting contractions keeps "I'd" from reading as "ID"; names go through the same
    function, so "hasn't arrived" in the pack still matches "hasn't arrived" said.
    """
    text = unicodedata.normalize("NFKC", text[:MAX_CHARS]).casefold()
    return _NON_WORD.sub(" ", text).split()[:MAX_TOKENS]


def word_similarity(said: str, known: str) -> float:
    """difflib ratio of two words, or 0 when they are too short or too different to confuse.

    The cut-off is stricter for short words: "charge" and "change" differ by one letter
    (0.83) and mean different things, while "contactles" (0.95) is clearly "contactless".
    """
    if said == known:
        return 1.0
    if min(len(said), len(known)) < MIN_FUZZY_LEN:
        return 0.0
    if abs(len(said) - len(known)) >= 2 and (said in known or known in said):
        return 0.0  # another word, not a slip: "change" in "exchange", "with" in "withdraw"
    cutoff = 0.8 if max(len(said), len(known)) >= 8 else 0.85
    if 2 * min(len(said), len(known)) / (len(said) + len(known)) < cutoff:
        return 0.0  # the lengths alone rule it out, without building a matcher
    matcher = SequenceMatcher(None, said, known)
    if matcher.real_quick_ratio() < cutoff or matcher.quick_ratio() < cutoff:
        return 0.0
    ratio = matcher.ratio()
    return ratio if ratio >= cutoff else 0.0


@cache
def _prepared() -> dict[str, Any]:
    """The module's SPARQL, parsed once per process: fixed text, values only as bindings."""
    return {key: prepareQuery(text, initNs=_NS) for key, text in _QUERIES.items()}


def _select(rdf: Graph, key: str, **bindings: Any) -> list[Any]:
    """Rows of one prepared query; ``bindings`` are graph terms, never caller text."""
    return list(rdf.query(_prepared()[key], initBindings=bindings))


def _rdf(graph: KnowledgeGraph) -> Graph:
    """The rdflib graph behind ``graph``, for the linker's own prepared queries."""
    return graph.rdf


class EntityLinker:
    """Links caller text to products, topics and facts, and finds the facts it is about."""

    def __init__(
        self,
        rdf: Graph,
        nodes: Sequence[_Node],
        names: Mapping[int, Sequence[str]],
        facts: Iterable[Fact],
        replies: GroundedReplies,
        embed: Embed | None,
    ) -> None:
        """Use ``build``; this indexes the names and embeds them once."""
        self._rdf, self._replies, self._embed = rdf, replies, embed
        self._nodes = list(nodes)
        self._index = {node.iri: i for i, node in enumerate(self._nodes)}
        self._facts = {fact.node: fact for fact in facts}
        self._names: list[_Name] = []
        by_word: dict[str, set[int]] = defaultdict(set)
        for node, texts in names.items():
            for name in _forms(node, texts):
                for word in name.content:
                    by_word[word].add(len(self._names))
                self._names.append(name)
        self._by_word = dict(by_word)  # a plain dict: lookups must not add words
        self._vocabulary = sorted(self._by_word)
        self._similar: dict[str, list[tuple[str, float]]] = {}
        self._children: dict[int, tuple[int, ...]] = {}
        pairs = sorted({(node, text) for node, texts in names.items() for text in texts})
        self._vector_node = np.array([node for node, _ in pairs], dtype=np.int64)
        self._vectors = _unit_rows(embed([text for _, text in pairs])) if embed else None

    @classmethod
    def build(
        cls, graph: KnowledgeGraph, replies: GroundedReplies, embed: Embed | None = None
    ) -> EntityLinker:
        """Collect every linkable node and its names from ``graph`` (by SPARQL), index them.

        Without ``embed`` the linker still links exact and fuzzy mentions.
        """
        rdf = _rdf(graph)
        rows = [*_select(rdf, "named"), *_select(rdf, "facts")]
        nodes = sorted({_Node(str(r.node), str(r.label), _local(r.kind)) for r in rows})
        index = {node.iri: i for i, node in enumerate(nodes)}
        names: dict[int, list[str]] = {i: [node.label] for i, node in enumerate(nodes)}
        for row in [*_select(rdf, "synonyms"), *_select(rdf, "about")]:
            if str(row.node) in index:
                names[index[str(row.node)]].append(str(row.name))
        return cls(rdf, nodes, names, graph.facts(), replies, embed)

    def __len__(self) -> int:
        """How many nodes can be linked."""
        return len(self._nodes)

    @property
    def name_count(self) -> int:
        """How many names (labels, synonyms, about-texts, run-together forms) are indexed."""
        return len(self._names)

    def link(self, text: str, k: int = 3) -> list[Link]:
        """The ``k`` nodes ``text`` mentions most clearly, best first, one link per node."""
        links, _ = self._score(text)
        ranked = sorted(links.items(), key=lambda item: self._order(*item))
        return [self._link(node, score, how) for node, (score, how, _) in ranked[: max(k, 0)]]

    def facts_about(self, text: str, limit: int = 3) -> list[Fact]:
        """Facts for what ``text`` mentions, most relevant first.

        A linked fact counts with its own score; a linked product brings its facts
        (``bk:appliesTo``), a linked topic the facts answering its intents, each ranked by
        the mean of the parent's score and how well the fact's own names fit the text: so,
        with an embedder, "what does a spare card cost" puts the fee before the limit.
        """
        links, relevance = self._score(text)
        rank: dict[int, float] = {}
        for node, (score, _, _) in links.items():
            kind = self._nodes[node].kind
            if kind not in ("Product", "Topic"):
                rank[node] = max(rank.get(node, 0.0), score)
                continue
            weight = score * (TOPIC_WEIGHT if kind == "Topic" else 1.0)
            for child in self._children_of(node):
                rank[child] = max(rank.get(child, 0.0), (weight + relevance[child]) / 2)
        ordered = sorted(rank, key=lambda node: (-rank[node], self._nodes[node].iri))
        found = [self._facts.get(self._nodes[node].iri) for node in ordered]
        return [fact for fact in found if fact is not None][: max(limit, 0)]

    def search(self, query: str) -> list[str]:
        """Spoken sentences of the facts ``query`` is about: the LLM's knowledge tool.

        Never raises: a tool call with odd arguments gets no facts and a log line, not a
        failed turn.
        """
        try:
            text = query if isinstance(query, str) else str(query)
            return [self._replies.render(fact) for fact in self.facts_about(text)]
        except Exception:  # the query itself is not logged: callers say personal things
            log.exception("knowledge search failed (query type %s)", type(query).__name__)
            return []

    # ------------------------------------------------------------------ scoring

    def _score(self, text: str) -> tuple[dict[int, tuple[float, How, int]], dict[int, float]]:
        """Links above threshold as (score, how, tokens matched), and every node's relevance."""
        links: dict[int, tuple[float, How, int]] = {}
        relevance: dict[int, float] = defaultdict(float)
        tokens = normalise(text)
        if not tokens:
            return links, relevance
        for hit in _longest(self._lexical(tokens, relevance)):
            best = links.get(hit.node)
            if best is None or (hit.score, len(hit.positions)) > (best[0], best[2]):
                links[hit.node] = (hit.score, hit.how, len(hit.positions))
        if self._embed is not None and self._vectors is not None:
            query = _unit_rows(self._embed([" ".join(text[:MAX_CHARS].split())]))[0]
            best_cosine = np.full(len(self._nodes), -1.0, dtype=np.float32)
            np.maximum.at(best_cosine, self._vector_node, self._vectors @ query)
            for node, cosine in enumerate(best_cosine.tolist()):
                relevance[node] = max(relevance[node], cosine)
                known = links.get(node)
                if cosine >= EMBED_THRESHOLD and (known is None or cosine > known[0]):
                    links[node] = (cosine, "embedding", 0)
        return links, relevance

    def _lexical(self, tokens: list[str], relevance: dict[int, float]) -> list[_Hit]:
        """Exact and fuzzy hits of names whose words all appear; partial fits as relevance."""
        found: dict[str, list[tuple[frozenset[int], float]]] = defaultdict(list)
        for i, token in enumerate(tokens):
            for word, similarity in self._close_words(token):
                found[word].append((frozenset({i}), similarity))
        for i in range(len(tokens) - 1):  # a word the recogniser split: "cash point"
            joined = tokens[i] + tokens[i + 1]
            if _joinable(tokens[i], tokens[i + 1]) and joined in self._by_word:
                found[joined].append((frozenset({i, i + 1}), 1.0))
        hits = []
        for index in {name for word in found for name in self._by_word[word]}:
            name = self._names[index]
            present = [max(found[w], key=lambda f: f[1]) for w in name.content if w in found]
            share = sum(similarity for _, similarity in present) / len(name.content)
            relevance[name.node] = max(relevance[name.node], OUT_OF_ORDER * share)
            if len(present) < len(name.content):
                continue
            where = frozenset().union(*(positions for positions, _ in present))
            hit = _phrase(name, tokens) or _Hit(name.node, where, OUT_OF_ORDER * share, "fuzzy")
            relevance[name.node] = max(relevance[name.node], hit.score)
            hits.append(hit)
        return hits

    def _close_words(self, token: str) -> list[tuple[str, float]]:
        """Indexed words that ``token`` may be (itself included), cached across turns."""
        cached = self._similar.get(token)
        if cached is None:
            if len(self._similar) > _CACHE_LIMIT:
                self._similar.clear()
            scored = ((word, word_similarity(token, word)) for word in self._vocabulary)
            cached = self._similar[token] = [(word, sim) for word, sim in scored if sim > 0]
        return cached

    def _children_of(self, node: int) -> tuple[int, ...]:
        """Fact nodes under a product or topic, by prepared SPARQL, remembered per node."""
        cached = self._children.get(node)
        if cached is None:
            iri = URIRef(self._nodes[node].iri)
            rows = _select(self._rdf, self._nodes[node].kind, node=iri)
            found = (self._index.get(str(row.fact)) for row in rows)
            cached = self._children[node] = tuple(i for i in found if i is not None)
        return cached

    def _order(self, node: int, best: tuple[float, How, int]) -> tuple[float, int, int, str]:
        """Best score, then longer match, then product, fact, topic (narrow to broad), label."""
        breadth = {"Product": 0, "Topic": 2}.get(self._nodes[node].kind, 1)
        return (-best[0], -best[2], breadth, self._nodes[node].label)

    def _link(self, node: int, score: float, how: How) -> Link:
        item = self._nodes[node]
        return Link(item.iri, item.label, item.kind, round(score, 4), how)


def _forms(node: int, texts: Iterable[str]) -> list[_Name]:
    """Index forms of a node's names, trimmed of edge stopwords ("a virtual card"), plus
    a run-together form of short ones ("topup" for "top up")."""
    forms = []
    for text in dict.fromkeys(texts):
        tokens = normalise(text)
        while len(tokens) > 1 and tokens[0] in STOPWORDS:
            tokens = tokens[1:]
        while len(tokens) > 1 and tokens[-1] in STOPWORDS:
            tokens = tokens[:-1]
        if not tokens:
            continue
        content = frozenset(t for t in tokens if t not in STOPWORDS) or frozenset(tokens)
        forms.append(_Name(node, tuple(tokens), content))
        if 2 <= len(tokens) <= 3:
            joined = "".join(tokens)
            forms.append(_Name(node, (joined,), frozenset({joined}), joined=True))
    return forms


def _phrase(name: _Name, tokens: list[str]) -> _Hit | None:
    """The best in-order, contiguous occurrence of ``name`` in ``tokens``, or None.

    Each word of the name takes one token (similar enough; stopwords must be equal) or two
    tokens that run together into it ("cash point" for "cashpoint").
    """
    best: _Hit | None = None
    for start in range(len(tokens)):
        at, similarities, split = start, [], False
        for word in name.tokens:
            if at < len(tokens) and tokens[at] == word:
                similarities.append(1.0)
                at += 1
            elif (
                at + 1 < len(tokens)
                and tokens[at] + tokens[at + 1] == word
                and _joinable(tokens[at], tokens[at + 1])
            ):
                similarities.append(1.0)
                at, split = at + 2, True
            elif at < len(tokens) and word not in STOPWORDS:
                similarities.append(word_similarity(tokens[at], word))
                at += 1
                if not similarities[-1]:
                    break
            else:
                break
        else:
            mean = sum(similarities) / len(similarities)
            exact = mean == 1.0 and not split and not name.joined
            score = 1.0 if exact else IN_ORDER * mean
            if best is None or score > best.score:
                how: How = "exact" if exact else "fuzzy"
                best = _Hit(name.node, frozenset(range(start, at)), score, how, phrase=True)
    return best


def _joinable(first: str, second: str) -> bool:
    """Whether two tokens may be one word the recogniser split ("cash point", not "i d")."""
    return min(len(first), len(second)) >= 2 and len(first) + len(second) >= MIN_FUZZY_LEN + 1


def _longest(hits: list[_Hit]) -> list[_Hit]:
    """Drop hits that sit strictly inside a phrase hit: "virtual card" hides its "card"."""
    phrases = [hit.positions for hit in hits if hit.phrase]
    return [hit for hit in hits if not any(hit.positions < span for span in phrases)]


def _unit_rows(vectors: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Rows scaled to unit length, so a dot product is a cosine whatever the embedder."""
    array = np.asarray(vectors, dtype=np.float32)
    array = array.reshape(1, -1) if array.ndim == 1 else array
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    unit: npt.NDArray[np.float32] = array / np.maximum(norms, 1e-12)
    return unit


def _local(iri: object) -> str:
    return str(iri).rsplit("#", 1)[-1]
