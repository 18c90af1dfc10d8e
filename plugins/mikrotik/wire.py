"""The RouterOS API wire format, client side: sentences encoded, whole replies read from a buffered socket.

A word is a length (one to five bytes) and that many bytes; a sentence is words ended by
an empty word. :meth:`Wire.reply` reads one reply (every sentence up to ``!done``) by
walking the length prefixes over one ``bytes`` buffer, filled by large ``recv`` calls.
Its rows stay encoded: each ``!re`` row is the bytes of its attribute words, so a reader
that only wants to know whether a row is what it was last time compares bytes, and
decodes (:func:`words_of`, :func:`attributes`) only the rows it uses. A row equal to one
the caller already knows (from the last read) is not even walked: its end is found with
one search for the next row's start, and the match vouches that it is whole words.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from librouteros.connections import SocketTransport
from librouteros.exceptions import ConnectionClosed

ENCODING = "utf-8"
ROW = b"\x03!re"  # a sentence whose first word is "!re"
_NEXT_ROW = b"\x00" + ROW
_CHUNK = 1 << 18


def encode_length(length: int) -> bytes:
    """A word length in the API's 1- to 4-byte form (5-byte for the very longest)."""
    if length < 0x80:
        return bytes((length,))
    if length < 0x4000:
        return (length | 0x8000).to_bytes(2, "big")
    if length < 0x200000:
        return (length | 0xC00000).to_bytes(3, "big")
    if length < 0x10000000:
        return (length | 0xE0000000).to_bytes(4, "big")
    if length < 0x100000000:
        return b"\xF0" + length.to_bytes(4, "big")
    raise ValueError(f"a word of {length} bytes is too long for the API")


def encode(words) -> bytes:
    """One sentence: each word with its length, then the empty word."""
    out = []
    for word in words:
        data = word.encode(ENCODING)
        out.append(encode_length(len(data)))
        out.append(data)
    out.append(b"\x00")
    return b"".join(out)


