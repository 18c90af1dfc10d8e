"""The enforcer's reader of RouterOS API replies, against hand-written bytes fed in every kind of piece."""

from __future__ import annotations

import random
from collections import deque

import pytest
from librouteros.exceptions import ConnectionClosed
from librouteros.protocol import encode_sentence as librouteros_sentence

from plugins.mikrotik.wire import Wire, attribute, attributes, encode, encode_length, words_of

LENGTHS = [
    (0, b"\x00"),
    (0x7F, b"\x7f"),
    (0x80, b"\x80\x80"),
    (0x3FFF, b"\xbf\xff"),
    (0x4000, b"\xc0\x40\x00"),
    (0x1FFFFF, b"\xdf\xff\xff"),
    (0x200000, b"\xe0\x20\x00\x00"),
    (0xFFFFFFF, b"\xef\xff\xff\xff"),
    (0x10000000, b"\xf0\x10\x00\x00\x00"),
]


class FakeSocket:
    """Hands out a byte stream in the given pieces, then reports the connection closed."""

    def __init__(self, data: bytes, sizes=None):
        self.pieces = deque()
        pos = 0
        sizes = iter(sizes or ())
        while pos < len(data):
            size = next(sizes, len(data) - pos)
            self.pieces.append(data[pos:pos + size])
            pos += size
        self.sent = b""

    def recv(self, _size):
        return self.pieces.popleft() if self.pieces else b""

    def sendall(self, data):
        self.sent += data


def wire(data: bytes, sizes=None) -> Wire:
    return Wire(FakeSocket(data, sizes))


def one_byte_at_a_time(data: bytes) -> Wire:
    return wire(data, [1] * len(data))


def row(*words: str) -> bytes:
    return encode(words)[:-1]


def reply_of(*sentences) -> bytes:
    return b"".join(encode(words) for words in sentences)


@pytest.mark.parametrize(("length", "prefix"), LENGTHS)
def test_length_prefixes_in_every_form(length, prefix):
    assert encode_length(length) == prefix


def test_a_length_past_four_bytes_cannot_be_encoded():
    with pytest.raises(ValueError):
        encode_length(0x100000000)


