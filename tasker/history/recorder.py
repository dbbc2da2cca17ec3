"""The run history's sink: the run's events in, rows out, on a background thread.

``Recorder`` is a sink of the run events (``tasker.report.events``): the
same facts as the log and the events file (run started, a command's attempt
finished, a block finished, run finished) become rows at once, with the
first few KB of each output (masked by the event hub), and go into a bounded
queue.  A daemon thread opens the database, brings its schema up to date and
writes what is queued in batches, one transaction per batch.  The workflow
never waits for the database: a full queue drops rows, and a locked,
unwritable or unreachable database gives one warning and the run goes on.
Only ``close`` waits, at most ``CLOSE_WAIT`` seconds, for the last rows.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import itertools
import json
import os
import random
import socket
import threading
import time
from collections import deque

from tasker.history import schema
from tasker.history.db import HistoryError, describe, open_database
from tasker.report.events import Sink, parse_iso

HEAD_BYTES = 4096      # how much of each stdout/stderr is kept
QUEUE_SIZE = 50000     # rows waiting for the writer before new ones are dropped
BATCH = 2000           # rows per transaction at most
FLUSH_EVERY = 0.25     # seconds the writer collects rows before a transaction (one commit per row costs
                       # more CPU than a short task; a quarter second still shows a run as it goes)
CLOSE_WAIT = 5.0       # seconds the end of a run waits for its last rows ($TASKER_HISTORY_WAIT)
RETRY_PAUSE = 0.2      # seconds between attempts while the database is locked
OPEN_RETRY = 10.0      # seconds the writer keeps trying to open a database that answers "locked"


def new_run_id() -> str:
    """A short random id (12 hex digits); ``history show`` takes any unique prefix."""
    return os.urandom(6).hex()


def process_start(pid: int) -> str:
    """The start time of process ``pid`` (clock ticks since boot), or "" where /proc cannot tell.

    Stored with the pid so that a pid reused by another process does not make a
    dead run look alive."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return stat[stat.rindex(b")") + 2:].split()[19].decode()
    except (OSError, ValueError, IndexError):
        return ""


def default_target(environ: dict) -> str:
    home = environ.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, "TASKER", "history.db")


def close_wait(environ: dict) -> float:
    """$TASKER_HISTORY_WAIT (seconds, 0-600), else CLOSE_WAIT."""
    try:
        return min(600.0, max(0.0, float(environ.get("TASKER_HISTORY_WAIT", CLOSE_WAIT))))
    except ValueError:
        return CLOSE_WAIT


def choose_target(option: str | None, environ: dict) -> str:
    """--history-db, else $TASKER_HISTORY_DB, else ~/TASKER/history.db."""
    return option or environ.get("TASKER_HISTORY_DB") or default_target(environ)


