"""Print queries (``?name``, ``?-name``, ``?name=x``, ``?<name=x``, ``?>name=x``, ``?#ops``).

Each query word pushes a result onto a stack that starts as endless ``true`` (popping
an empty stack, or reading below its bottom, gives ``true``); ``?#`` words combine
results. A row is kept when no ``false`` is left on the stack.

``?#`` operations, read left to right: ``!`` negates the top, ``&`` and ``|`` pop two
and push their and/or, ``.`` pushes a copy of the top, and a run of digits is a stack
index (0 is the top): followed by another character it pushes a copy of that value,
at the end of the word it replaces the whole stack with that value; a ``.`` right
after an index does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

Row = dict[str, str]
Push = Callable[[Row], bool]
_BOOLEAN_WORDS = {"yes": "true", "no": "false", "true": "true", "false": "false"}


class QueryError(ValueError):
    """A query word the router cannot make sense of."""


def _number(text: str) -> float | None:
    """``text`` as a number when it is one; RouterOS ids (``*1A``) count as hex numbers."""
    if text.startswith("*"):
        try:
            return int(text[1:], 16)
        except ValueError:
            return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def _less(left: str, right: str) -> bool:
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        return a < b
    return left < right


def _compile_test(word: str, booleans: frozenset[str]) -> Push:
    body = word[1:]
    if body.startswith("-"):
        name = body[1:]
        return lambda row: name not in row
    op = "="
    if body[:1] in ("<", ">", "="):
        op, body = body[0], body[1:]
    name, sep, value = body.partition("=")
    if not name:
        raise QueryError(f"bad query word {word!r}")
    if not sep:
        if op != "=":
            raise QueryError(f"bad query word {word!r}")
        return lambda row: name in row
    if op == "=":
        if name in booleans and value in _BOOLEAN_WORDS:
            value = _BOOLEAN_WORDS[value]
        return lambda row: row.get(name) == value
    if op == "<":
        return lambda row: name in row and _less(row[name], value)
    return lambda row: name in row and _less(value, row[name])


def _parse_ops(ops: str) -> list[tuple[str, int]]:
    """Split a ``?#`` operation string into (op, index) steps; op is one of ``!&|.`` or
    ``push`` (copy the value at index) or ``reset`` (replace the stack with it)."""
    steps: list[tuple[str, int]] = []
    i, n = 0, len(ops)
    while i < n:
        ch = ops[i]
        if ch.isdigit():
            j = i
            while j < n and ops[j].isdigit():
                j += 1
            index = int(ops[i:j])
            if j == n:
                steps.append(("reset", index))
            else:
                steps.append(("push", index))
                if ops[j] == ".":
                    j += 1  # a dot after an index is only a separator
            i = j
            continue
        if ch not in "!&|.":
            raise QueryError(f"bad query operation {ch!r} in ?#{ops}")
        steps.append((ch, 0))
        i += 1
    return steps


def compile_query(words: Iterable[str], booleans: Iterable[str] = ()) -> Callable[[Row], bool] | None:
    """A predicate for rows from the query words of one print, or ``None`` when there are
    none (every row is kept). ``booleans`` names the attributes whose query values may be
    written ``yes``/``no`` as well as ``true``/``false``. Raises :class:`QueryError`."""
    bools = frozenset(booleans)
    program: list[tuple[str, object]] = []
    for word in words:
        if word.startswith("?#"):
            program.extend(_parse_ops(word[2:]))
        elif word.startswith("?") and len(word) > 1:
            program.append(("test", _compile_test(word, bools)))
        else:
            raise QueryError(f"bad query word {word!r}")
    if not program:
        return None
    if all(op == "test" for op, _ in program):
        # The common case (librouteros' where(a == x, b == y)): a plain conjunction.
        tests = [arg for _, arg in program]
        return lambda row: all(test(row) for test in tests)
    return lambda row: _run(program, row)


def _run(program, row: Row) -> bool:
    stack: list[bool] = []

    def pop() -> bool:
        return stack.pop() if stack else True

    def at(index: int) -> bool:
        return stack[-1 - index] if index < len(stack) else True

    for op, arg in program:
        if op == "test":
            stack.append(arg(row))
        elif op == "!":
            stack.append(not pop())
        elif op == "&":
            right, left = pop(), pop()
            stack.append(left and right)
        elif op == "|":
            right, left = pop(), pop()
            stack.append(left or right)
        elif op == ".":
            stack.append(at(0))
        elif op == "push":
            stack.append(at(arg))
        else:  # reset
            stack[:] = [at(arg)]
    return all(stack)
