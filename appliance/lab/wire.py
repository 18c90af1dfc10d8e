"""RouterOS API wire format: length-prefixed words, sentences ended by an empty word.

Words travel as bytes; this module hands them out as ``str`` decoded as UTF-8 with
``surrogateescape``, so any byte sequence a client sends comes back out unchanged.
"""

from __future__ import annotations

from plugins.mikrotik.wire import encode_length as _client_encode_length

ENCODING = "utf-8"
ERRORS = "surrogateescape"

# A word may be up to 0xFFFFFFFF bytes on the wire; nobody sends that to a router.
DEFAULT_MAX_WORD = 4 * 1024 * 1024
DEFAULT_MAX_WORDS = 65536


class ProtocolError(ValueError):
    """The peer sent bytes that are not a valid API stream; the connection must go."""


def encode_length(length: int) -> bytes:
    """The length prefix for a word of ``length`` bytes (1 to 5 bytes), as the client encodes it."""
    if length < 0:
        raise ValueError(f"negative length {length}")
    return _client_encode_length(length)


def prefix_size(first: int) -> int:
    """How many bytes the length prefix starting with byte ``first`` takes."""
    if first < 0x80:
        return 1
    if first < 0xC0:
        return 2
    if first < 0xE0:
        return 3
    if first < 0xF0:
        return 4
    if first < 0xF8:
        return 5
    raise ProtocolError(f"reserved control byte 0x{first:02X}")


def decode_length(prefix: bytes) -> int:
    """The word length encoded by a complete ``prefix`` (as :func:`prefix_size` measured it)."""
    first = prefix[0]
    size = prefix_size(first)
    if len(prefix) != size:
        raise ProtocolError(f"length prefix of {len(prefix)} bytes, expected {size}")
    if size == 1:
        return first
    if size == 2:
        return int.from_bytes(prefix, "big") & 0x3FFF
    if size == 3:
        return int.from_bytes(prefix, "big") & 0x1FFFFF
    if size == 4:
        return int.from_bytes(prefix, "big") & 0xFFFFFFF
    return int.from_bytes(prefix[1:], "big")


def encode_word(word: str | bytes) -> bytes:
    """One word with its length prefix."""
    data = word if isinstance(word, bytes) else word.encode(ENCODING, ERRORS)
    return encode_length(len(data)) + data


def _prefix_text(length: int) -> str:
    # A length prefix as text that encodes back to exactly its bytes: bytes below 0x80
    # as themselves, the others as the surrogates surrogateescape turns into bytes.
    return "".join(chr(b) if b < 0x80 else chr(0xDC00 + b) for b in encode_length(length))


_SHORT_PREFIXES = tuple(chr(n) for n in range(0x80))


def encode_sentences(sentences, tail: tuple[str, ...] = ()) -> bytes:
    """Many sentences in one buffer, each with the words of ``tail`` (e.g. a tag) added.

    Built as one string and encoded once: much faster than word by word for a print of
    thousands of rows.
    """
    parts: list[str] = []
    append = parts.append
    short = _SHORT_PREFIXES
    for words in sentences:
        for word in (*words, *tail) if tail else words:
            n = len(word) if word.isascii() else len(word.encode(ENCODING, ERRORS))
            append(short[n] if n < 0x80 else _prefix_text(n))
            append(word)
        append("\x00")
    return "".join(parts).encode(ENCODING, ERRORS)


def encode_sentence(words) -> bytes:
    """Words followed by the empty word that ends a sentence."""
    return encode_sentences((words,))


class SentenceReader:
    """Cuts a byte stream into sentences; feed it whatever ``recv`` returned.

    Raises :class:`ProtocolError` for a reserved control byte, a word longer than
    ``max_word`` bytes or a sentence of more than ``max_words`` words. The limits are
    checked as soon as a length prefix is complete, before its bytes arrive.
    """

    def __init__(self, max_word: int = DEFAULT_MAX_WORD, max_words: int = DEFAULT_MAX_WORDS):
        self.max_word = max_word
        self.max_words = max_words
        self._buf = bytearray()
        self._words: list[str] = []

    @property
    def pending(self) -> bool:
        """True when part of a sentence has been received but not its end."""
        return bool(self._buf) or bool(self._words)

    def feed(self, data: bytes) -> list[list[str]]:
        """Take more bytes; return the sentences they completed (empty sentences skipped)."""
        buf = self._buf
        buf += data
        sentences: list[list[str]] = []
        pos = 0
        end = len(buf)
        words = self._words
        while pos < end:
            first = buf[pos]
            if first < 0x80:
                size, length = 1, first
            else:
                size = prefix_size(first)
                if pos + size > end:
                    break
                length = decode_length(bytes(buf[pos : pos + size]))
            if length > self.max_word:
                raise ProtocolError(f"word of {length} bytes exceeds the limit of {self.max_word}")
            if pos + size + length > end:
                break
            start = pos + size
            pos = start + length
            if length == 0:
                if words:
                    sentences.append(words)
                    words = self._words = []
                continue
            if len(words) >= self.max_words:
                raise ProtocolError(f"sentence of more than {self.max_words} words")
            words.append(buf[start:pos].decode(ENCODING, ERRORS))
        del buf[:pos]
        return sentences