class Recorder(Sink):
    """The history sink of one run.  ``handle`` returns at once and never raises into the run."""

    output_bytes = HEAD_BYTES

    def __init__(self, target: str, *, warn, content: bytes, project: str | None, version: str,
                 close_wait: float = CLOSE_WAIT) -> None:

        self.target = target
        self.warn_user = warn
        self.content_hash = hashlib.sha256(content).hexdigest()
        self.project = project
        self.version = version
        self.run_id = new_run_id()
        self.close_wait = close_wait
        self.started = False
        self.commands: dict[tuple, str] = {}   # (task, block, attempt, round) -> command, until it finishes
        self.pending: deque = deque()         # rows for the writer (append and popleft are thread-safe)
        self.seq = itertools.count(1)
        self.dropped = 0
        self.written = 0
        self.failed = False          # the database refused: nothing more is written
        self.warned = False
        self.closing = False
        self.wake = threading.Event()          # set by close(): write what is pending now, then stop
        self.thread = threading.Thread(target=self._work, name="tasker-history", daemon=True)
        self.thread.start()

    # ------------------------------------------------------------ facts (the run's side)

    def handle(self, event: dict) -> None:
        try:
            handler = _HANDLERS.get(event["event"])
            if handler is not None:
                handler(self, event)
        except Exception as exc:     # a malformed fact: history must never stop a run
            self._fail(f"could not record a {event.get('event')} event: {exc}")

    def run_started(self, event: dict) -> None:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        pid = event["pid"]
        self.started = True
        self._put(("run", (self.run_id, event["task_file"], self.content_hash, self.project, user,
                           socket.gethostname(), pid, process_start(pid), self.version, parse_iso(event["start"]),
                           None, "running", None, None, None, None, None, event["log_file"])))

    def task_started(self, event: dict) -> None:
        self.commands[_key(event)] = event["command"]

    def task_finished(self, event: dict) -> None:
        """One attempt (loop round, block member) of a command."""
        self._put(("task", (self.run_id, next(self.seq), event["task"], event["display"], event["block"], "task",
                            event["host"],
                            event["exec_type"], self.commands.pop(_key(event), None), event["attempt"],
                            event["loop_round"], parse_iso(event["start"]), parse_iso(event["end"]),
                            event["exit_code"], int(event["success"]), int(event["timed_out"]),
                            event["stdout_bytes"], event["stderr_bytes"], event.get("stdout_head", ""),
                            event.get("stderr_head", ""), None)))

    def block_finished(self, event: dict) -> None:
        counts = {name: event[name] for name in ("succeeded", "failed", "timeouts", "total")}
        self._put(("task", (self.run_id, next(self.seq), event["block"], str(event["block"]), None, "block",
                            event["kind"], None, None,
                            1, None, parse_iso(event["start"]), parse_iso(event["end"]),
                            0 if event["success"] else 1, int(event["success"]), 0, None, None, None, None,
                            json.dumps(counts))))

    def run_finished(self, event: dict) -> None:
        if not self.started:
            return
        reason = event["reason"]   # a declined plan (not_run) started nothing
        status = "interrupted" if reason == "signal" else "not_run" if reason == "not_run" else event["status"]
        self._put(("end", (parse_iso(event["end"]), status, event["exit_code"], event["reason"], event["message"],
                           event["final_task"], json.dumps(event["path"]), self.run_id)))

    def close(self) -> bool:
        """Let the writer finish (at most ``close_wait`` seconds); True when every row was written."""
        self.closing = True
        self.wake.set()
        self.thread.join(self.close_wait)
        if self.thread.is_alive() or self.dropped:
            self._warn(f"history: run {self.run_id} is not completely recorded in {self._where()}")
        return not self.thread.is_alive() and not self.failed and not self.dropped

    # ------------------------------------------------------------ helpers

    def _put(self, item) -> None:
        if self.failed:
            return
        if len(self.pending) < QUEUE_SIZE:
            self.pending.append(item)
        else:
            self.dropped += 1
            if self.dropped == 1:
                self._warn(f"history: the database {self._where()} cannot keep up; some rows are not recorded")

    def _where(self) -> str:
        return describe(self.target)

    def _warn(self, message: str) -> None:
        if self.warned:
            return
        self.warned = True
        with contextlib.suppress(Exception):  # a closed console must not matter
            self.warn_user(message)

    def _fail(self, message: str) -> None:
        self.failed = True
        self._warn(f"history: {message}; the run goes on without history")

    # ------------------------------------------------------------ the writer thread

    def _work(self) -> None:
        began = time.monotonic()
        while True:
            try:
                db = open_database(self.target)
                break
            except Exception as exc:
                # Many processes creating one new file at once: SQLite may answer "locked" without
                # waiting (switching to WAL, the first migration).  Try again quietly for a while.
                if _busy(exc) and time.monotonic() - began < OPEN_RETRY:
                    time.sleep(RETRY_PAUSE * (0.5 + random.random()))
                    continue
                self._fail(str(exc) if isinstance(exc, HistoryError) else f"cannot open {self._where()}: {exc}")
                return
        try:
            self._loop(db)
        finally:
            db.close()

    def _loop(self, db) -> None:
        """Every FLUSH_EVERY seconds (at once when closing), write what is pending in one transaction."""
        pending = self.pending
        while True:
            closing = self.wake.wait(FLUSH_EVERY)
            while pending:
                batch = [pending.popleft() for _ in range(min(BATCH, len(pending)))]
                if not self._write(db, batch):
                    pending.clear()
                    return
            if closing:
                return

    def _write(self, db, batch: list) -> bool:
        """Write one batch; retry while the database is busy.  False when it gave up for good."""
        warned_busy = False
        while True:
            try:
                db.begin()
                try:
                    _apply(db, batch)
                    db.commit()
                except BaseException:
                    db.rollback()
                    raise
                self.written += len(batch)
                return True
            except Exception as exc:  # any database error: retry if busy, else give up
                if not _busy(exc):
                    self._fail(f"cannot write to {self._where()}: {exc}")
                    return False
                if not warned_busy:
                    warned_busy = True
                    self._warn(f"history: the database {self._where()} is locked; still trying")
                time.sleep(RETRY_PAUSE)   # close() decides how long the end of the run waits


def _key(event: dict) -> tuple:
    return event["task"], event["block"], event["attempt"], event["loop_round"]


_HANDLERS = {
    "run_started": Recorder.run_started,
    "task_started": Recorder.task_started,
    "task_finished": Recorder.task_finished,
    "block_finished": Recorder.block_finished,
    "run_finished": Recorder.run_finished,
}


def _apply(db, batch: list) -> None:
    runs = [row for kind, row in batch if kind == "run"]
    tasks = [row for kind, row in batch if kind == "task"]
    ends = [row for kind, row in batch if kind == "end"]
    if runs:
        db.executemany(f"INSERT INTO runs ({', '.join(schema.RUN_COLUMNS)}) VALUES "
                       f"({', '.join('?' * len(schema.RUN_COLUMNS))})", runs)
    if tasks:
        db.executemany(f"INSERT INTO task_runs ({', '.join(schema.TASK_COLUMNS)}) VALUES "
                       f"({', '.join('?' * len(schema.TASK_COLUMNS))})", tasks)
    for row in ends:
        db.execute("UPDATE runs SET finished = ?, status = ?, exit_code = ?, reason = ?, message = ?, "
                   "final_task = ?, execution_path = ? WHERE run_id = ?", row)


def _busy(exc: Exception) -> bool:
    """SQLite's 'database is locked'/'busy' (another writer held it past the busy timeout)."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text
