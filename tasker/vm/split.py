"""``stdout_split`` / ``stderr_split``: keep one field of an output (language.md §9, D10)."""

from __future__ import annotations

import re

from tasker.runners.output import Output

KEYWORDS = {
    "space": r" +",
    "whitespace": r"\s+",
    "tab": r"\t+",
    "newline": r"\n+",
    "comma": r",",
    "semicolon": r";",
    "semi": r";",
    "colon": r":",
    "pipe": r"\|",
}


def delimiter_pattern(delimiter: str) -> re.Pattern:
    """The keyword's pattern; any other text is a regular expression (literal if it is not one)."""
    pattern = KEYWORDS.get(delimiter.lower())
    if pattern is None:
        try:
            return re.compile(delimiter)
        except re.error:
            return re.compile(re.escape(delimiter))
    return re.compile(pattern)


def apply_split(out: Output, spec) -> Output:
    """Field ``spec.index`` of ``out`` split by ``spec.delimiter``; unchanged when out of range.

    The field replaces the output (in memory: a spilled file holds the unsplit text).
    """
    if spec.index < 0 or out.size == 0:
        return out
    text = out.text()
    if not text:
        return out
    pieces = delimiter_pattern(spec.delimiter).split(text)
    if spec.index >= len(pieces):
        return out
    return Output(pieces[spec.index])
