"""AST node classes: what a task file and a condition say, with where they say it.

Two families.  File nodes mirror the three sections of a task file
(docs/taskfile.md): file-defined arguments, global definitions and task blocks,
each line kept with its ``Span``.  Condition nodes are the typed tree of one
condition (docs/condition-syntax.md, D1-D6); operands that may contain task
results are ``Template`` values whose parts are literal text or ``TaskRef``.

Spans never take part in equality, so the same text parsed at two places
gives equal trees.
"""

from __future__ import annotations

import attrs

from tasker.diagnostics import Span

# ----------------------------------------------------------------- file nodes


@attrs.frozen
class Pair:
    """A ``key=value`` line (both sides trimmed) at ``line`` of ``file``.

    The line as written is kept instead of columns, which are worked out when a
    span is asked for: a 20,000-task file has 150,000 of these, and nearly none
    is ever reported.
    """

    key: str
    value: str
    file: str = attrs.field(eq=False)
    line: int = attrs.field(eq=False)
    raw: str = attrs.field(eq=False)

    @property
    def col(self) -> int:
        return len(self.raw) - len(self.raw.lstrip()) + 1

    @property
    def value_col(self) -> int:
        raw = self.raw
        eq = raw.find("=")
        rest = raw[eq + 1:]
        return eq + 2 + (len(rest) - len(rest.lstrip())) if self.value else len(raw.rstrip()) + 1

    @property
    def span(self) -> Span:
        return Span(self.file, self.line, self.col, max(1, len(self.key)))

    @property
    def value_span(self) -> Span:
        return Span(self.file, self.line, self.value_col, max(1, len(self.value)))


@attrs.frozen
class FileArg:
    """A line of the file-defined-argument header, e.g. ``--log-level=DEBUG``."""

    text: str
    span: Span = attrs.field(eq=False)


@attrs.frozen
class StrayLine:
    """A line that is neither blank, a comment, a flag nor ``key=value``."""

    text: str
    span: Span = attrs.field(eq=False)


@attrs.frozen
class TaskBlock:
    """A ``task=`` line and the lines that follow it up to the next ``task=``."""

    head: Pair     # the task=ID line
    fields: tuple  # of Pair, in file order; repeated keys kept (last wins later)
    stray: tuple   # of StrayLine

    @property
    def id_text(self) -> str:
        return self.head.value

    @property
    def span(self) -> Span:
        return self.head.span

    @property
    def id_span(self) -> Span:
        return self.head.value_span


@attrs.frozen
class TaskFile:
    """A whole task file: header arguments, global definitions, task blocks."""

    path: str
    file_args: tuple  # of FileArg
    globals: tuple    # of Pair (reserved task-field names included; the checker drops them)
    tasks: tuple      # of TaskBlock
    stray: tuple      # of StrayLine outside task blocks


# ----------------------------------------------------------------- condition nodes


@attrs.frozen
class TaskRef:
    """``@N_field@``: a result of task N, read when the condition or field is evaluated."""

    task: int
    name: str                          # canonical lower-case field: stdout, exit, success ...
    text: str = attrs.field(default="", eq=False)   # as written, e.g. "@3_STDOUT@"
    span: Span | None = attrs.field(default=None, eq=False)

    @property
    def written(self) -> str:
        """The placeholder as the file wrote it (left in place when there is no value)."""
        return self.text or f"@{self.task}_{self.name}@"


@attrs.frozen
class Template:
    """Text with task-result placeholders: a tuple of ``str`` and ``TaskRef`` parts."""

    parts: tuple

    @property
    def is_literal(self) -> bool:
        return all(type(p) is str for p in self.parts)

    def literal(self) -> str:
        """The text, with placeholders written as in the source."""
        return "".join(p if type(p) is str else p.written for p in self.parts)


EMPTY_TEMPLATE = Template(())


@attrs.frozen
class AnyOf:
    """``a | b | ...``: true when any item is true."""

    items: tuple
    span: Span | None = attrs.field(default=None, eq=False)


@attrs.frozen
class AllOf:
    """``a & b & ...``: true when every item is true."""

    items: tuple
    span: Span | None = attrs.field(default=None, eq=False)


@attrs.frozen
class ExitCode:
    """``exit_N``: the exit code equals N."""

    code: int
    span: Span | None = attrs.field(default=None, eq=False)


@attrs.frozen
class ExitNotZero:
    """``exit_not_0``: the exit code is not 0."""

    span: Span | None = attrs.field(default=None, eq=False)


@attrs.frozen
class Keyword:
    """``true``, ``false`` or ``success`` (the task's own success; exit 0 elsewhere)."""

    word: str
    span: Span | None = attrs.field(default=None, eq=False)


@attrs.frozen
class Multi:
    """A multi-task condition of a block: ``all_success``, ``min_success=N`` ..."""

    kind: str         # all_success any_success majority_success min_success max_success
    count: int | None = None   # min_failed max_failed take a count too
    span: Span | None = attrs.field(default=None, eq=False)


@attrs.frozen
class StreamTest:
    """``stdout~text`` / ``stdout!~text``; ``pattern`` None means the bare ``stdout~`` (is empty)."""

    stream: str       # stdout | stderr
    negate: bool
    pattern: Template | None
    span: Span | None = attrs.field(default=None, eq=False)


@attrs.frozen
class StreamCount:
    """``stdout_count<op>N``: the number of output lines compared with N."""

    stream: str
    op: str
    count: int
    span: Span | None = attrs.field(default=None, eq=False)


@attrs.frozen
class Compare:
    """``subject <op> operand``; subject is ``stdout``/``stderr``/``exit`` or a Template."""

    subject: object   # "stdout" | "stderr" | "exit" | Template
    op: str           # = != < <= > >= ~ !~
    operand: Template
    span: Span | None = attrs.field(default=None, eq=False)


@attrs.frozen
class Contains:
    """Legacy ``contains:text`` / ``not_contains:text`` on the task's stdout."""

    negate: bool
    pattern: Template
    span: Span | None = attrs.field(default=None, eq=False)


@attrs.frozen
class RefTest:
    """A bare ``@N_field@``: true when its value is ``true`` (any case)."""

    ref: TaskRef
    span: Span | None = attrs.field(default=None, eq=False)


@attrs.frozen
class Invalid:
    """A condition that did not parse (only kept when validation is skipped): always false."""

    text: str
    message: str
    span: Span | None = attrs.field(default=None, eq=False)


# ----------------------------------------------------------------- flow-control values


@attrs.frozen
class Next:
    """A ``next=`` value: ``never``, ``always``, ``loop`` (optionally ``loop&COND``) or a condition."""

    kind: str                    # never | always | loop | condition
    condition: object = None     # the condition for kind "condition", the while-condition for "loop"
    span: Span | None = attrs.field(default=None, eq=False)


@attrs.frozen
class Split:
    """``stdout_split=DELIM,INDEX``: keep field INDEX of the output split by DELIM."""

    delimiter: str               # keyword (space, comma ...) or literal/regular expression text
    index: int
    span: Span | None = attrs.field(default=None, eq=False)
