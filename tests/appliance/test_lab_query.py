"""Print queries: every operator and the stack rules."""

import pytest

from appliance.lab.query import QueryError, compile_query

ROWS = [
    {".id": "*1", "name": "alice", "list": "blocked", "n": "5", "disabled": "false"},
    {".id": "*2", "name": "bob", "list": "blocked", "n": "40", "comment": "vip", "disabled": "true"},
    {".id": "*A", "name": "carol", "list": "allowed", "n": "300", "disabled": "false"},
]


def names(*words, booleans=("disabled",)):
    keep = compile_query(words, booleans)
    return [row["name"] for row in ROWS if keep is None or keep(row)]


def test_no_query_keeps_every_row():
    assert compile_query([]) is None
    assert names() == ["alice", "bob", "carol"]


def test_has_and_lacks():
    assert names("?comment") == ["bob"]
    assert names("?-comment") == ["alice", "carol"]


def test_equals_in_both_spellings():
    assert names("?list=blocked") == ["alice", "bob"]
    assert names("?=list=blocked") == ["alice", "bob"]
    assert names("?=comment=") == []  # absent is not equal to empty


def test_equals_takes_yes_no_for_booleans_only():
    assert names("?=disabled=yes") == ["bob"]
    assert names("?=disabled=false") == ["alice", "carol"]
    assert names("?=disabled=no", booleans=()) == []


def test_less_and_greater_compare_numbers_as_numbers():
    assert names("?<n=50") == ["alice", "bob"]  # as strings "300" < "50" too, but 5 and 40 only
    assert names("?>n=40") == ["carol"]


def test_less_and_greater_compare_strings_otherwise():
    assert names("?>name=b") == ["bob", "carol"]
    assert names("?<name=bob") == ["alice"]


def test_ids_compare_as_hex_numbers():
    assert names("?>.id=*2") == ["carol"]  # *A is 10


def test_several_tests_are_all_required():
    assert names("?list=blocked", "?>n=10") == ["bob"]


def test_or():
    assert names("?name=alice", "?name=carol", "?#|") == ["alice", "carol"]


def test_and():
    assert names("?list=blocked", "?comment", "?#&") == ["bob"]


def test_not():
    assert names("?list=blocked", "?#!") == ["carol"]


def test_three_way_or_as_librouteros_writes_in():
    assert names("?=name=alice", "?=name=bob", "?=name=carol", "?#|", "?#|") == ["alice", "bob", "carol"]


def test_dot_pushes_a_copy_of_the_top():
    # copy the top, negate the copy: top and not top can never both be true
    assert names("?list=blocked", "?#.!") == []


def test_index_followed_by_a_character_pushes_a_copy():
    # stack: [blocked, has comment]; "1" pushes a copy of blocked, "!" negates it
    assert names("?list=blocked", "?comment", "?#1!") == []
    # "0|": copy of the top (has comment) or'ed with it: still just has comment
    assert names("?list=blocked", "?comment", "?#0|") == ["bob"]


def test_index_at_end_of_word_replaces_the_stack():
    # [name=alice, list=allowed]: "1" keeps only name=alice
    assert names("?name=alice", "?list=allowed", "?#1") == ["alice"]


def test_dot_after_an_index_is_only_a_separator():
    # "1.0|" pushes copies of index 1 and then (new) index 0, or'ed: same as "1"
    assert names("?name=alice", "?list=allowed", "?#1.0|", "?#0") == ["alice"]


def test_popping_past_the_bottom_gives_true():
    # "|" with one value: or with the endless true below it
    assert names("?name=nobody", "?#|") == ["alice", "bob", "carol"]
    assert names("?#!") == []  # not (endless) true is false


@pytest.mark.parametrize("word", ["?", "?#x", "?<name", "name=x", "?="])
def test_bad_query_words_are_refused(word):
    with pytest.raises(QueryError):
        compile_query([word])
