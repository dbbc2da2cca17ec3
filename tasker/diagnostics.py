"""Compiler-style diagnostics: ``FILE:LINE:COL: error: message``, source line, caret, help.

Every stage that finds a problem in a task file records a ``Diagnostic`` with
the ``Span`` it refers to; the CLI renders them all at once (errors and
warnings interleaved in file order) and exits 20 if any is an error.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

ERROR = "error"
WARNING = "warning"
NOTE = "note"


@attrs.frozen
class Span:
    """A place in a source file: 1-based line and column, and a length for the caret."""

    file: str
    line: int
    col: int = 1
    length: int = 1

    def at(self, offset: int, length: int = 1) -> Span:
        """The span ``offset`` characters to the right, on the same line."""
        return Span(self.file, self.line, self.col + offset, max(1, length))


@attrs.frozen
class Diagnostic:
    """One problem (or warning) found in a task file."""

    severity: str
    message: str
    span: Span | None = None
    help: str | None = None
    related: tuple = attrs.field(default=())  # ((Span, "note text"), ...)


class Diagnostics:
    """Collects diagnostics for one file, in the order they were found."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def error(self, message: str, span: Span | None = None, help: str | None = None,
              related: tuple = ()) -> None:
        self.items.append(Diagnostic(ERROR, message, span, help, related))

    def warning(self, message: str, span: Span | None = None, help: str | None = None,
                related: tuple = ()) -> None:
        self.items.append(Diagnostic(WARNING, message, span, help, related))

    def extend(self, other: Iterable[Diagnostic]) -> None:
        self.items.extend(other)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == WARNING]

    def has_errors(self) -> bool:
        return any(d.severity == ERROR for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        """File order (line, column); diagnostics without a place come first."""
        def key(d: Diagnostic) -> tuple:
            return (0, 0, 0) if d.span is None else (1, d.span.line, d.span.col)
        return sorted(self.items, key=key)


def render(diag: Diagnostic, lines: list[str] | None, display_file: str | None = None) -> str:
    """Format one diagnostic like a compiler: location, message, source line, caret, help."""
    out = []
    span = diag.span
    where = ""
    if span is not None:
        where = f"{display_file or span.file}:{span.line}:{span.col}: "
    out.append(f"{where}{diag.severity}: {diag.message}")
    if span is not None and lines is not None and 0 < span.line <= len(lines):
        out.extend(_excerpt(lines[span.line - 1], span))
    for rel_span, text in diag.related:
        loc = f"{display_file or rel_span.file}:{rel_span.line}:{rel_span.col}: " if rel_span else ""
        out.append(f"{loc}note: {text}")
        if rel_span is not None and lines is not None and 0 < rel_span.line <= len(lines):
            out.extend(_excerpt(lines[rel_span.line - 1], rel_span))
    if diag.help:
        pad = " " * (len(str(span.line)) + 1) if span is not None else ""
        for i, text in enumerate(diag.help.splitlines()):
            out.append(f"{pad} = help: {text}" if i == 0 else f"{pad}         {text}")
    return "\n".join(out)


EXCERPT_WIDTH = 100


def _excerpt(line: str, span: Span) -> list[str]:
    """The source line and a caret under the span; long lines are cut around the span."""
    text = line.rstrip("\r\n").expandtabs(1)
    number = str(span.line)
    gutter = " " * len(number)
    col = max(1, min(span.col, len(text) + 1))
    length = max(1, min(span.length, len(text) - col + 1))
    if len(text) > EXCERPT_WIDTH:
        start = max(0, min(col - 1 - 20, len(text) - EXCERPT_WIDTH))
        shown = text[start:start + EXCERPT_WIDTH]
        head = "..." if start else ""
        tail = "..." if start + EXCERPT_WIDTH < len(text) else ""
        col = col - start + len(head)
        length = min(length, EXCERPT_WIDTH - (col - len(head) - 1))
        text = head + shown + tail
    caret = "^" + "~" * (max(1, length) - 1)
    return [f"{number} | {text}", f"{gutter} | {' ' * (col - 1)}{caret}"]


def listing(items: list, limit: int = 8) -> str:
    """``a, b, c`` for short lists, ``a, b, ... (N more)`` for long ones."""
    shown = ", ".join(str(i) for i in items[:limit])
    return shown if len(items) <= limit else f"{shown}, ... ({len(items) - limit} more)"


def summary(diags: Diagnostics) -> str:
    """``N errors, M warnings`` in words a person reads."""
    e, w = len(diags.errors), len(diags.warnings)
    parts = []
    if e:
        parts.append(f"{e} error{'s' if e != 1 else ''}")
    if w:
        parts.append(f"{w} warning{'s' if w != 1 else ''}")
    return ", ".join(parts) or "no problems"
