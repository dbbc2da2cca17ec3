"""Errors of the exec-type layer, shared by the exec types and the runners of their own."""

from __future__ import annotations


class ExecTypeError(Exception):
    """An exec type that is not configured, or a broken template (exit 20)."""
