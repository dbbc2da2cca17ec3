"""Console and log-file lines: ``[DDMonYY HH:MM:SS] LEVEL: message`` (docs/command-line.md).

Every line goes to stdout and, in real runs, to the log file.  INFO lines carry
no level prefix, as in TASKER 2.x.  The wording of messages is ours; the facts
they carry (task id, exit code, decision) are what users grep for.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

from tasker.report.masking import NO_SECRETS
from tasker.report.private import open_append

LEVELS = {"ERROR": 40, "WARN": 30, "INFO": 20, "DEBUG": 10}
PREFIX = {"ERROR": "ERROR: ", "WARN": "WARN: ", "INFO": "", "DEBUG": "DEBUG: "}


_last_stamp = [-1, ""]


def stamp(t: float | None = None) -> str:
    """``DDMonYY HH:MM:SS`` (formatted once per second: a run writes many lines a second)."""
    second = int(time.time() if t is None else t)
    if second != _last_stamp[0]:
        _last_stamp[0] = second
        _last_stamp[1] = time.strftime("%d%b%y %H:%M:%S", time.localtime(second))
    return _last_stamp[1]


def show_output(text: str, limit: int = 200, size: int | None = None) -> str:
    """An output as one log-friendly line: newlines as \\n, at most ``limit`` characters.

    ``size``, the whole output's size in bytes, is given when ``text`` is only its head.
    """
    flat = text.rstrip("\n").replace("\r", "").replace("\n", "\\n")
    if len(flat) > limit:
        total = f"{len(text)} chars" if size is None else f"{size} bytes"
        return f"{flat[:limit]}... ({total} total)"
    return flat


def quiet_stream(stream) -> None:
    """Point a console stream whose reader went away (EPIPE) at /dev/null.

    Later writes, and the flush at interpreter exit, then succeed silently instead
    of raising BrokenPipeError (``tasker --help | head -1``).
    """

    try:
        fd = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):
        return
    try:
        os.dup2(null, fd)
    except OSError:
        pass
    finally:
        os.close(null)


class Log:
    """Writes log lines to the console and (once opened) to the log file."""

    def __init__(self, level: str = "INFO", stream=None) -> None:
        self.threshold = LEVELS[level]   # the command line accepts only these names
        self.stream = stream or sys.stdout
        self.file = None
        self.path = ""
        self.masker = NO_SECRETS    # masking.Masker of the workflow's secret globals
        self.lock = threading.Lock()
        self.progress = None   # report.progress.Progress on a terminal: lines go above it
        self.file_error = ""   # why the log file stopped taking lines (said once on the console)

    def open(self, path: str) -> None:
        self.file = open_append(path)   # mode 600: the log holds outputs
        self.path = path

    def close(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):   # lines it could not take were already reported
                self.file.close()
            self.file = None

    def enabled(self, level: str) -> bool:
        return LEVELS[level] >= self.threshold

    def write(self, level: str, message: str, console: str | None = None) -> None:
        """One line; ``console`` replaces the message on the console only (the file keeps it whole)."""
        if LEVELS[level] < self.threshold:
            return
        if self.masker:
            message = self.masker.text(message)   # outputs and errors can hold secrets too
            console = None if console is None else self.masker.text(console)
        prefix = f"[{stamp()}] {PREFIX[level]}"
        line = f"{prefix}{message}\n"
        shown = line if console is None else f"{prefix}{console}\n"
        with self.lock:   # lines of parallel members never interleave
            if self.progress is not None:
                self.progress.above(lambda: self._console(shown))
            else:
                self._console(shown)
            if self.file is not None:
                self._to_file(line)

    def _to_file(self, line: str) -> None:
        try:
            self.file.write(line)
            self.file.flush()
        except OSError as exc:   # a full disk: lines go on to the console; say so once
            if not self.file_error:
                self.file_error = exc.strerror or str(exc)
                self._console(f"[{stamp()}] {PREFIX['ERROR']}could not write the log file {self.path}: "
                              f"{self.file_error}; from here on lines go to the console only\n")

    def _console(self, line: str) -> None:
        try:
            self.stream.write(line)
            self.stream.flush()
        except BrokenPipeError:
            quiet_stream(self.stream)   # `tasker ... | head`: the run goes on, the log file keeps it all
        except (OSError, ValueError):
            pass  # a closed console must not stop the run

    def error(self, message: str, console: str | None = None) -> None:
        self.write("ERROR", message, console)

    def warn(self, message: str) -> None:
        self.write("WARN", message)

    def info(self, message: str) -> None:
        self.write("INFO", message)

    def debug(self, message: str) -> None:
        self.write("DEBUG", message)

    def mask(self, text: str) -> str:
        """Hide the values of secret globals (see ``tasker.report.masking``)."""
        return self.masker.text(text)