def _word(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Start and stop of the word whose length, at ``pos``, is in a long form (first byte ≥ 0x80);
    a stop past ``end`` when the length itself is cut off there."""
    first = buf[pos]
    if first < 0xC0:
        size = 2
    elif first < 0xE0:
        size = 3
    elif first < 0xF0:
        size = 4
    elif first < 0xF8:
        size = 5
    else:
        raise ConnectionClosed(f"reserved control byte 0x{first:02X} in the router's reply")
    if pos + size > end:
        return end, end + 1
    if size == 5:
        length = int.from_bytes(buf[pos + 1:pos + 5], "big")
    else:
        length = int.from_bytes(buf[pos:pos + size], "big") & ((1 << (7 * size)) - 1)
    return pos + size, pos + size + length


def words_of(data: bytes, start: int = 0, stop: int | None = None) -> list[str]:
    """The words (decoded) of ``data[start:stop]``, a run of whole words without the empty one
    (a row as :meth:`Wire.reply` returns it)."""
    stop = len(data) if stop is None else stop
    words, pos = [], start
    while pos < stop:
        n = data[pos]
        if n < 0x80:
            begin = pos + 1
            pos = begin + n
        else:
            begin, pos = _word(data, pos, stop)
        if pos > stop:
            raise ConnectionClosed("a word runs past the end of its sentence")
        words.append(data[begin:pos].decode(ENCODING, "replace"))
    return words


def attributes(data: bytes) -> dict[str, str]:
    """A row's attribute words (``=name=value``) as a dict; other words (``.tag=``) are left out."""
    return _attributes(words_of(data))


def _attributes(words) -> dict[str, str]:
    row = {}
    for word in words:
        if word[:1] == "=":
            name, _, value = word[1:].partition("=")
            row[name] = value
    return row


def attribute(data: bytes, prefix: bytes) -> str | None:
    """The first word of a row that starts with ``prefix`` (such as ``b"=comment="``), without it;
    ``None`` when none does."""
    pos, stop = 0, len(data)
    while pos < stop:
        n = data[pos]
        if n < 0x80:
            begin = pos + 1
            pos = begin + n
        else:
            begin, pos = _word(data, pos, stop)
        if pos > stop:
            raise ConnectionClosed("a word runs past the end of its sentence")
        if data.startswith(prefix, begin, pos):
            return data[begin + len(prefix):pos].decode(ENCODING, "replace")
    return None


@dataclass
class Reply:
    """One command's reply: its rows (encoded attribute words), the ``!done`` words and the ``!trap`` attributes."""

    rows: list[bytes] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    traps: list[dict[str, str]] = field(default_factory=list)


class Wire(SocketTransport):
    """librouteros' socket transport with a receive buffer, and a reader of whole replies."""

    def __init__(self, sock):
        super().__init__(sock)
        self._buf = b""
        self._pos = 0
        self._want = 1  # bytes the buffer must hold from _pos before the next scan can get further

    def _fill(self) -> None:
        rest = self._buf[self._pos:] if self._pos < len(self._buf) else b""
        chunks, have = [rest], len(rest)
        while True:  # a long word arriving in small pieces is joined once, not once a piece
            chunk = self.sock.recv(_CHUNK)
            if not chunk:
                raise ConnectionClosed("the router closed the connection")
            chunks.append(chunk)
            have += len(chunk)
            if have >= self._want:
                break
        self._buf = b"".join(chunks) if rest or len(chunks) > 2 else chunk
        self._pos = 0
        self._want = 1

    def read(self, length: int) -> bytes:
        while len(self._buf) - self._pos < length:
            self._want = length
            self._fill()
        start = self._pos
        self._pos += length
        return self._buf[start:self._pos]

    def wait(self) -> None:
        """Block until the router has sent something (or it is already buffered)."""
        if self._pos >= len(self._buf):
            self._fill()

    def reply(self, known=None) -> Reply:
        """Read sentences up to and including the next ``!done``; a ``!fatal`` raises ``ConnectionClosed``.

        ``known`` holds rows (as :attr:`Reply.rows` gives them) of an earlier reply: a row
        equal to one of them is taken whole, without walking its words.
        """
        reply = Reply()
        while not self._scan(reply, known):
            self._fill()
        return reply

    def _scan(self, reply: Reply, known) -> bool:
        """Take the complete sentences in the buffer into ``reply``; true once its ``!done`` is in."""
        buf, pos = self._buf, self._pos
        end = len(buf)
        rows = reply.rows
        find, starts = buf.find, buf.startswith
        while pos < end:
            if known and starts(ROW, pos):
                # A row ends at the first NUL followed by the next "!re" when what lies
                # before it is a known row: that is a run of whole words, so the NUL after
                # it can only be the sentence's end (a NUL inside a value would make it
                # unknown, and the row is walked below).
                stop = find(_NEXT_ROW, pos + 4)
                while stop >= 0:
                    row = buf[pos + 4:stop]
                    if row not in known:
                        break
                    rows.append(row)
                    pos = stop + 1
                    stop = find(_NEXT_ROW, pos + 4)
            p = pos
            while True:  # to the empty word that ends this sentence
                if p >= end:
                    self._pos = pos
                    self._want = p + 1 - pos
                    return False
                n = buf[p]
                if n < 0x80:
                    if not n:
                        break
                    p += n + 1
                else:
                    p = _word(buf, p, end)[1]
            if buf.startswith(ROW, pos):
                rows.append(buf[pos + 4:p])
            elif p > pos and self._other(reply, buf, pos, p):
                self._pos = p + 1
                return True
            pos = p + 1
        self._pos = pos
        return False

    @staticmethod
    def _other(reply: Reply, buf: bytes, start: int, stop: int) -> bool:
        words = words_of(buf, start, stop)
        kind = words[0]
        if kind == "!done":
            reply.done = words[1:]
            return True
        if kind == "!re":  # "!re" with a length written in a longer form than needed
            reply.rows.append(encode(words[1:])[:-1])
        elif kind == "!trap":
            reply.traps.append(_attributes(words[1:]))
        elif kind == "!fatal":
            raise ConnectionClosed("router ended the session: " + " ".join(words[1:]))
        # !empty (RouterOS 7.18+) and anything unknown carry no rows
        return False
