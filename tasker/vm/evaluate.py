"""Condition evaluation over the condition AST: what each atom means at run time.

A condition sees one ``Context``: an exit code, two outputs, the task's own
success (when known) and, for blocks, the counts of their members.  Operand
templates are rendered against the result store when evaluated; the rendered
text is data.  Evaluation never raises: anything it cannot judge is false.
"""

from __future__ import annotations

import re

from tasker.numbers import too_long
from tasker.runners.output import Output
from tasker.syntax.ast import (
    AllOf,
    AnyOf,
    Compare,
    Contains,
    ExitCode,
    ExitNotZero,
    Keyword,
    Multi,
    RefTest,
    StreamCount,
    StreamTest,
    Template,
)

# What counts as a number: without a `.` only a whole number (sign and blanks allowed); with a
# `.` a decimal, exponent allowed (`1.5e3`).  `1e3`, `inf`, `nan` and `1_000` stay text.
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*\Z")
_DECIMAL = re.compile(r"\s*[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*\Z")
_BOOLEANS = {"true": 1, "false": 0}
EMPTY = Output("")


class Context:
    """What a condition sees."""

    __slots__ = ("counts", "exit_code", "stderr", "stdout", "success")

    def __init__(self, exit_code: int = 0, stdout: Output = EMPTY, stderr: Output = EMPTY,
                 success: bool | None = None, counts: tuple | None = None) -> None:
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr
        self.success = success      # the task's own success, where it is already decided
        self.counts = counts        # (succeeded, failed, total) of a block's members


PRE = Context()                     # condition=, decisions, conditional selectors: exit 0, no output


def evaluate(cond: object, ctx: Context, render) -> bool:
    """True or false; ``render(template) -> str`` fills task-result placeholders."""
    try:
        return _eval(cond, ctx, render)
    except Exception:
        return False


def _eval(cond: object, ctx: Context, render) -> bool:
    kind = type(cond)
    if kind is AnyOf:
        return any(_eval(c, ctx, render) for c in cond.items)
    if kind is AllOf:
        return all(_eval(c, ctx, render) for c in cond.items)
    if kind is ExitCode:
        return ctx.exit_code == cond.code
    if kind is ExitNotZero:
        return ctx.exit_code != 0
    if kind is Keyword:
        if cond.word == "true":
            return True
        if cond.word == "false":
            return False
        return ctx.success if ctx.success is not None else ctx.exit_code == 0
    if kind is StreamTest:
        return _stream_test(cond, ctx, render)
    if kind is StreamCount:
        out = ctx.stdout if cond.stream == "stdout" else ctx.stderr
        return _compare_numbers(out.line_count(cond.stream == "stderr"), cond.op, cond.count)
    if kind is Compare:
        return _compare(cond, ctx, render)
    if kind is Contains:
        found = ctx.stdout.contains(render(cond.pattern))
        return not found if cond.negate else found
    if kind is RefTest:
        return render_ref(cond, render).strip().lower() == "true"
    if kind is Multi:
        return multi(cond, ctx.counts)
    return False                    # Invalid (kept only when validation is skipped): false


def reads_results(cond: object, own: bool) -> bool:
    """Whether a condition reads a result of some task: a placeholder such as ``@3_stdout@``
    or, when ``own`` (success=, next=, loop_break of a task or block), the exit code,
    output or counts of the task it belongs to.  A dry run assumes such conditions hold."""
    kind = type(cond)
    if kind in (AnyOf, AllOf):
        return any(reads_results(c, own) for c in cond.items)
    if kind in (ExitCode, ExitNotZero, StreamCount, Multi):
        return own
    if kind is Keyword:
        return own and cond.word == "success"
    if kind is StreamTest:
        return own or _has_ref(cond.pattern)
    if kind is Contains:
        return own or _has_ref(cond.pattern)
    if kind is Compare:
        own_subject = cond.subject in ("exit", "stdout", "stderr")
        return (own and own_subject) or (not own_subject and _has_ref(cond.subject)) or _has_ref(cond.operand)
    return kind is RefTest


def _has_ref(template) -> bool:
    return template is not None and any(type(p) is not str for p in template.parts)


def render_ref(cond: RefTest, render) -> str:
    return render(Template((cond.ref,)))


def _stream_test(cond: StreamTest, ctx: Context, render) -> bool:
    out = ctx.stdout if cond.stream == "stdout" else ctx.stderr
    if cond.pattern is None:
        # stdout~ : empty once all whitespace is removed; stderr~ : only trailing newlines (2.2)
        result = out.is_blank(trailing_newlines_only=cond.stream == "stderr")
    else:
        result = out.contains(render(cond.pattern))
    return not result if cond.negate else result


def _compare(cond: Compare, ctx: Context, render) -> bool:
    right = render(cond.operand).strip()
    subject = cond.subject
    op = cond.op
    if subject == "exit":
        left: str | None = str(ctx.exit_code)
    elif subject in ("stdout", "stderr"):
        out = ctx.stdout if subject == "stdout" else ctx.stderr
        # (`stdout~x` is a StreamTest: a stream subject here only takes = != < <= > >=)
        if op in ("=", "!="):
            equal = out.stripped_equals(right) or _loosely_equal(out.stripped_if_small(), right)
            return equal if op == "=" else not equal
        left = out.stripped_if_small()
        if left is None:
            return False
    else:
        left = render(subject).strip()
    if op == "~":
        return right in left
    if op == "!~":
        return right not in left
    if op == "=":
        return _loosely_equal(left, right)
    if op == "!=":
        return not _loosely_equal(left, right)
    a, b = _ordinal(left), _ordinal(right)
    if a is None or b is None:
        return False
    return _compare_numbers(a, op, b)


def _loosely_equal(left: str | None, right: str) -> bool:
    """Textual equality (D4); numbers also equal by value (042 = 42, 4.0 = 4), booleans in any case."""
    if left is None:
        return False
    if left == right:
        return True
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        return a == b
    low_l, low_r = left.lower(), right.lower()
    return low_l in ("true", "false") and low_l == low_r


def _number(text: str) -> float | None:
    """The value of a number as the condition language spells one, else None."""
    if _INTEGER.match(text):
        # Output decides the length: past 18 digits int() may be refused (Python's 4,300-digit
        # guard) and costs quadratic time; a float still orders it (+-inf far out).
        return float(text) if too_long(text) else int(text)
    if _DECIMAL.match(text):
        return float(text)
    return None


def _ordinal(text: str) -> float | None:
    """A side of `<` `<=` `>` `>=`: a number, or a boolean counted as 1/0 (as TASKER 2.2 does)."""
    number = _number(text)
    if number is None:
        return _BOOLEANS.get(text.strip().lower())
    return number


def _compare_numbers(a: float, op: str, b: float) -> bool:
    if op == "=":
        return a == b
    if op == "!=":
        return a != b
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    if op == ">=":
        return a >= b
    return False


def multi(cond: Multi, counts: tuple | None) -> bool:
    """The multi-task table of docs/condition-syntax.md (false with no results at all)."""
    if counts is None:
        return False
    succeeded, failed, total = counts
    if total == 0:
        return False
    kind, n = cond.kind, cond.count
    if kind == "all_success":
        return succeeded == total
    if kind == "any_success":
        return succeeded > 0
    if kind == "majority_success":
        return succeeded > total / 2
    if kind == "min_success":
        return succeeded >= n
    if kind == "max_success":
        return succeeded <= n
    if kind == "min_failed":
        return failed >= n
    if kind == "max_failed":
        return failed <= n
    return False
