"""A small LALR(1) driver for the tables that Lark computes from grammar/*.lark.

This is the run-time half of the parsers: it never imports Lark (see
``tablegen.py`` for why).  Semantics follow Lark's tree builder: terminals whose
name starts with ``_`` are dropped, rules whose name starts with ``_`` are
inlined into their parent, ``?rule`` with a single child returns that child,
``-> alias`` picks the callback.  Tokens are ``(type, value)`` tuples; callbacks
receive the list of kept children (tokens as tuples, rules as their values).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tasker.resources import grammar_digest
from tasker.syntax import _tables

Callbacks = dict[str, Callable[[list], Any]]

END = "$END"
END_TOKEN = (END, None)


class UnexpectedToken(Exception):
    """The token stream does not fit the grammar at ``token``."""

    def __init__(self, token: tuple, expected: set[str]) -> None:
        super().__init__(f"unexpected {token[0]}; expected one of {sorted(expected)}")
        self.token = token
        self.expected = expected


class _Inline(list):
    """Children of an inlined (``_name``) rule, spliced into the parent."""

    __slots__ = ()


class Table:
    """The LALR table of one grammar."""

    __slots__ = ("actions", "end", "rules", "start")

    def __init__(self, start: int, end: int, actions: list[dict[str, int]], rules: list[tuple]) -> None:
        self.start = start
        self.end = end
        self.actions = actions
        self.rules = rules


_TABLES: dict[str, Table] = {}


def table(name: str) -> Table:
    """The table for ``grammar/<name>.lark``, rebuilt in memory if the grammar changed."""
    cached = _TABLES.get(name)
    if cached is None:
        if _tables.GRAMMAR_DIGEST.get(name) == grammar_digest(name):
            raw = _tables.TABLES[name]
        else:  # an edited grammar: never run a stale table
            # Lazy: the table generator imports Lark, needed only after a grammar was edited.
            from tasker.syntax.tablegen import build_table

            raw = build_table(name)
        cached = _TABLES[name] = Table(*raw)
    return cached


def parse(tab: Table, tokens: Iterable[tuple], callbacks: Callbacks) -> Any:
    """Run the LALR automaton over ``tokens``; return the start rule's value."""
    actions = tab.actions
    rules = tab.rules
    end_state = tab.end
    states = [tab.start]
    values: list[Any] = []
    push_state = states.append
    push_value = values.append
    for token in _with_end(tokens):
        kind = token[0]
        while True:
            action = actions[states[-1]].get(kind)
            if action is None:
                raise UnexpectedToken(token, {s for s in actions[states[-1]] if s.isupper() or s == END})
            if action >= 0:
                push_state(action)
                push_value(token)
                break
            origin, size, callback, keep, expand1, inline = rules[-1 - action]
            if inline and size == 2 and type(values[-2]) is _Inline and len(keep) == 2:
                # x* / x+ repetition: append to the list built so far (linear, not quadratic)
                item = values.pop()
                del states[-2:]
                head = values[-1]
                if type(item) is _Inline:
                    head.extend(item)
                else:
                    head.append(item)
                value = values.pop()
            else:
                if size:
                    children = values[-size:]
                    del values[-size:]
                    del states[-size:]
                else:
                    children = []
                value = _reduce(children, keep, size, callback, expand1, inline, callbacks)
            push_state(actions[states[-1]][origin])
            push_value(value)
            if kind == END and states[-1] == end_state:
                return values[-1]
    raise AssertionError("unreachable: the end token always accepts or raises")


def _with_end(tokens: Iterable[tuple]) -> Iterable[tuple]:
    yield from tokens
    yield END_TOKEN


def _reduce(children: list, keep: tuple, size: int, callback: str, expand1: bool, inline: bool,
            callbacks: Callbacks) -> Any:
    if len(keep) != size:
        children = [children[i] for i in keep]
    flat = children
    for child in children:
        if type(child) is _Inline:
            flat = []
            for c in children:
                if type(c) is _Inline:
                    flat.extend(c)
                else:
                    flat.append(c)
            break
    if inline:
        return _Inline(flat)
    if expand1 and len(flat) == 1:
        return flat[0]
    fn = callbacks.get(callback)
    return fn(flat) if fn is not None else flat
