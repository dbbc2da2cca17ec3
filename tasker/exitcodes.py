"""The program's exit codes (docs/command-line.md, Exit codes) and the exception that carries one."""

from __future__ import annotations


class Exit:
    """Exit codes.  Plain ints: importing ``enum`` costs start-up time for nothing."""

    OK = 0
    FAILURE = 1            # stop-failure of a task whose own code was 0; unreadable file; crash
    USAGE = 2              # command-line usage errors
    CONDITION_FAILED = 10  # on_success-only failure, failed block without on_failure, nothing ran
    START_OR_RESUME = 12   # --start-from id undefined; recovery state refused
    VALIDATION = 20        # static validation, header errors, bad ids/globals, unknown exec type
    HOST_DNS = 21          # host validation: name resolution failed
    NO_TASKS = 24          # the file defines no task
    INSTANCE_RUNNING = 25  # --instance-check: the same workflow holds the lock
    INVALID_RETURN = 50    # return value is not an integer at run time
    HOST_UNREACHABLE = 60  # host validation: reachability probe failed
    HOST_CONNECTION = 61   # host validation: exec-type binary missing or connection test failed
    TIMEOUT = 124          # a task was killed by its timeout
    SIGINT = 130
    SIGTERM = 143


class TaskerExit(Exception):
    """Stop the program with ``code``; ``message`` (if any) is printed to stderr.

    ``reason`` names the ending for the reports (validation, host_validation,
    start_from, recovery, instance, no_tasks, error).
    """

    def __init__(self, code: int, message: str = "", reason: str = "error") -> None:
        super().__init__(message or f"exit {code}")
        self.code = code
        self.message = message
        self.reason = reason
