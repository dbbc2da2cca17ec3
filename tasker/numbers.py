"""Whole numbers read from text that a user or a task controls, bounded before conversion.

Python refuses to convert a string of more than 4,300 digits to an int (and the
conversion costs quadratic time below that), so a task file, a recovery file or
a task's output could crash tasker with one long number.  No number tasker uses
needs more than 18 digits: every conversion of outside text goes through here.
"""

from __future__ import annotations

MAX_DIGITS = 18
LIMIT = 10 ** MAX_DIGITS


class OutOfRange(ValueError):
    """A whole number with more than ``MAX_DIGITS`` digits."""

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(f"the number {abbreviate(text)} is out of range (at most {MAX_DIGITS} digits)")


def digit_count(text: str) -> int:
    return len(text.strip().lstrip("+-").lstrip("0"))


def too_long(text: str) -> bool:
    return digit_count(text) > MAX_DIGITS


def abbreviate(text: str) -> str:
    """``123456789012…`` (N digits) for a long number, the number itself otherwise."""
    text = text.strip()
    if len(text) <= 24:
        return text
    return f"{text[:12]}… ({digit_count(text)} digits)"


def whole(text: str) -> int:
    """``int(text)``; raises ``OutOfRange`` (a ValueError) for more than ``MAX_DIGITS`` digits."""
    if too_long(text):
        raise OutOfRange(text)
    return _to_int(text)


def clamped(text: str) -> int:
    """``int(text)``, or +-``LIMIT`` for a longer number (where a range check follows anyway)."""
    if too_long(text):
        return -LIMIT if text.strip().startswith("-") else LIMIT
    return _to_int(text)


def _to_int(text: str) -> int:
    """``int`` of at most ``MAX_DIGITS`` significant digits: leading zeros do not count (int()
    counts them against its 4,300-digit limit)."""
    body = text.strip()
    sign = body[:1] if body[:1] in "+-" else ""
    digits = body[len(sign):]
    if len(digits) > MAX_DIGITS and digits.isdigit():
        digits = digits.lstrip("0") or "0"
    return int(sign + digits)
