"""Condition text -> condition AST, and back (``show``).

``parse_condition`` runs the tokens of ``condlex`` through the LALR table of
``grammar/condition.lark``.  Every failure is a ``ConditionError`` carrying the
offset of the problem and a hint; no other exception escapes (the fuzz tests
hold us to that).  ``show`` prints a tree so that parsing the text again gives
an equal tree.
"""

from __future__ import annotations

import re

from tasker.check.variables import TASKREF_RE, make_ref
from tasker.syntax import lalr
from tasker.syntax.ast import (
    EMPTY_TEMPLATE,
    AllOf,
    AnyOf,
    Compare,
    Contains,
    ExitCode,
    ExitNotZero,
    Invalid,
    Keyword,
    Multi,
    RefTest,
    StreamCount,
    StreamTest,
    TaskRef,
    Template,
)
from tasker.syntax.condlex import ConditionError, tokenize

__all__ = ["ConditionError", "parse_condition", "show"]


class _Chain(list):
    """The items of an AnyOf/AllOf while the parser is still adding to it.

    ``a|b|c|...`` reduces once per ``|``; building a new tuple each time copied
    every item so far (quadratic: 100,000 atoms took a minute).  The chain is
    extended in place instead (only the parser's stack refers to it) and becomes
    a node when something else takes it as a child, or at the end.
    """

    __slots__ = ("cls",)


def _join(cls: type, children: list) -> _Chain:
    head = children[0]
    if type(head) is _Chain and head.cls is cls:
        chain = head
    else:
        chain = _Chain()
        chain.cls = cls
        _add(chain, head)
    for child in children[1:]:
        _add(chain, child)
    return chain


def _add(chain: _Chain, child: object) -> None:
    kind = type(child)
    # a child is an atom or a chain: nodes are only made by _done, never handed back to the parser
    if kind is _Chain:
        if child.cls is chain.cls:
            chain.extend(child)          # (a|b)|c: one flat list, as before
        else:
            chain.append(_done(child))
    else:
        chain.append(child)


def _done(value: object) -> object:
    return value.cls(tuple(value)) if type(value) is _Chain else value


def _template(children: list) -> Template:
    return Template(tuple(value for _kind, value, _off in children))


def _operand(children: list) -> Template | None:
    return children[-1] if children and type(children[-1]) is Template else None


def _op(children: list) -> str:
    return children[0][1]


_CALLBACKS = {
    "any_of": lambda c: _join(AnyOf, c),
    "all_of": lambda c: _join(AllOf, c),
    "exit_code": lambda c: ExitCode(c[0][1]),
    "exit_not_zero": lambda c: ExitNotZero(),
    "keyword": lambda c: Keyword(c[0][1]),
    "multi": lambda c: Multi(*c[0][1]),
    "stream_test": lambda c: StreamTest(c[0][1], c[1] == "!~", _operand(c)),
    "stream_count": lambda c: StreamCount(c[0][1], c[1], c[2][1]),
    "stream_compare": lambda c: Compare(c[0][1], c[1], _operand(c) or EMPTY_TEMPLATE),
    "exit_compare": lambda c: Compare("exit", c[1], _operand(c) or EMPTY_TEMPLATE),
    "value_compare": lambda c: Compare(c[0], c[1], _operand(c) or EMPTY_TEMPLATE),
    "contains": lambda c: Contains(c[0][0] == "NOT_CONTAINS", _operand(c) or EMPTY_TEMPLATE),
    "ref_test": lambda c: RefTest(c[0][1]),
    "match_op": _op,
    "compare_op": _op,
    "operand": lambda c: c[0],
    "quoted": lambda c: c[0] if c else EMPTY_TEMPLATE,
    "text": _template,
}

_cache: dict[str, object] = {}


def parse_condition(text: str) -> object:
    """Parse one condition.

    Files repeat conditions that differ only in task ids (``@41_exit@=0``,
    ``@42_exit@=0`` ...), so a condition is parsed once per *shape*: the text
    with every task reference numbered 0, cached, and the tree is then copied
    with the real references put back.
    """
    if "@" not in text:
        return _cached(text)
    refs = []

    def mark(m):
        refs.append(make_ref(m))
        return f"@0_{m.group(2)}@"

    shape = TASKREF_RE.sub(mark, text)
    try:
        tree = _cached(shape)
    except ConditionError:
        tree = _parse(text)   # report the error at the true position
    return _with_refs(tree, iter(refs)) if refs else tree


def _cached(text: str) -> object:
    tree = _cache.get(text)
    if tree is None:
        tree = _parse(text)
        if len(_cache) < 50_000:
            _cache[text] = tree
    return tree


def _with_refs(node: object, refs) -> object:
    """A copy of ``node`` whose TaskRefs are taken, in order, from ``refs``."""
    kind = type(node)
    if kind is Template:
        return Template(tuple(p if type(p) is str else next(refs) for p in node.parts))
    if kind in (AnyOf, AllOf):
        return kind(tuple(_with_refs(item, refs) for item in node.items))
    if kind is Compare:
        return Compare(_with_refs(node.subject, refs), node.op, _with_refs(node.operand, refs))
    if kind is StreamTest:
        return StreamTest(node.stream, node.negate, _with_refs(node.pattern, refs))
    if kind is Contains:
        return Contains(node.negate, _with_refs(node.pattern, refs))
    if kind is RefTest:
        return RefTest(next(refs))
    return node


def _parse(text: str) -> object:
    if not text.strip():
        raise ConditionError("empty condition", 0, 1, help="write a condition such as exit_0, or remove the line")
    tokens = tokenize(text)
    try:
        return _done(lalr.parse(lalr.table("condition"), tokens, _CALLBACKS))
    except lalr.UnexpectedToken as exc:
        raise _syntax_error(text, tokens, exc) from None


