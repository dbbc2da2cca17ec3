"""The result store: one record per task id, and ``@N_field@`` substitution.

A record is written after a task (or block) finishes and overwrites any earlier
record of the same id.  Templates are rendered against the store when a field
is used; the inserted text is data and is never scanned again (D2).
"""

from __future__ import annotations

import threading
import time

from tasker.runners.exectypes import Arguments, Value
from tasker.runners.output import SUBSTITUTION_LIMIT, Output
from tasker.syntax.ast import Template


class Record:
    """The stored result of one task, subtask or block (docs/taskfile.md, D7)."""

    __slots__ = ("counts", "end", "exit_code", "hostname", "kind", "start", "stderr", "stdout", "success")

    def __init__(self, exit_code: int, stdout: Output | str = "", stderr: Output | str = "",
                 success: bool = False, *, hostname: str = "", start: float = 0.0, end: float = 0.0,
                 counts: tuple | None = None, kind: str = "task") -> None:
        self.exit_code = exit_code
        self.stdout = stdout if isinstance(stdout, Output) else Output(stdout)
        self.stderr = stderr if isinstance(stderr, Output) else Output(stderr)
        self.success = success
        self.hostname = hostname
        self.start = start
        self.end = end
        self.counts = counts      # (succeeded, failed, total) for blocks
        self.kind = kind          # task | skipped | block | return

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def timed_out(self) -> bool:
        return self.exit_code == 124

    def field(self, name: str) -> str | None:
        """The text of ``@N_<name>@``, or None when the record has no such value."""
        if name == "stdout":
            return self.stdout.for_substitution()
        if name == "stderr":
            return self.stderr.for_substitution()
        if name == "exit":
            return str(self.exit_code)
        if name == "success":
            return "True" if self.success else "False"
        if name == "stdout_file":
            return self.stdout.path or ""
        if name == "stderr_file":
            return self.stderr.path or ""
        if name == "hostname":
            return self.hostname
        if name == "duration":
            return f"{self.duration:.3f}"
        if name in ("start_time", "end_time"):
            t = self.start if name == "start_time" else self.end
            return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t)) if t else ""
        if name in ("success_count", "failed_count", "total_count") and self.counts is not None:
            s, f, t = self.counts
            return str({"success_count": s, "failed_count": f, "total_count": t}[name])
        return None

    def to_json(self) -> dict:
        """The record as --output-json writes it (docs/command-line.md)."""
        out = {
            "exit_code": self.exit_code,
            "stdout": self.stdout.head(SUBSTITUTION_LIMIT) if self.stdout.spilled else self.stdout.text(),
            "stderr": self.stderr.head(SUBSTITUTION_LIMIT) if self.stderr.spilled else self.stderr.text(),
            "success": self.success,
            "hostname": self.hostname,
        }
        if self.stdout.spilled:
            out["stdout_file"] = self.stdout.path
            out["stdout_size"] = self.stdout.size
        if self.stderr.spilled:
            out["stderr_file"] = self.stderr.path
            out["stderr_size"] = self.stderr.size
        return out


class ResultStore:
    """Records by task id, in the order they were first stored."""

    def __init__(self) -> None:
        self.records: dict[int, Record] = {}
        self.lock = threading.Lock()
        # ``spill_file(name) -> (path, binary file)`` of the run's private directory: lets
        # ``@N_stdout_file@`` name a file also for an output small enough to be held in memory.
        self.spill_file = None
        self._files: dict[tuple[int, str], tuple[Record, str]] = {}

    def put(self, task: int, record: Record) -> None:
        with self.lock:
            self.records[task] = record

    def get(self, task: int) -> Record | None:
        return self.records.get(task)

    def render(self, template: Template | None) -> str:
        """The text of a template: task-result placeholders filled from the store."""
        if template is None:
            return ""
        parts = template.parts
        if len(parts) == 1 and type(parts[0]) is str:
            return parts[0]
        out = []
        for part in parts:
            if type(part) is str:
                out.append(part)
                continue
            value = self._value(part)
            out.append(value if value is not None else part.written)
        return "".join(out)

    def _value(self, part) -> str | None:
        """The value of one task-result placeholder, or None when its task has not run."""
        record = self.records.get(part.task)
        value = record.field(part.name) if record is not None else None
        if value == "" and part.name in ("stdout_file", "stderr_file") and self.spill_file is not None:
            value = self._file_of(part.task, record, part.name[:6])
        return value

    def _file_of(self, task: int, record: Record, stream: str) -> str:
        """A private file holding a stream kept in memory, written on first use per record."""
        with self.lock:
            known = self._files.get((task, stream))
            if known is not None and known[0] is record:
                return known[1]
            try:
                path, fh = self.spill_file(f"{task}_{stream}")
                with fh:
                    for piece in getattr(record, stream).chunks():
                        fh.write(piece.encode("utf-8", "surrogateescape"))
            except OSError:
                return ""
            self._files[(task, stream)] = (record, path)
            return path

    def arguments(self, template: Template | None):
        """``arguments=`` for the exec types: its text, or an ``Arguments`` when it holds result values
        (they are inserted after the text is split into words, never re-read as text)."""
        if template is None:
            return ""
        parts = template.parts
        if all(type(p) is str for p in parts):
            return "".join(parts)
        pieces: list = []
        for part in parts:
            if type(part) is str:
                pieces.append(part)
                continue
            value = self._value(part)
            pieces.append(Value(value) if value is not None else part.written)
        return Arguments(pieces)
