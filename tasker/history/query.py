"""Reading the history: runs by filter, one run with its task rows, pruning.

A row saying ``running`` is only believed while its process lives: on the
host that recorded it, a pid that is gone (or now belongs to a process that
started later) means the run was killed without a chance to record its end,
and it is shown as ``interrupted``.
"""

from __future__ import annotations

import json
import os
import socket
import time

from tasker.history import schema
from tasker.history.recorder import process_start
from tasker.report.events import iso

FAILED = ("failed", "interrupted")


class Run(dict):
    """One row of ``runs`` as a dict, with the status as it stands now."""


def pid_alive(pid: int | None, started: str | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass                      # another user's process: it exists
    except OSError:
        return False
    if started:
        now = process_start(pid)
        if now and now != started:
            return False          # the pid was reused
    return True


def effective_status(run: dict, here: str | None = None) -> str:
    status = run["status"]
    if status != "running":
        return status
    if run.get("host") != (here or socket.gethostname()):
        return "running"          # another controller: its processes cannot be seen from here
    return "running" if pid_alive(run.get("pid"), run.get("pid_start")) else "interrupted"


def _run(row: tuple, here: str) -> Run:
    run = Run(zip(schema.RUN_COLUMNS, row, strict=True))
    run["execution_path"] = json.loads(run["execution_path"]) if run["execution_path"] else []
    run["recorded_status"] = run["status"]
    run["status"] = effective_status(run, here)
    end = run["finished"]
    run["duration"] = round(end - run["started"], 3) if end is not None else None
    return run


def list_runs(db, *, task_file: str | None = None, failed: bool = False, project: str | None = None,
              since: float | None = None, last: int | None = None) -> list[Run]:
    """Runs matching every filter given, newest first."""
    where, params = [], []
    if task_file is not None:
        where.append("task_file = ?")
        params.append(os.path.abspath(task_file))
    if project is not None:
        where.append("project = ?")
        params.append(project)
    if since is not None:
        where.append("started >= ?")
        params.append(since)
    if failed:
        where.append("status <> 'success'")
    sql = f"SELECT {', '.join(schema.RUN_COLUMNS)} FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY started DESC, run_id"
    if last is not None and not failed:
        sql += f" LIMIT {int(last)}"
    here = socket.gethostname()
    runs = [_run(row, here) for row in db.query(sql, tuple(params))]
    if failed:
        runs = [run for run in runs if run["status"] in FAILED]
    return runs[:last] if last is not None else runs


class NoSuchRun(LookupError):
    pass


def find_run(db, prefix: str) -> Run:
    """The run whose id is ``prefix`` or starts with it (unique).  Raises NoSuchRun."""
    prefix = prefix.strip().lower()
    if not prefix or any(c not in "0123456789abcdef" for c in prefix):
        raise NoSuchRun(f"not a run id: {prefix!r} (run ids are hexadecimal; see `tasker history`)")
    rows = db.query(f"SELECT {', '.join(schema.RUN_COLUMNS)} FROM runs WHERE run_id LIKE ? ORDER BY run_id",
                    (prefix + "%",))
    if not rows:
        raise NoSuchRun(f"no recorded run {prefix}")
    if len(rows) > 1:
        ids = ", ".join(row[0] for row in rows[:5])
        raise NoSuchRun(f"run id {prefix} is ambiguous: {ids}{', ...' if len(rows) > 5 else ''}")
    return _run(rows[0], socket.gethostname())


def task_rows(db, run_id: str) -> list[dict]:
    """The run's task rows in the order they were recorded."""
    rows = db.query(f"SELECT {', '.join(schema.TASK_COLUMNS)} FROM task_runs WHERE run_id = ? ORDER BY seq",
                    (run_id,))
    out = []
    for row in rows:
        task = dict(zip(schema.TASK_COLUMNS, row, strict=True))
        task["success"] = bool(task["success"])
        task["timed_out"] = bool(task["timed_out"])
        del task["run_id"]
        out.append(task)
    return out


def prune(db, older_than: float, now: float | None = None) -> int:
    """Delete runs that started more than ``older_than`` seconds ago (not one still running)."""
    cutoff = (now if now is not None else time.time()) - older_than
    here = socket.gethostname()
    rows = db.query(f"SELECT {', '.join(schema.RUN_COLUMNS)} FROM runs WHERE started < ?", (cutoff,))
    doomed = [run["run_id"] for run in (_run(row, here) for row in rows) if run["status"] != "running"]
    if not doomed:
        return 0
    db.begin()
    try:
        for start in range(0, len(doomed), 500):
            chunk = doomed[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            db.execute(f"DELETE FROM task_runs WHERE run_id IN ({marks})", tuple(chunk))
            db.execute(f"DELETE FROM runs WHERE run_id IN ({marks})", tuple(chunk))
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return len(doomed)


def as_events(run: dict, tasks: list[dict]) -> list[dict]:
    """A recorded run as the run events it was recorded from (for the HTML report).

    Retries are not stored as rows: an attempt followed by the next attempt of
    the same member was retried, after the pause between the two."""

    events: list[dict] = [{"event": "run_started", "task_file": run["task_file"],
                           "execution_id": run["content_hash"][:8], "dry_run": False, "pid": run["pid"],
                           "log_file": run["log_file"] or "", "start": iso(run["started"])}]
    attempts = {(t["task_id"], t["block"], t["attempt"]): t for t in tasks if t["kind"] == "task"}
    for t in tasks:
        if t["kind"] == "block":
            counts = json.loads(t["details"] or "{}")
            events.append({"event": "block_finished", "block": t["task_id"], "kind": t["host"], **counts,
                           "success": t["success"], "start": iso(t["started"]), "end": iso(t["finished"]),
                           "duration": round(max(0.0, t["finished"] - t["started"]), 6)})
            continue
        events.append(_task_event(t))
        following = attempts.get((t["task_id"], t["block"], t["attempt"] + 1))
        if following is not None:
            events.append({"event": "retry_scheduled", "task": t["task_id"], "block": t["block"],
                           "attempt": t["attempt"], "next_attempt": t["attempt"] + 1, "exit_code": t["exit_code"],
                           "delay": round(max(0.0, following["started"] - t["finished"]), 3)})
    if run["finished"] is not None:
        events.append({"event": "run_finished", "status": "success" if run["status"] == "success" else "failed",
                       "exit_code": run["exit_code"], "reason": run["reason"] or "", "message": run["message"] or "",
                       "path": run["execution_path"], "final_task": run["final_task"], "start": iso(run["started"]),
                       "end": iso(run["finished"]), "duration": round(run["finished"] - run["started"], 6)})
    return events


def _task_event(t: dict) -> dict:
    return {"event": "task_finished", "task": t["task_id"], "display": t["display"], "block": t["block"],
            "host": t["host"] or "", "exec_type": t["exec_type"] or "", "attempt": t["attempt"],
            "loop_round": t["loop_round"], "exit_code": t["exit_code"], "success": t["success"],
            "timed_out": t["timed_out"], "start": iso(t["started"]), "end": iso(t["finished"]),
            "duration": round(max(0.0, t["finished"] - t["started"]), 6), "stdout_bytes": t["stdout_size"] or 0,
            "stderr_bytes": t["stderr_size"] or 0, "stderr_head": "" if t["success"] else (t["stderr_head"] or "")}