def _syntax_error(text: str, tokens: list, exc: lalr.UnexpectedToken) -> ConditionError:
    tok = exc.token
    kind = tok[0]
    off = tok[2] if len(tok) > 2 else len(text)
    if kind == lalr.END:
        last = tokens[-1]   # never empty: blank text was refused before tokenizing
        if last[0] in ("_AND", "_OR"):
            return ConditionError(f"condition ends with `{last[1]}`", last[2], 1,
                                  help="add the condition that should follow it, or remove the operator")
        if "_RPAR" in exc.expected:
            opened = [t for t in tokens if t[0] == "_LPAR"]
            return ConditionError("missing `)`", opened[-1][2] if opened else len(text), 1,
                                  help="close every `(` with a `)`")
        return ConditionError("incomplete condition", len(text), 1)
    if kind == "_RPAR":
        prev = _previous(tokens, tok)
        if prev and prev[0] == "_LPAR":
            return ConditionError("empty parentheses", prev[2], off - prev[2] + 1, help="put a condition inside")
        if prev and prev[0] in ("_AND", "_OR"):
            return ConditionError(f"`{prev[1]}` needs a condition after it", prev[2], 1)
        return ConditionError("unbalanced `)`", off, 1, help="remove it or add the matching `(`")
    if kind in ("_AND", "_OR"):
        # the grammar takes `&` / `|` after every complete condition, so an unexpected one
        # always follows the start, a `(` or another operator
        return ConditionError(f"`{tok[1]}` needs a condition before it", off, 1)
    if kind == "_LPAR":
        return ConditionError("missing `&` or `|` before `(`", off, 1,
                              help="join conditions with `&` (and) or `|` (or)")
    return ConditionError("missing `&` or `|` between conditions", off, 1,
                          help="join conditions with `&` (and) or `|` (or)")


def _previous(tokens: list, tok: tuple) -> tuple | None:
    for i, t in enumerate(tokens):
        if t is tok:
            return tokens[i - 1] if i else None
    return None


# ----------------------------------------------------------------- printing


_shown: dict[object, str] = {}


def show(cond: object) -> str:
    """The canonical text of a condition tree (parses back to an equal tree); a
    condition that did not parse shows as it was written."""
    text = _shown.get(cond)
    if text is None:
        text = _shown[cond] = _show(cond, False)
    return text


def _show(cond: object, in_and: bool) -> str:
    """``&`` binds tighter than ``|``: only an AnyOf inside an AllOf needs parentheses."""
    kind = type(cond)
    if kind is AnyOf:
        text = "|".join(_show(c, False) for c in cond.items)
        return f"({text})" if in_and else text
    if kind is AllOf:
        return "&".join(_show(c, True) for c in cond.items)
    return show_atom(cond)


def show_atom(cond: object) -> str:
    kind = type(cond)
    if kind is ExitCode:
        return f"exit_{cond.code}"
    if kind is ExitNotZero:
        return "exit_not_0"
    if kind is Keyword:
        return cond.word
    if kind is Multi:
        return cond.kind if cond.count is None else f"{cond.kind}={cond.count}"
    if kind is StreamCount:
        return f"{cond.stream}_count{cond.op}{cond.count}"
    if kind is RefTest:
        return show_ref(cond.ref)
    if kind is StreamTest:
        head = f"{cond.stream}{'!~' if cond.negate else '~'}"
        return head if cond.pattern is None else _with_operand(cond, (head,), cond.pattern)
    if kind is Compare:
        subject = cond.subject if type(cond.subject) is str else show_template(cond.subject)
        # a space keeps a subject ending in < or ! from merging with the operator
        return _with_operand(cond, (f"{subject}{cond.op}", f"{subject} {cond.op}"), cond.operand)
    if kind is Contains:
        return _with_operand(cond, ("not_contains:" if cond.negate else "contains:",), cond.pattern)
    if kind is Invalid:
        return cond.text   # kept only when validation is skipped: the log quotes what the user wrote
    return f"<{kind.__name__}>"


def show_ref(ref: TaskRef) -> str:
    return f"@{ref.task}_{ref.name}@"


def show_template(t: Template) -> str:
    return "".join(p if type(p) is str else show_ref(p) for p in t.parts)


# Operand text that cannot be read as an operator, a quote, a blank, a comma or a
# placeholder: after a fixed head (stdout~, exit=, contains: ...) it parses back the same.
_PLAIN_SAFE = re.compile(r"[A-Za-z0-9_./+-]+")
_operand_shown: dict[object, str] = {}


def _with_operand(cond: object, heads: tuple, value: Template) -> str:
    """A head + the operand, quoted only when the plain form would read differently."""
    plain = show_template(value)
    if _PLAIN_SAFE.fullmatch(plain) and (type(cond) is not Compare or type(cond.subject) is str):
        return heads[0] + plain   # nothing in it can read as structure: no need to parse to be sure
    text = _operand_shown.get(cond)
    if text is None:
        text = _checked_operand(cond, heads, plain)
        if len(_operand_shown) < 50_000:
            _operand_shown[cond] = text
    return text


def _checked_operand(cond: object, heads: tuple, plain: str) -> str:
    candidates = []
    for head in heads:
        candidates += [head + plain] if plain else []
        for q in "\"'":
            escaped = plain.replace(q, "\\" + q)
            candidates.append(f"{head}{q}{escaped}{q}")
    for text in candidates:
        try:
            if _parse(text) == cond:
                return text
        except ConditionError:
            continue
    return candidates[0]
