"""The customer accounts graph: credentials, per-customer views and actions."""

from __future__ import annotations

from datetime import date

import pytest

from voicebot.dialogue.accounts import AccountError, AccountStore, Verified
from voicebot.dialogue.core import DOMAIN_ROOT
from voicebot.dialogue.knowledge import PackError

CUSTOMERS = DOMAIN_ROOT / "bank" / "customers"


@pytest.fixture
def store() -> AccountStore:
    return AccountStore.load(CUSTOMERS)


def test_verification_needs_the_account_and_a_matching_secret(store):
    assert store.verify("12345678", birth_date=date(1985, 3, 14)) is not None
    assert store.verify("12345678", pin="4321") is not None
    assert store.verify("12345678", birth_date=date(1985, 3, 15)) is None
    assert store.verify("12345678", pin="1234") is None
    assert store.verify("12345678") is None
    assert store.verify("00000000", birth_date=date(1985, 3, 14)) is None
    # Another customer's date of birth does not open this account.
    assert store.verify("12345678", birth_date=date(1979, 11, 2)) is None


def test_a_view_shows_only_its_own_customer(store):
    alex = store.verify("12345678", pin="4321")
    priya = store.verify("87654321", pin="9052")
    assert alex is not None and priya is not None
    alex_view, priya_view = store.view(alex), store.view(priya)
    assert alex_view.name() != priya_view.name()
    assert {c.ending for c in alex_view.cards()}.isdisjoint(c.ending for c in priya_view.cards())
    alex_nodes = {t.node for t in alex_view.transactions(100)}
    assert alex_nodes.isdisjoint(t.node for t in priya_view.transactions(100))
    with pytest.raises(AccountError):
        alex_view.open_dispute(priya_view.transactions(1)[0])


def test_credentials_cannot_be_forged_or_moved_between_stores(store):
    alex = store.verify("12345678", pin="4321")
    assert alex is not None
    with pytest.raises(PermissionError):
        store.view(Verified(alex.customer, alex.method, "0" * 64))
    with pytest.raises(PermissionError):
        store.view(Verified("https://voicebot.dev/ns/customers#c1002", alex.method, alex.seal))
    other = AccountStore.load(CUSTOMERS)  # a new process: a new key
    with pytest.raises(PermissionError):
        other.view(alex)


def test_freezing_changes_the_card_once(store):
    alex = store.verify("12345678", pin="4321")
    assert alex is not None
    view = store.view(alex)
    ending = view.cards()[0].ending
    result = view.freeze_card(ending)
    assert result.action == "freeze_card" and result.target == ending
    assert view.cards()[0].status == "frozen"
    with pytest.raises(AccountError):
        view.freeze_card(ending)
    with pytest.raises(AccountError):
        view.freeze_card("0000")


def test_transactions_are_newest_first(store):
    alex = store.verify("12345678", pin="4321")
    assert alex is not None
    days = [t.day for t in store.view(alex).transactions(10)]
    assert days == sorted(days, reverse=True) and len(days) >= 3


def test_an_empty_directory_is_a_clear_error(tmp_path):
    with pytest.raises(PackError, match="no customer data"):
        AccountStore.load(tmp_path)
    (tmp_path / "bad.ttl").write_text("this is not turtle")
    with pytest.raises(PackError, match="not valid Turtle"):
        AccountStore.load(tmp_path)
