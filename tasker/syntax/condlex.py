"""The condition lexer: condition text -> tokens for ``grammar/condition.lark``.

Structure first: ``(``, ``)``, ``&`` and ``|`` are tokens wherever they stand,
except inside a quoted operand (``stdout~"a|b"``) and except a ``)`` that
closes a ``(`` opened inside the same atom (``stdout=OK (100%)``).  The text
between them is an *atom*, which is split into keyword, operator, text and
``@N_field@`` placeholder tokens by the table of atom forms below
(docs/condition-syntax.md as amended by D3: keywords in any case).

A token is ``(TYPE, value, offset)``; ``offset`` is the character position in
the condition text, for diagnostics.
"""

from __future__ import annotations

import re

from tasker.check.variables import TASKREF_RE, make_ref
from tasker.numbers import MAX_DIGITS, OutOfRange, whole
from tasker.syntax.errors import ConditionError

__all__ = ["ConditionError", "tokenize"]


MULTI_KINDS = ("all_success", "any_success", "majority_success")
COUNTED_KINDS = ("min_success", "max_success", "min_failed", "max_failed")
_MULTI_RE = re.compile(r"(min_success|max_success|min_failed|max_failed)\s*=\s*(.*)\Z", re.IGNORECASE | re.DOTALL)
_STREAM_RE = re.compile(r"(stdout|stderr)(_count)?\s*(!~|!=|<=|>=|~|=|<|>)?", re.IGNORECASE)
_EXIT_WORD_RE = re.compile(r"exit\s*(!~|!=|<=|>=|~|=|<|>)", re.IGNORECASE)
_OP_RE = re.compile(r"!~|!=|<=|>=|~|=|<|>")
_ENDS_OPERAND = re.compile(r"\s*(?:[&|)]|\Z)")
_INT_RE = re.compile(r"\s*[+-]?\d+\s*\Z")
_WORD_OP_RE = re.compile(r"(?:^|\s)(and|or|not)(?:\s|$)", re.IGNORECASE)
_COMMA_ATOM_RE = re.compile(r",\s*(?:exit_|stdout|stderr|(?:true|false|success)\s*(?:$|[&|])|@\d+_)", re.IGNORECASE)

OP_TOKENS = {"~": "MATCH", "!~": "NOT_MATCH", "=": "EQ", "!=": "NE",
             "<": "LT", "<=": "LE", ">": "GT", ">=": "GE"}
_NEXT_WORDS = ("always", "never", "loop")

EXPECTED_FORMS = ("expected exit_N, exit_not_0, stdout~TEXT, stderr~TEXT, stdout_count>N, "
                  "a comparison such as @3_stdout@=ready or exit<2, true or false")


# Parentheses may nest this deep.  Every later stage (printing, evaluation, hashing,
# the plan, the checkpoint) walks a condition tree recursively; bounding the depth
# here keeps each of those walks far below Python's recursion limit.
MAX_NESTING = 50


def tokenize(text: str) -> list[tuple]:
    """Split a condition into tokens; raises ``ConditionError`` on text that has no meaning."""
    tokens: list[tuple] = []
    i = 0
    n = len(text)
    depth = 0
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "(":
            depth += 1
            if depth > MAX_NESTING:
                raise ConditionError(f"parentheses nested more than {MAX_NESTING} deep", i, 1,
                                     help="split the condition: give parts of it to earlier tasks and "
                                          "test their @N_success@")
            tokens.append(("_LPAR", c, i))
            i += 1
        elif c == ")":
            depth = max(0, depth - 1)
            tokens.append(("_RPAR", c, i))
            i += 1
        elif c in "&|":
            if text.startswith(c * 2, i):
                word = "and" if c == "&" else "or"
                raise ConditionError(f"`{c * 2}` is not an operator", i, 2,
                                     help=f"write a single `{c}` for {word}")
            tokens.append(("_AND" if c == "&" else "_OR", c, i))
            i += 1
        else:
            j = _atom_end(text, i)
            atom = text[i:j].rstrip()
            tokens.extend(classify(atom, i))
            i = j
    return tokens


def _atom_end(text: str, start: int) -> int:
    """Where the atom that begins at ``start`` ends (exclusive)."""
    depth = 0
    k = start
    n = len(text)
    while k < n:
        c = text[k]
        if c in "&|":
            break
        if c == "(":
            depth += 1
        elif c == ")":
            if depth == 0:
                break
            depth -= 1
        elif c in "\"'" and _opens_operand(text, start, k):
            close = find_closing_quote(text, k)
            if close is not None:
                k = close + 1
                continue
        k += 1
    return k


