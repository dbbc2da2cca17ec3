"""Run events: the facts of a run, told once, fanned out to every sink.

The VM (machine, fork) and the run phases report what happened through one
``Events`` object: the run started, a task or block member started and
finished, a retry was scheduled, a block finished, the run finished.  Each
fact becomes one event, a flat JSON-ready dict::

    {"schema": 1, "event": "task_finished", "seq": 7, "time": "...", "task": 5, ...}

and goes to every sink: the ``--events`` JSON Lines file, the timeline kept
for ``--output-json``, OpenTelemetry, or anything else.  A sink is one small
class with ``handle(event)`` and ``close()``; the field list of every event is
``EVENT_FIELDS`` below (the README documents it, a test checks events
against it).

Every string in an event passes through the log's masking, so a secret
hidden in the log is hidden in every sink too.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime

SCHEMA = 1

# Every event has these; the value types are checked by tests/test_events.py.
COMMON_FIELDS = {"schema": int, "event": str, "seq": int, "time": str}

_OPT_INT = (int, type(None))
_OPT_STR = (str, type(None))
_NUM = (int, float)

# event name -> {field: type or tuple of types}.  Adding a field is compatible
# (readers ignore unknown fields); removing or retyping one raises SCHEMA.
EVENT_FIELDS: dict[str, dict[str, object]] = {
    "run_started": {
        "task_file": str, "execution_id": str, "dry_run": bool, "pid": int, "log_file": str,
        "start": str,
    },
    "task_started": {
        "task": int, "display": str, "block": _OPT_INT, "host": str, "exec_type": str, "attempt": int,
        "loop_round": _OPT_INT, "command": str, "start": str,
    },
    "task_finished": {
        "task": int, "display": str, "block": _OPT_INT, "host": str, "exec_type": str, "attempt": int,
        "loop_round": _OPT_INT, "exit_code": int, "success": bool, "timed_out": bool, "start": str,
        "end": str, "duration": _NUM, "stdout_bytes": int, "stderr_bytes": int, "stderr_head": str,
    },
    "retry_scheduled": {
        "task": int, "block": int, "attempt": int, "next_attempt": int, "delay": _NUM, "exit_code": int,
    },
    "block_finished": {
        "block": int, "kind": str, "succeeded": int, "failed": int, "timeouts": int, "total": int,
        "success": bool, "start": str, "end": str, "duration": _NUM,
    },
    "run_finished": {
        "status": str, "exit_code": int, "reason": str, "message": str, "path": list,
        "final_task": _OPT_INT, "start": str, "end": str, "duration": _NUM,
    },
}

STDERR_HEAD = 400   # as much of a failed task's stderr as the log shows


def iso(t: float) -> str:
    """Local time with microseconds and the UTC offset: ``2026-11-30T15:57:04.123456+01:00``."""
    local = time.localtime(t)
    offset = local.tm_gmtoff or 0
    sign = "-" if offset < 0 else "+"
    offset = abs(offset)
    micro = min(999999, round((t % 1) * 1e6))
    return (time.strftime("%Y-%m-%dT%H:%M:%S", local)
            + f".{micro:06d}{sign}{offset // 3600:02d}:{offset % 3600 // 60:02d}")


def parse_iso(text: str) -> float:
    """Seconds since the epoch of a time written by ``iso`` (or any ISO 8601 text with an offset)."""
    return datetime.fromisoformat(text).timestamp()


class Sink:
    """Receives every event.  Subclass and override ``handle`` (and ``close`` if it holds a resource).

    A sink that sets ``output_bytes`` gets its own copy of each task_finished
    event with ``stdout_head`` and ``stderr_head``: the first ``output_bytes``
    characters of both outputs, masked (the run history keeps them; the
    other sinks do not carry whole outputs)."""

    output_bytes = 0

    def handle(self, event: dict) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """The run is over: flush and release."""


class ListSink(Sink):
    """Keeps the events in a list (tests; the timeline for --output-json)."""

    def __init__(self, kinds: tuple[str, ...] | None = None) -> None:
        self.kinds = kinds
        self.events: list[dict] = []

    def handle(self, event: dict) -> None:
        if self.kinds is None or event["event"] in self.kinds:
            self.events.append(event)


class JsonLinesSink(Sink):
    """``--events FILE``: one JSON object a line, flushed per line (``tail -f`` works); mode 600."""

    def __init__(self, path: str) -> None:
        self.path = path
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)   # an existing file keeps its mode otherwise
        self.fh = os.fdopen(fd, "w", encoding="utf-8")

    def handle(self, event: dict) -> None:
        import json  # imported by the first event, not on every run's start-up

        self.fh.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


class Events:
    """The hub: builds events from facts and hands each to every sink, in order, one at a time."""

    def __init__(self, sinks: list[Sink] | tuple = (), *, mask=None, warn=None) -> None:
        self.sinks: list[Sink] = list(sinks)
        self.mask = mask        # str -> str: the log's masking of secret values
        self.warn = warn        # str -> None: where a failing sink is reported
        self.seq = 0
        self.lock = threading.Lock()

    def add(self, sink: Sink) -> None:
        self.sinks.append(sink)

    @property
    def active(self) -> bool:
        return bool(self.sinks)

    def emit(self, name: str, /, *, outputs: tuple | None = None, **fields) -> None:
        """Send one event to every sink.  A sink that raises is dropped (and reported), the run goes on.

        ``outputs`` (stdout, stderr) of a finished command go to the sinks that ask for output heads."""
        if not self.sinks:
            return
        with self.lock:
            self.seq += 1
            event = {"schema": SCHEMA, "event": name, "seq": self.seq, "time": iso(time.time())}
            event.update(self._masked(fields))
            for sink in list(self.sinks):
                try:
                    if outputs is not None and sink.output_bytes:
                        sink.handle(self._with_heads(event, outputs, sink.output_bytes))
                    else:
                        sink.handle(event)
                except Exception as exc:
                    self.sinks.remove(sink)
                    if self.warn is not None:
                        self.warn(f"event sink {type(sink).__name__} failed and is switched off: {exc}")

    def _with_heads(self, event: dict, outputs: tuple, size: int) -> dict:
        stdout, stderr = outputs
        return {**event, **self._masked({"stdout_head": stdout.head(size), "stderr_head": stderr.head(size)})}

    def _masked(self, fields: dict) -> dict:
        mask = self.mask
        if mask is None:
            return fields
        return {k: mask(v) if isinstance(v, str) else v for k, v in fields.items()}

    def close(self) -> None:
        sinks, self.sinks = self.sinks, []
        for sink in sinks:
            try:
                sink.close()
            except Exception as exc:
                if self.warn is not None:
                    self.warn(f"event sink {type(sink).__name__} could not be closed: {exc}")

    # ------------------------------------------------------------ the facts

    def run_started(self, *, task_file: str, execution_id: str, dry_run: bool, log_file: str,
                    start: float) -> None:
        if not self.sinks:
            return
        self.emit("run_started", task_file=task_file, execution_id=execution_id, dry_run=dry_run,
                  pid=os.getpid(), log_file=log_file, start=iso(start))

    def task_started(self, *, task: int, display: str, block: int | None, host: str, exec_type: str,
                     attempt: int, loop_round: int | None, command: str, start: float) -> None:
        if not self.sinks:
            return
        self.emit("task_started", task=task, display=display, block=block, host=host, exec_type=exec_type,
                  attempt=attempt, loop_round=loop_round, command=command, start=iso(start))

    def task_finished(self, record, *, task: int, display: str, block: int | None, exec_type: str,
                      attempt: int, loop_round: int | None) -> None:
        """A command ended; ``record`` is the stored result (so the JSON and the event agree)."""
        if not self.sinks:
            return
        head = "" if record.success else record.stderr.head(STDERR_HEAD)
        self.emit("task_finished", task=task, display=display, block=block, host=record.hostname,
                  exec_type=exec_type, attempt=attempt, loop_round=loop_round, exit_code=record.exit_code,
                  success=bool(record.success), timed_out=record.timed_out, start=iso(record.start),
                  end=iso(record.end), duration=round(record.duration, 6), stdout_bytes=record.stdout.size,
                  stderr_bytes=record.stderr.size, stderr_head=head, outputs=(record.stdout, record.stderr))

    def retry_scheduled(self, *, task: int, block: int, attempt: int, delay: float, exit_code: int) -> None:
        if not self.sinks:
            return
        self.emit("retry_scheduled", task=task, block=block, attempt=attempt, next_attempt=attempt + 1,
                  delay=delay, exit_code=exit_code)

    def block_finished(self, *, block: int, kind: str, succeeded: int, failed: int, timeouts: int,
                       total: int, start: float, end: float) -> None:
        if not self.sinks:
            return
        self.emit("block_finished", block=block, kind=kind, succeeded=succeeded, failed=failed,
                  timeouts=timeouts, total=total, success=succeeded == total, start=iso(start), end=iso(end),
                  duration=round(max(0.0, end - start), 6))

    def run_finished(self, *, status: str, exit_code: int, reason: str, message: str, path: list,
                     final_task: int | None, start: float, end: float) -> None:
        if not self.sinks:
            return
        self.emit("run_finished", status=status, exit_code=exit_code, reason=reason, message=message,
                  path=list(path), final_task=final_task, start=iso(start), end=iso(end),
                  duration=round(max(0.0, end - start), 6))


def check_event(event: dict) -> list[str]:
    """Problems of one event against the schema (empty when it conforms)."""
    problems = []
    kind = event.get("event")
    fields = EVENT_FIELDS.get(kind)
    if fields is None:
        return [f"unknown event {kind!r}"]
    for name, kinds in {**COMMON_FIELDS, **fields}.items():
        if name not in event:
            problems.append(f"{kind}: missing {name}")
        elif not isinstance(event[name], kinds) or (kinds in (int, _OPT_INT, _NUM) and isinstance(event[name], bool)):
            problems.append(f"{kind}: {name}={event[name]!r} is not {kinds}")
    if event.get("schema") != SCHEMA:
        problems.append(f"{kind}: schema {event.get('schema')!r} is not {SCHEMA}")
    return problems


def read_events(path: str) -> list[dict]:
    """The events of a JSON Lines file; a torn last line (the writer was killed) is ignored."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out
