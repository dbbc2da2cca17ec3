"""The exceptions of the VM, shared by the machine, fork/join and the checkpoint store."""

from __future__ import annotations


class Fatal(Exception):
    """Ends the run at once with ``exit_code`` (missing command, unknown exec type ...)."""

    def __init__(self, reason: str, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.exit_code = exit_code
        self.message = message


class CheckpointError(Exception):
    """A checkpoint could not be written (a full disk ...); the file on disk is the last good one."""