def _opens_operand(text: str, start: int, k: int) -> bool:
    """A quote opens a quoted operand when it directly follows an operator (or ``contains:``)."""
    before = text[start:k].rstrip()
    return bool(before) and before[-1] in "~=<>:"


def find_closing_quote(text: str, k: int) -> int | None:
    """The first matching quote after ``k`` that ends the operand: not escaped with a
    backslash, and followed only by blanks and then the end, ``&``, ``|`` or ``)``."""
    q = text[k]
    m = k
    while True:
        m = text.find(q, m + 1)
        if m < 0:
            return None
        if text[m - 1] == "\\":
            continue
        if _ENDS_OPERAND.match(text, m + 1):   # matched in place: slicing the rest was quadratic
            return m


def classify(atom: str, off: int) -> list[tuple]:
    """Tokens of one atom (see module docstring)."""
    low = atom.lower()
    if low in ("true", "false", "success"):
        return [(low.upper(), low, off)]
    if low == "exit_not_0":
        return [("EXIT_NOT_ZERO", low, off)]
    if low in MULTI_KINDS:
        return [("MULTI", (low, None), off)]
    m = _MULTI_RE.match(atom)
    if m:
        count = m.group(2).strip()
        if not _INT_RE.match(count):
            raise ConditionError(f"`{m.group(1)}=` needs a whole number, got `{count}`", off, len(atom),
                                 help=f"for example {m.group(1).lower()}=2")
        return [("MULTI", (m.group(1).lower(), _number(count, off + m.start(2))), off)]
    if low in COUNTED_KINDS:
        raise ConditionError(f"`{atom}` needs a count", off, len(atom), help=f"write {low}=N, e.g. {low}=2")
    if low.startswith("exit_"):
        return [_exit_code(atom, off)]
    for prefix, kind in (("not_contains:", "NOT_CONTAINS"), ("contains:", "CONTAINS")):
        if low.startswith(prefix):
            return [(kind, prefix, off), *operand(atom[len(prefix):], off + len(prefix))]
    m = _STREAM_RE.match(atom)
    if m and m.group(3):
        return _stream(atom, off, m)
    if m and m.end() == len(atom):
        raise ConditionError(f"`{atom}` needs an operator and a value", off, len(atom),
                             help=f"for example {m.group(1).lower()}~TEXT (contains), "
                                  f"{m.group(1).lower()}=TEXT (equals) or {m.group(1).lower()}~ (is empty)")
    if m and atom[m.end():].lstrip().startswith(":"):
        raise ConditionError(f"`{atom}`: splitting an output inside a condition is not supported",
                             off, len(atom), help="split the output with stdout_split=DELIM,INDEX on the "
                                                  "task and compare stdout")
    m = _EXIT_WORD_RE.match(atom)
    if m:
        op = m.group(1)
        return [("EXIT", "exit", off), (OP_TOKENS[op], op, off + m.start(1)),
                *operand(atom[m.end():], off + m.end())]
    return _generic(atom, off)


def _number(text: str, off: int) -> int:
    try:
        return whole(text)
    except OutOfRange as exc:
        lead = len(text) - len(text.lstrip())
        raise ConditionError(str(exc), off + lead, len(text.strip()),
                             help=f"write a number of at most {MAX_DIGITS} digits") from None


def _exit_code(atom: str, off: int) -> tuple:
    rest = atom[5:]
    if _INT_RE.match(rest):
        return ("EXIT_CODE", _number(rest, off + 5), off)
    help = "write exit_ and a number, e.g. exit_0 or exit_124"
    if "," in rest:
        help = "`,` does not combine conditions: write `|` for or, `&` for and"
    elif _WORD_OP_RE.search(rest):
        help = "words are not operators: write `&` for and, `|` for or"
    raise ConditionError(f"`{atom}` is not an exit-code test", off, len(atom), help=help)


def _stream(atom: str, off: int, m: re.Match) -> list[tuple]:
    stream = m.group(1).lower()
    op = m.group(3)
    rest = atom[m.end():]
    op_off = off + m.start(3)
    if m.group(2):
        if op in ("~", "!~"):
            raise ConditionError(f"`{stream}_count` compares a number of lines", op_off, len(op),
                                 help=f"use = != < <= > >=, e.g. {stream}_count>2")
        at = off + m.end() + len(rest) - len(rest.lstrip())     # where the count starts, past blanks
        if not _INT_RE.match(rest):
            raise ConditionError(f"`{stream}_count{op}` needs a whole number, got `{rest.strip()}`",
                                 at, max(1, len(rest.strip())), help=f"for example {stream}_count{op}3")
        return [("STREAM_COUNT", stream, off), (OP_TOKENS[op], op, op_off), ("NUMBER", _number(rest.lstrip(), at), at)]
    return [("STREAM", stream, off), (OP_TOKENS[op], op, op_off), *operand(rest, off + m.end())]


