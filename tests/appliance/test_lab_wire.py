"""The lab router's word and sentence encoding, against hand-written bytes."""

import pytest

from appliance.lab.wire import (
    ProtocolError,
    SentenceReader,
    decode_length,
    encode_length,
    encode_sentence,
    encode_word,
    prefix_size,
)

# (length, its prefix as RouterOS writes it), both sides of every boundary.
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
    (0xFFFFFFFF, b"\xf0\xff\xff\xff\xff"),
]


@pytest.mark.parametrize(("length", "prefix"), LENGTHS)
def test_length_prefix_both_ways(length, prefix):
    assert encode_length(length) == prefix
    assert prefix_size(prefix[0]) == len(prefix)
    assert decode_length(prefix) == length


def test_five_byte_form_decodes_small_lengths_too():
    assert decode_length(b"\xf0\x00\x00\x00\x05") == 5


@pytest.mark.parametrize("first", [0xF8, 0xFC, 0xFF])
def test_reserved_control_bytes_are_refused(first):
    with pytest.raises(ProtocolError, match="reserved"):
        prefix_size(first)


def test_length_beyond_five_bytes_cannot_be_encoded():
    with pytest.raises(ValueError):
        encode_length(0x100000000)


def test_sentence_is_words_then_empty_word():
    assert encode_sentence(["!done", "=ret=*1"]) == b"\x05!done\x07=ret=*1\x00"
    assert encode_word("x" * 0x80) == b"\x80\x80" + b"x" * 0x80


def test_reader_takes_a_stream_in_any_pieces():
    stream = encode_sentence(["/login", "=name=admin"]) + b"\x00" + encode_sentence(["/quit", "y" * 300])
    reader = SentenceReader()
    sentences = []
    for i in range(len(stream)):
        sentences += reader.feed(stream[i : i + 1])
    # the lone empty word between them is an empty sentence: skipped
    assert sentences == [["/login", "=name=admin"], ["/quit", "y" * 300]]
    assert not reader.pending


def test_reader_keeps_a_partial_sentence_pending():
    reader = SentenceReader()
    assert reader.feed(b"\x05/quit") == []
    assert reader.pending
    assert reader.feed(b"\x00") == [["/quit"]]


def test_reader_round_trips_bytes_that_are_not_utf8():
    reader = SentenceReader()
    (sentence,) = reader.feed(b"\x03=\xff=\x00")
    assert encode_sentence(sentence) == b"\x03=\xff=\x00"


def test_reader_refuses_a_reserved_byte_and_an_oversized_word_before_its_bytes():
    with pytest.raises(ProtocolError):
        SentenceReader().feed(b"\xf8")
    with pytest.raises(ProtocolError, match="exceeds"):
        SentenceReader(max_word=1000).feed(b"\xc0\x40\x00")  # announces 0x4000 bytes, sends none


def test_reader_limits_words_per_sentence():
    with pytest.raises(ProtocolError, match="more than 3 words"):
        SentenceReader(max_words=3).feed(b"\x01a" * 4)
