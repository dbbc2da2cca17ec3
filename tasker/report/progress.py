"""A live progress line on a terminal: tasks done, running and failed.

Shown only when stdout is a terminal (and ``TERM`` is not ``dumb``); the log
file and piped output never see it.  Log lines are written above it: the line
is cleared, the log line printed, the line drawn again.  Redraws are limited
to ten a second, so a 50-wide block does not flood the terminal.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

CLEAR = "\r\x1b[2K"
MIN_INTERVAL = 0.1


def wanted(stream=None, environ: dict | None = None) -> bool:
    """A progress line makes sense: the stream is a terminal that understands it."""
    stream = stream or sys.stdout
    environ = environ if environ is not None else os.environ
    try:
        return stream.isatty() and environ.get("TERM", "") not in ("", "dumb")
    except (AttributeError, ValueError):
        return False


class Progress:
    """Counts what the VM reports and keeps one status line at the bottom of the terminal."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdout
        self.started = time.monotonic()
        self.running = 0
        self.done = 0
        self.failed = 0
        self.block: tuple[int, int, int] | None = None   # (block id, members done, members)
        self.current: str = ""
        self.shown = False
        self.last_draw = 0.0
        self.lock = threading.RLock()

    # ------------------------------------------------------------ events from the VM

    def __call__(self, event: str, **info) -> None:
        with self.lock:
            if event == "start":
                self.running += 1
                self.current = str(info.get("task", ""))
            elif event == "done":
                self.running = max(0, self.running - 1)
                self.done += 1
                if not info.get("success", True):
                    self.failed += 1
                if self.block is not None:
                    b, d, n = self.block
                    self.block = (b, d + 1, n)
            elif event == "block":
                self.block = (info["block"], 0, info["members"])
            elif event == "block_end":
                self.block = None
                self.current = str(info["block"])   # the block, not whichever member started last
            self.draw()

    # ------------------------------------------------------------ drawing

    def text(self) -> str:
        elapsed = int(time.monotonic() - self.started)
        parts = [f"{self.done} done", f"{self.running} running", f"{self.failed} failed"]
        if self.block is not None:
            b, d, n = self.block
            parts.insert(0, f"block {b}: {d}/{n}")
        elif self.current:
            parts.insert(0, f"task {self.current}")
        return f"[tasker] {' · '.join(parts)} · {elapsed // 60}:{elapsed % 60:02d}"

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_draw < MIN_INTERVAL:
            return
        self.last_draw = now
        try:
            self.stream.write(CLEAR + self.text())
            self.stream.flush()
            self.shown = True
        except (OSError, ValueError):
            pass

    def above(self, write) -> None:
        """Run ``write`` (a log line) with the progress line moved out of its way."""
        with self.lock:
            if self.shown:
                with contextlib.suppress(OSError, ValueError):
                    self.stream.write(CLEAR)
                self.shown = False
            write()
            self.draw(force=True)

    def close(self) -> None:
        with self.lock:
            if self.shown:
                try:
                    self.stream.write(CLEAR)
                    self.stream.flush()
                except (OSError, ValueError):
                    pass
                self.shown = False
