"""The exception that ends a run from inside the VM, shared by the machine and fork/join."""

from __future__ import annotations


class Fatal(Exception):
    """Ends the run at once with ``exit_code`` (missing command, unknown exec type ...)."""

    def __init__(self, reason: str, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.exit_code = exit_code
        self.message = message
