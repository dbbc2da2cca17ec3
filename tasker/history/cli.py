"""``tasker history …``: the commands that read the run history (``tasker report RUN`` uses it too).

They are dispatched before the run's option parser and have their own
argparse parsers.  Exit codes: 0 done, 1 the database or the run cannot be
found or read, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

from tasker.history import query
from tasker.history.db import HistoryError, describe, is_postgres, open_database, sqlite_path
from tasker.history.recorder import choose_target
from tasker.report.rundata import from_events

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "": 86400}
DB_HELP = "the history database: a SQLite file or postgresql://… (default $TASKER_HISTORY_DB or ~/TASKER/history.db)"


class Usage(Exception):
    pass


def duration(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` (a bare number is days) -> seconds."""
    match = DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 30d, 12h, 90m)")
    return float(match.group(1)) * UNITS[match.group(2).lower()]


def since(text: str) -> float:
    """A duration ago (``7d``) or a local date/time (``2026-11-01``, ``2026-11-01T08:00``) -> epoch."""
    if DURATION.match(text):
        return time.time() - duration(text)
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            return time.mktime(time.strptime(text.strip(), fmt))
        except ValueError:
            continue
    raise argparse.ArgumentTypeError(f"not a duration or date: {text!r} (use e.g. 7d or 2026-11-01)")


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive number: {text!r}")
    return value


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise Usage(f"{self.format_usage().rstrip()}\n{self.prog}: error: {message}")


def list_parser() -> Parser:
    p = Parser(prog="tasker history", description="List recorded runs, newest first. "
               "Other commands: `tasker history show RUN`, `tasker history prune --older-than 30d`, "
               "`tasker report RUN`.")
    p.add_argument("task_file", nargs="?", metavar="TASK_FILE", help="only runs of this task file")
    p.add_argument("--failed", action="store_true", help="only runs that failed or were interrupted")
    p.add_argument("--project", metavar="NAME", help="only runs with -p NAME")
    p.add_argument("--since", type=since, metavar="WHEN", help="only runs started since WHEN (7d, 12h, 2026-11-01)")
    p.add_argument("--last", type=positive, default=None, metavar="N", help="at most N runs (default 20; "
                   "all with --json)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--history-db", metavar="DB", help=DB_HELP)
    return p


def show_parser() -> Parser:
    p = Parser(prog="tasker history show", description="Print one recorded run and its tasks.")
    p.add_argument("run", metavar="RUN", help="a run id (or a unique prefix of one)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--history-db", metavar="DB", help=DB_HELP)
    return p


def prune_parser() -> Parser:
    p = Parser(prog="tasker history prune", description="Delete recorded runs older than a given age.")
    p.add_argument("--older-than", type=duration, required=True, metavar="AGE", help="e.g. 30d, 12h, 2w")
    p.add_argument("--history-db", metavar="DB", help=DB_HELP)
    return p