# TASKER's order for finding the operator of a comparison (docs/condition-syntax.md): the first
# operator *in this order* that occurs splits the atom, so `@1_stderr@~a >= 5` compares
# numerically and `@0_stdout@~x = 1` tests for the text `x = 1`.
OPERATOR_ORDER = ("!~", "<=", ">=", "!=", "~", "=", "<", ">")


def _generic(atom: str, off: int) -> list[tuple]:
    """``LEFT op RIGHT`` where LEFT is text and placeholders, or a lone placeholder."""
    found = _split_operator(atom)
    if found is not None:
        pos, op = found
        left = atom[:pos].rstrip()
        if not left:   # an atom never starts with a blank: the operator opens it
            raise ConditionError(f"`{op}` needs something to compare on its left", off, len(op),
                                 help="for example @3_stdout@=ready or stdout=ready")
        end = pos + len(op)
        return [*text_tokens(left, off), (OP_TOKENS[op], op, off + pos), *operand(atom[end:], off + end)]
    refs = [(r.start(), r.end()) for r in TASKREF_RE.finditer(atom)]
    if len(refs) == 1 and refs[0] == (0, len(atom)):
        return [("TASKREF", make_ref(TASKREF_RE.match(atom)), off)]
    raise ConditionError(f"unknown condition `{atom}`", off, len(atom), help=_unknown_help(atom))


def _split_operator(atom: str) -> tuple[int, str] | None:
    """(position, operator): first a split whose right side is one quoted value, else the
    first operator of ``OPERATOR_ORDER`` that occurs."""
    for op in OPERATOR_ORDER:
        pos = atom.find(op)
        if pos < 0:
            continue
        right = atom[pos + len(op):]
        start = len(right) - len(right.lstrip())
        if right[start:start + 1] in ("\"", "'"):
            close = find_closing_quote(right, start)
            if close is not None and not right[close + 1:].strip():
                return pos, op
    for op in OPERATOR_ORDER:
        pos = atom.find(op)
        if pos >= 0:
            return pos, op
    return None


def _unknown_help(atom: str) -> str:
    low = atom.lower()
    if low in _NEXT_WORDS:
        return f"`{low}` is a value of next=, not a condition"
    if _WORD_OP_RE.search(atom):
        return "words are not operators: write `&` for and, `|` for or"
    if "," in atom:
        return "`,` does not combine conditions: write `|` for or, `&` for and"
    if re.match(r"@[A-Za-z_]\w*@", atom):
        return "a global variable that is not defined stays as text; define it before the first task"
    if re.match(r"@\d+_\w+@", atom):
        return "task results are @N_stdout@, @N_stderr@, @N_exit@, @N_success@ (and the others of the manual)"
    return EXPECTED_FORMS


def operand(raw: str, off: int) -> list[tuple]:
    """Tokens of the value right of an operator: text/placeholders, possibly in quotes.

    A quoted value loses its quotes (``\\"`` inside stands for the quote itself); a value
    that opens a quote and never closes it loses just the opening quote (2.2 is as lenient).
    """
    lead = len(raw) - len(raw.lstrip())
    text = raw.strip()
    off += lead
    if not text:
        return []
    q = text[0]
    quoted = q in "\"'" and len(text) >= 2 and text[-1] == q and text[-2] != "\\"
    if not quoted:
        comma = _COMMA_ATOM_RE.search(text)
        if comma and '"' not in text and "'" not in text:
            raise ConditionError("`,` does not combine conditions", off + comma.start(), 1,
                                 help="write `|` for or, `&` for and (a comma inside a value is fine when "
                                      "what follows is not a condition, e.g. stdout=Hello, world)")
    if quoted:
        inner = text[1:-1].replace("\\" + q, q)
        return [("_QUOTE", q, off), *text_tokens(inner, off + 1), ("_QUOTE", q, off + len(text) - 1)]
    if q in "\"'" and text.find(q, 1) < 0:
        return text_tokens(text[1:], off + 1)
    return text_tokens(text, off)


def text_tokens(text: str, off: int) -> list[tuple]:
    """``TEXT`` and ``TASKREF`` tokens of a literal-with-placeholders string."""
    tokens: list[tuple] = []
    pos = 0
    for m in TASKREF_RE.finditer(text):
        if m.start() > pos:
            tokens.append(("TEXT", text[pos:m.start()], off + pos))
        tokens.append(("TASKREF", make_ref(m), off + m.start()))
        pos = m.end()
    if pos < len(text):
        tokens.append(("TEXT", text[pos:], off + pos))
    return tokens
