"""Customer search: the trigram index and the walk in name order find the same customers."""

import pytest

from core import customers
from core.models import Customer
from tests.factories import make_customer

QUERIES = ("wanjiru", "WANJ", "iru k", "a0000", "@example.org", "0722", "722 333 4", "nj", "100%", '"quoted"',
           "snake_", "Ö", "zzz-nothing")


@pytest.fixture
def people(db):
    rows = [("Wanjiru Kamau", "wanjiru@example.org", "+254 722 333 444"),
            ("Kamau Wanjiru", "kamau@example.net", "0722 333 555"),
            ("100% Fibre Ltd", None, None),
            ('The "quoted" Shop', "shop@example.org", None),
            ("snake_case Inc", "snake@example.com", "0733 000 000"),
            ("snakeXcase Inc", None, None),
            ("Öztürk Ayşe", "ayse@example.de", None)]
    return [make_customer(name=n, email=e, phone=p) for n, e, p in rows]


def _names(query):
    return [c.name for c in customers.search(query)]


def test_the_index_and_the_walk_agree(people, monkeypatch):
    by_index = {q: _names(q) for q in QUERIES}
    monkeypatch.setattr(customers, "SEARCH_COMMON", 1)  # every text counts as common: the walk answers
    by_walk = {q: _names(q) for q in QUERIES}
    assert by_index == by_walk
    assert by_index["wanjiru"] == ["Kamau Wanjiru", "Wanjiru Kamau"]
    assert by_index["iru k"] == ["Wanjiru Kamau"]
    assert by_index["@example.org"] == ['The "quoted" Shop', "Wanjiru Kamau"]
    assert by_index["722 333 4"] == ["Wanjiru Kamau"] and by_index["0722"] == ["Kamau Wanjiru"]
    assert by_index["100%"] == ["100% Fibre Ltd"] and by_index["snake_"] == ["snake_case Inc"]
    assert by_index['"quoted"'] == ['The "quoted" Shop']
    assert by_index["zzz-nothing"] == []


def test_the_index_follows_changes(people):
    wanjiru = people[0]
    customers.update_contact(wanjiru, {"name": "Achieng Otieno", "email": "achieng@example.org"})
    assert _names("wanjiru") == ["Kamau Wanjiru"]
    assert _names("achieng") == ["Achieng Otieno"] and _names("achieng@") == ["Achieng Otieno"]
    Customer.delete().where(Customer.id == people[5].id).execute()
    assert _names("snakeX") == []
    added = make_customer(name="Njeri Mwangi")
    assert [c.id for c in customers.search("njeri")] == [added.id]


def test_limit_and_offset_page_through_matches(db):
    for i in range(7):
        make_customer(name=f"Pager {i}")
    first = [c.name for c in customers.search("pager", limit=3)]
    second = [c.name for c in customers.search("pager", limit=3, offset=3)]
    assert first == ["Pager 0", "Pager 1", "Pager 2"] and second == ["Pager 3", "Pager 4", "Pager 5"]
