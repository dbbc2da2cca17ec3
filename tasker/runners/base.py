"""The runner interface the VM talks to, plus the cancel token and the clock.

The VM never starts a process or sleeps by itself: it asks a ``Runner`` and a
``Clock``.  Tests pass fakes; the program passes ``ProcessRunner`` and
``SystemClock``.  ``Cancel`` is how Ctrl-C and SIGTERM reach every waiting
piece at once: a flag plus a pipe that becomes readable, so a ``poll`` that
waits on a child's output wakes up too.
"""

from __future__ import annotations

import contextlib
import os
import select
import time

from tasker.runners.output import Output


class RunResult:
    """What running one command produced."""

    __slots__ = ("duration", "end", "error", "exit_code", "not_found", "start", "stderr", "stdout",
                 "timed_out", "timeout")

    def __init__(self, exit_code: int, stdout: Output, stderr: Output, *, timed_out: bool = False,
                 timeout: float = 0.0, error: str = "", not_found: bool = False,
                 start: float = 0.0, end: float = 0.0) -> None:
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr
        self.timed_out = timed_out
        self.timeout = timeout
        self.error = error          # spawn error text ("" when the process started)
        self.not_found = not_found  # the program does not exist
        self.start = start          # wall-clock seconds (time.time)
        self.end = end
        self.duration = max(0.0, end - start)


class Cancel:
    """Set once by a signal handler; ``fd`` turns readable for every poller."""

    def __init__(self) -> None:
        self.signum = 0
        self._r, self._w = os.pipe()
        os.set_blocking(self._w, False)

    @property
    def fd(self) -> int:
        return self._r

    @property
    def is_set(self) -> bool:
        return self.signum != 0

    def set(self, signum: int) -> None:
        if not self.signum:
            self.signum = signum
            with contextlib.suppress(OSError):
                os.write(self._w, b"x")

    def close(self) -> None:
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)


MAX_WAIT_SLICE = 86400.0   # seconds: the longest single wait handed to the OS


class SystemClock:
    """Real time: ``now`` for durations, ``sleep`` that wakes up early on cancel."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float, cancel: Cancel | None = None) -> bool:
        """Sleep; return False if the sleep was cut short by ``cancel``."""
        if not seconds > 0:   # also NaN
            return True
        # A sleep comes from the task file or from task output (``sleep=@0_stdout@``): it can
        # be huge or infinite, which time.sleep and poll refuse, so wait in bounded slices.
        deadline = time.monotonic() + seconds
        poller = None
        if cancel is not None:
            poller = select.poll()
            poller.register(cancel.fd, select.POLLIN)
        while cancel is None or not cancel.is_set:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            if poller is None:
                time.sleep(min(left, MAX_WAIT_SLICE))
            else:
                poller.poll(min(left, MAX_WAIT_SLICE) * 1000)
        return False


    def wait_on(self, condition, timeout: float | None) -> None:
        """Wait for ``condition`` (a threading.Condition, held) to be notified, or ``timeout``."""
        condition.wait(timeout)


class Runner:
    """Interface: run ``argv`` and return a ``RunResult``; never raises for a failing command."""

    def run(self, argv: list[str], timeout: float, cancel: Cancel) -> RunResult:  # pragma: no cover
        raise NotImplementedError