@pytest.mark.parametrize("size", [0, 1, 0x7F, 0x80, 0x3FFF, 0x4000, 0x1FFFFF, 0x200000])
def test_words_of_every_length_form_read_back(size):
    text = "x" * size
    data = row("=comment=" + text, "=name=a")
    assert words_of(data) == ["=comment=" + text, "=name=a"]
    # and through a reply, cut into small pieces
    piece = 3 if size < 0x4000 else 997
    got = wire(reply_of(["!re", "=comment=" + text], ["!done"]), [piece] * (size // piece + 10)).reply()
    assert [attributes(r) for r in got.rows] == [{"comment": text}]


def test_sentences_are_encoded_as_librouteros_encodes_them():
    words = ("/ip/firewall/address-list/print", "=.proplist=.id,list", "?list=unpaid", "=comment=" + "é" * 200)
    assert encode(words) == librouteros_sentence(*words, encoding="utf-8")


def test_the_five_byte_form_and_longer_forms_than_needed_are_read():
    data = b"\xf0\x00\x00\x00\x06=a=one" + b"\x80\x06=b=two" + b"\xc0\x00\x08=c=three"
    assert words_of(data) == ["=a=one", "=b=two", "=c=three"]
    # "!re" itself written in a longer form than needed is still a row
    stream = b"\x80\x03!re" + data + b"\x00" + encode(["!done"])
    assert [attributes(r) for r in wire(stream).reply().rows] == [{"a": "one", "b": "two", "c": "three"}]


def test_rows_then_done_with_attributes():
    stream = reply_of(["!re", "=.id=*1", "=name=a"], ["!re", "=.id=*2", "=name=", "=comment=x=y"], ["!done", "=ret=*3"])
    got = wire(stream).reply()
    assert [attributes(r) for r in got.rows] == [{".id": "*1", "name": "a"},
                                                 {".id": "*2", "name": "", "comment": "x=y"}]
    assert got.done == ["=ret=*3"] and got.traps == []


def test_a_row_without_attributes_and_empty_sentences():
    stream = b"\x00" + reply_of(["!re"], ["!re", ".tag=7", "=a=1"]) + b"\x00" + reply_of(["!done"])
    got = one_byte_at_a_time(stream).reply()
    assert got.rows == [b"", row(".tag=7", "=a=1")]
    assert [attributes(r) for r in got.rows] == [{}, {"a": "1"}]  # a tag is not an attribute


def test_trap_then_done_after_rows():
    stream = reply_of(["!re", "=a=1"], ["!trap", "=category=1", "=message=unknown parameter"], ["!done"],
                      ["!re", "=b=2"], ["!done"])
    w = wire(stream)
    first = w.reply()
    assert first.rows == [row("=a=1")]
    assert first.traps == [{"category": "1", "message": "unknown parameter"}]
    second = w.reply()  # the next reply starts right after the first one's !done
    assert second.rows == [row("=b=2")] and second.traps == []


def test_empty_and_unknown_replies_carry_no_rows():
    stream = reply_of(["!empty"], ["!whatever", "=x=1"], ["!done"])
    got = wire(stream).reply()
    assert got.rows == [] and got.done == []


def test_fatal_and_a_closed_connection_raise():
    with pytest.raises(ConnectionClosed, match="session terminated"):
        wire(reply_of(["!fatal", "session terminated on request"])).reply()
    with pytest.raises(ConnectionClosed):
        wire(reply_of(["!re", "=a=1"]) + b"\x05!do").reply()  # cut off mid-reply
    with pytest.raises(ConnectionClosed, match="reserved control byte 0xF8"):
        wire(b"\x03!re\xf8" + b"\x00" * 8).reply()


def test_a_reply_split_inside_lengths_words_and_the_end_marker():
    long_value = "v" * 300  # a two-byte length, split between its bytes below
    stream = reply_of(["!re", "=comment=" + long_value, "=name=x"], ["!re", "=name=y"], ["!done"])
    cut = stream.index(b"=comment=") - 1  # between the two bytes of the length
    for sizes in ([cut, 1, 5, 7, 2, 999], [len(stream) - 1, 1], [4, 1, 1, 300, 3]):
        got = wire(stream, sizes).reply()
        assert [attributes(r) for r in got.rows] == [{"comment": long_value, "name": "x"}, {"name": "y"}]


def test_known_rows_are_taken_whole_and_others_walked():
    first, second = row("=.id=*1", "=name=a"), row("=.id=*2", "=name=b")
    stream = reply_of(["!re", "=.id=*1", "=name=a"], ["!re", "=.id=*2", "=name=b"],
                      ["!re", "=.id=*3", "=name=c"], ["!done"])
    got = wire(stream).reply({first: "a", second: "b"})
    assert got.rows == [first, second, row("=.id=*3", "=name=c")]


def test_a_nul_and_a_row_marker_inside_a_value_do_not_split_a_known_row():
    # A value holding what looks like the end of a row and the start of the next one.
    tricky = "=comment=x\x00\x03!re=name=a"
    known = {row("=.id=*1", "=name=a"): "k", row("=name=a"): "k", row("=comment=x"): "k"}
    stream = reply_of(["!re", "=.id=*1", "=name=a"], ["!re", tricky], ["!re", "=.id=*1", "=name=a"], ["!done"])
    for sizes in (None, [1] * len(stream), [7] * len(stream)):
        got = wire(stream, sizes).reply(known)
        assert [words_of(r) for r in got.rows] == [["=.id=*1", "=name=a"], [tricky], ["=.id=*1", "=name=a"]]


def test_attribute_finds_a_word_by_its_start_only():
    data = row("=name==comment=fake", "=password=x", "=comment=wispbill:svc-1 state=active")
    assert attribute(data, b"=comment=") == "wispbill:svc-1 state=active"
    assert attribute(row("=name=a"), b"=comment=") is None


def _reference(stream: bytes) -> list[list[list[str]]]:
    """Replies (each a list of row word lists) by a plain word-at-a-time reading."""
    replies, rows, pos = [], [], 0
    while pos < len(stream):
        words = []
        while True:
            first = stream[pos]
            if first < 0x80:
                size, length = 1, first
            elif first < 0xC0:
                size, length = 2, int.from_bytes(stream[pos:pos + 2], "big") & 0x3FFF
            else:
                size, length = 3, int.from_bytes(stream[pos:pos + 3], "big") & 0x1FFFFF
            word = stream[pos + size:pos + size + length]
            pos += size + length
            if not length:
                break
            words.append(word.decode("utf-8", "replace"))
        if words and words[0] == "!re":
            rows.append(words[1:])
        elif words and words[0] == "!done":
            replies.append(rows)
            rows = []
    return replies


def test_random_replies_in_random_pieces_read_as_a_plain_reader_reads_them():
    rng = random.Random(5)
    pieces = ["=name=", "=comment=wispbill:", "\x00", "\x03!re", "\x05!done", "é", "x" * 130, "=", "\x00\x03!re"]
    for _ in range(200):
        sentences = []
        for _r in range(rng.randrange(4)):
            for _s in range(rng.randrange(6)):
                sentences.append(["!re"] + ["=" + "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 5)))
                                            for _w in range(rng.randrange(4))])
            sentences.append(["!done"])
        stream = reply_of(*sentences)
        expected = _reference(stream)
        sizes = [rng.randrange(1, 40) for _ in range(len(stream))]
        plain = wire(stream, sizes)
        got = [[words_of(r) for r in plain.reply().rows] for _ in expected]
        assert got == expected
        # again, with every row known from the first reading: the fast path must agree
        known = {row(*words): "k" for rows in expected for words in rows}
        quick = wire(stream, sizes)
        assert [[words_of(r) for r in quick.reply(known).rows] for _ in expected] == expected
