"""Customer accounts: a separate graph that opens only for the caller verified in this call.

The public knowledge graph answers anyone; account facts (balances, cards,
transactions) live in their own rdflib graph (``customers/*.ttl`` in the domain pack)
behind `AccountStore`. The only way to read them is an `AccountView`, and the only way
to get a view is to present a `Verified` credential that `verify` issued: it carries an
HMAC of the customer's node under a key made fresh for each process, so a credential
cannot be forged from text, carried over from another process, or built by hand in the
dialogue state. The view is scoped to that one customer: every query binds the
customer node, so no query can return another customer's data.

Actions (freeze a card, order a replacement, open a dispute) change this in-memory
graph under a lock and are returned as `ActionResult` for the call's event log. A real
deployment would put a core-banking API behind the same methods.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
import threading
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.plugins.sparql import prepareQuery

from voicebot.dialogue.knowledge import BK, PackError

CU = Namespace("https://voicebot.dev/ns/customers#")
_NS = {"bk": BK, "cu": CU}
PIN_ROUNDS = 100_000
_QUERIES = {
    "by_account": "SELECT ?c ?dob ?pin WHERE { ?c a bk:Customer ; bk:accountNumber ?acct ;"
    " bk:dateOfBirth ?dob ; bk:pinHash ?pin }",
    "profile": "SELECT ?name ?acct ?balance ?available WHERE { ?c bk:fullName ?name ;"
    " bk:accountNumber ?acct ; bk:balance ?balance ; bk:availableBalance ?available }",
    "cards": "SELECT ?card ?ending ?status ?kind WHERE { ?c bk:hasCard ?card ."
    " ?card bk:cardEnding ?ending ; bk:cardStatus ?status ; bk:cardKind ?kind } ORDER BY ?ending",
    "transactions": "SELECT ?t ?day ?merchant ?amount ?direction WHERE { ?c bk:hasTransaction ?t ."
    " ?t bk:onDate ?day ; bk:merchant ?merchant ; bk:amount ?amount ; bk:direction ?direction }"
    " ORDER BY DESC(?day) ?t",
}


class AccountError(ValueError):
    """An account action that cannot be done (no such card, already frozen...)."""


@dataclass(frozen=True, slots=True)
class Verified:
    """Proof that this call's caller passed identity verification, issued by the store."""

    customer: str
    method: str
    seal: str


@dataclass(frozen=True, slots=True)
class Card:
    """One of the customer's cards."""

    node: str
    ending: str
    status: str
    kind: str


@dataclass(frozen=True, slots=True)
class Transaction:
    """One transaction on the customer's account."""

    node: str
    day: date
    merchant: str
    amount: Decimal
    outgoing: bool


@dataclass(frozen=True, slots=True)
class Balance:
    """Ledger and available balance, in pounds."""

    balance: Decimal
    available: Decimal


@dataclass(frozen=True, slots=True)
class ActionResult:
    """An account action that was carried out, for the call's record."""

    action: str
    target: str
    reference: str


