"""The error the condition parser raises (kept apart so importing it is free)."""

from __future__ import annotations


class ConditionError(Exception):
    """A condition that does not parse: what is wrong, where, and what to write instead."""

    def __init__(self, message: str, offset: int, length: int, help: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.length = max(1, length)
        self.help = help