def main(argv: list[str]) -> int:
    """``argv``: the words after ``history``."""
    try:
        if argv[:1] == ["show"]:
            return show(show_parser().parse_args(argv[1:]))
        if argv[:1] == ["prune"]:
            return prune(prune_parser().parse_args(argv[1:]))
        return list_runs(list_parser().parse_args(argv))
    except Usage as exc:
        print(exc, file=sys.stderr)
        return 2
    except HistoryError as exc:
        print(f"tasker: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


def _open(option: str | None):
    """The database, or None when the default SQLite file does not exist yet (nothing recorded)."""
    target = choose_target(option, dict(os.environ))
    if not is_postgres(target) and not os.path.exists(sqlite_path(target)):
        return None, target
    return open_database(target), target


# ---------------------------------------------------------------- history (list)


def list_runs(args) -> int:
    db, target = _open(args.history_db)
    last = args.last if args.last is not None else (None if args.json else 20)
    runs = []
    if db is not None:
        try:
            runs = query.list_runs(db, task_file=args.task_file, failed=args.failed, project=args.project,
                                   since=args.since, last=last)
        finally:
            db.close()
    if args.json:
        print(json.dumps([_public(run) for run in runs], indent=2))
        return 0
    if not runs:
        print(f"No recorded runs{' match' if db is not None else ''} ({describe(target)}).")
        return 0
    rows = [("RUN", "STARTED", "DURATION", "STATUS", "EXIT", "PROJECT", "TASK FILE")]
    for run in runs:
        rows.append((run["run_id"], _when(run["started"]), _secs(run["duration"]), run["status"],
                     "" if run["exit_code"] is None else str(run["exit_code"]), run["project"] or "",
                     run["task_file"]))
    _table(rows)
    return 0


def _public(run: dict) -> dict:
    out = {k: v for k, v in run.items() if k not in ("pid_start",)}
    out["started_at"] = _iso(run["started"])
    out["finished_at"] = _iso(run["finished"]) if run["finished"] is not None else None
    return out


# ---------------------------------------------------------------- show


def show(args) -> int:
    db, target = _open(args.history_db)
    if db is None:
        print(f"tasker: no history database at {describe(target)}", file=sys.stderr)
        return 1
    try:
        run = query.find_run(db, args.run)
        tasks = query.task_rows(db, run["run_id"])
    except query.NoSuchRun as exc:
        print(f"tasker: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()
    if args.json:
        print(json.dumps({**_public(run), "tasks": tasks}, indent=2))
        return 0
    for label, value in (("Run", run["run_id"]), ("Task file", run["task_file"]),
                         ("Content hash", run["content_hash"]), ("Project", run["project"] or "-"),
                         ("User@host", f"{run['username']}@{run['host']} (pid {run['pid']})"),
                         ("Version", run["version"]), ("Started", _when(run["started"])),
                         ("Finished", _when(run["finished"]) if run["finished"] is not None else "-"),
                         ("Duration", _secs(run["duration"]) or "-"), ("Status", run["status"]),
                         ("Exit code", "-" if run["exit_code"] is None else run["exit_code"]),
                         ("Final task", "-" if run["final_task"] is None else run["final_task"]),
                         ("Path", " ".join(map(str, run["execution_path"])) or "-"),
                         ("Log file", run["log_file"] or "-")):
        print(f"{label + ':':14}{value}")
    if run["message"]:
        print(f"{'Message:':14}{run['message']}")
    if not tasks:
        print("\nNo task recorded.")
        return 0
    print()
    rows = [("TASK", "BLOCK", "TRY", "ROUND", "HOST", "EXIT", "RESULT", "DURATION", "OUT", "ERR")]
    for t in tasks:
        result = "timeout" if t["timed_out"] else ("ok" if t["success"] else
                                                   ("skipped" if t["kind"] == "skipped" else "failed"))
        took = t["finished"] - t["started"] if t["finished"] and t["started"] else None
        rows.append((str(t["task_id"]), "" if t["block"] is None else str(t["block"]), str(t["attempt"]),
                     "" if t["loop_round"] is None else str(t["loop_round"]), t["host"] or "",
                     str(t["exit_code"]), result, _secs(took), str(t["stdout_size"] or 0),
                     str(t["stderr_size"] or 0)))
    _table(rows)
    return 0


# ---------------------------------------------------------------- prune


def prune(args) -> int:
    db, target = _open(args.history_db)
    if db is None:
        print(f"Nothing to prune: no history database at {describe(target)}.")
        return 0
    try:
        count = query.prune(db, args.older_than)
    except Exception as exc:  # a locked or read-only database
        print(f"tasker: cannot prune {describe(target)}: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()
    print(f"Deleted {count} run{'s' if count != 1 else ''} from {describe(target)}.")
    return 0


# ---------------------------------------------------------------- report


def looks_like_run_id(text: str) -> bool:
    return 4 <= len(text) <= 12 and all(c in "0123456789abcdef" for c in text.lower())


def load_recorded(run: str, option: str | None):
    """The RunData of a recorded run, for ``tasker report RUN``.  Raises HistoryError."""
    db, target = _open(option)
    if db is None:
        raise HistoryError(f"{run} is neither a file nor a recorded run: no history database at {describe(target)}")
    try:
        found = query.find_run(db, run)
        tasks = query.task_rows(db, found["run_id"])
    except query.NoSuchRun as exc:
        raise HistoryError(f"{run} is neither a file nor a recorded run: {exc}") from None
    finally:
        db.close()
    return from_events(query.as_events(found, tasks))


# ---------------------------------------------------------------- formatting


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t is not None else ""


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t)) + f".{int((t % 1) * 1e6):06d}"


def _secs(value: float | None) -> str:
    if value is None:
        return ""
    if value < 60:
        return f"{value:.2f}s"
    minutes, seconds = divmod(int(value), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m{seconds:02d}s" if minutes >= 60 else f"{minutes}m{seconds:02d}s"


def _table(rows: list[tuple]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