class AccountStore:
    """The customers graph, credentials for verified callers, and account actions."""

    def __init__(self, graph: Graph) -> None:
        self._graph = graph
        self._q = {key: prepareQuery(text, initNs=_NS) for key, text in _QUERIES.items()}
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._references = itertools.count(1001)

    @classmethod
    def load(cls, directory: Path) -> AccountStore:
        """Parse every ``*.ttl`` in `directory` (the pack's ``customers/``)."""
        graph = Graph()
        files = sorted(Path(directory).glob("*.ttl"))
        if not files:
            raise PackError(f"no customer data (*.ttl) in {directory}")
        for path in files:
            try:
                graph.parse(path, format="turtle")
            except Exception as exc:  # rdflib raises several unrelated types
                raise PackError(f"{path}: not valid Turtle: {exc}") from exc
        return cls(graph)

    def _rows(self, key: str, **bindings: Any) -> list[Any]:
        return list(self._graph.query(self._q[key], initBindings=bindings))

    def _seal(self, customer: str, method: str) -> str:
        message = f"{customer}|{method}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def account_exists(self, account_number: str) -> bool:
        """Whether an account number is known (to ask again on a mistyped number).

        Only says yes or no; reveals nothing else about the account."""
        return bool(self._rows("by_account", acct=Literal(account_number)))

    def verify(
        self, account_number: str, *, birth_date: date | None = None, pin: str | None = None
    ) -> Verified | None:
        """A credential when the account number and the date of birth or PIN match."""
        rows = self._rows("by_account", acct=Literal(account_number))
        if not rows or (birth_date is None and pin is None):
            return None
        customer, dob, pin_hash = str(rows[0].c), rows[0].dob.toPython(), str(rows[0].pin)
        if pin is not None:
            salt = f"nb-{account_number}".encode()
            given = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, PIN_ROUNDS).hex()
            if not hmac.compare_digest(given, pin_hash):
                return None
            method = "account number and PIN"
        else:
            if birth_date != dob:
                return None
            method = "account number and date of birth"
        return Verified(customer, method, self._seal(customer, method))

    def view(self, verified: Verified) -> AccountView:
        """The verified customer's accounts; a credential this store did not issue fails."""
        if not hmac.compare_digest(verified.seal, self._seal(verified.customer, verified.method)):
            raise PermissionError("account access refused: credential not issued by this store")
        return AccountView(self, URIRef(verified.customer))


class AccountView:
    """Read and act on one verified customer's account; every query binds that customer."""

    def __init__(self, store: AccountStore, customer: URIRef) -> None:
        self._store = store
        self._customer = customer

    def _rows(self, key: str) -> list[Any]:
        return self._store._rows(key, c=self._customer)

    def name(self) -> str:
        """The customer's full name."""
        return str(self._rows("profile")[0].name)

    def balance(self) -> Balance:
        """Ledger and available balance."""
        row = self._rows("profile")[0]
        return Balance(Decimal(str(row.balance)), Decimal(str(row.available)))

    def cards(self) -> list[Card]:
        """The customer's cards, by card ending."""
        return [
            Card(str(r.card), str(r.ending), str(r.status), str(r.kind))
            for r in self._rows("cards")
        ]

    def transactions(self, limit: int = 3) -> list[Transaction]:
        """The most recent transactions, newest first."""
        return [
            Transaction(
                str(r.t),
                r.day.toPython(),
                str(r.merchant),
                Decimal(str(r.amount)),
                str(r.direction) == "out",
            )
            for r in self._rows("transactions")[:limit]
        ]

    def _card(self, ending: str | None) -> Card:
        cards = self.cards()
        chosen = [c for c in cards if ending is None or c.ending == ending]
        if not chosen:
            raise AccountError(f"no card ending {ending}")
        return chosen[0]

    def freeze_card(self, ending: str | None = None) -> ActionResult:
        """Freeze a card (the first card when no ending is given)."""
        card = self._card(ending)
        with self._store._lock:
            if card.status == "frozen":
                raise AccountError(f"card ending {card.ending} is already frozen")
            self._store._graph.set((URIRef(card.node), BK.cardStatus, Literal("frozen")))
            reference = f"F{next(self._store._references)}"
        return ActionResult("freeze_card", card.ending, reference)

    def order_replacement(self, ending: str | None = None) -> ActionResult:
        """Order a replacement for a card."""
        card = self._card(ending)
        with self._store._lock:
            reference = f"R{next(self._store._references)}"
        return ActionResult("order_replacement", card.ending, reference)

    def open_dispute(self, transaction: Transaction) -> ActionResult:
        """Open a dispute for one of this customer's transactions."""
        owned = {t.node for t in self.transactions(limit=100)}
        if transaction.node not in owned:
            raise AccountError("that transaction is not on this account")
        with self._store._lock:
            reference = f"D{next(self._store._references)}"
        return ActionResult("open_dispute", transaction.node.rsplit("#", 1)[-1], reference)
