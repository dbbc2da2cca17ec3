"""``--output-json``: the machine-readable summary of a run (docs/command-line.md, D15/D16).

Written at every ending the program reaches (success, failure, exit 10,
return, timeouts, signals), always atomically: a temporary file in the same
directory, fsync, rename.  ``execution_path`` lists the top-level tasks in the
order they were entered.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

from tasker.report import private
from tasker.report.events import iso as iso_tz
from tasker.report.files import prefix_of, timestamp
from tasker.vm.machine import Ending, Machine, State
from tasker.vm.store import ResultStore


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t)) + f".{int((t % 1) * 1e6):06d}"


def counts(records: dict) -> tuple[int, int, int]:
    """(succeeded, failed, timeouts) over every stored record: exit 124 counts as a timeout first."""
    ok = bad = slow = 0
    for record in records.values():
        if record.exit_code == 124:
            slow += 1
        elif record.success:
            ok += 1
        else:
            bad += 1
    return ok, bad, slow


def task_results(records: dict, timeline: list[dict]) -> dict:
    """Every stored record, with its start and end time (a block's from its block_finished event)."""
    blocks = {e["block"]: e for e in timeline if e["event"] == "block_finished"}
    out = {}
    for tid, rec in records.items():
        entry = rec.to_json()
        if rec.start:
            entry["start_time"] = iso_tz(rec.start)
            entry["end_time"] = iso_tz(rec.end)
            entry["duration_seconds"] = round(rec.duration, 6)
        elif tid in blocks:
            fact = blocks[tid]
            entry["start_time"], entry["end_time"] = fact["start"], fact["end"]
            entry["duration_seconds"] = fact["duration"]
        out[str(tid)] = entry
    return out


def build(*, task_file: str, content: bytes, machine: Machine, ending: Ending, started: float,
          finished: float, log_file: str, total_tasks: int, variables: dict, dry_run: bool = False,
          timeline: list[dict] | None = None) -> dict:
    """The JSON document for one run; a dry run's says so (``"dry_run": true``, status ``dry_run``).

    ``timeline`` holds the run's task_finished, retry_scheduled and block_finished
    events (every attempt and loop round, not only the last record of each id):
    the same facts as the events file, so a report can be drawn from the JSON alone.
    """


    state = machine.state if machine is not None else State()
    records = machine.store.records if machine is not None else ResultStore().records
    ok, bad, slow = counts(records)
    status = "dry_run" if dry_run else "success" if ending.success else "failed"
    path = list(state.path)
    summary: dict = {
        "total_tasks": total_tasks,
        "executed": len(path),
        "succeeded": ok,
        "failed": bad,
        "timeouts": slow,
        "execution_path": path,
        "final_task": path[-1] if path else None,
        "subtasks": {str(block): ids for block, ids in state.subtasks.items()},
    }
    if status == "failed":
        summary["failure_info"] = {
            "task_id": state.final_task,
            "exit_code": ending.exit_code,
            "error": ending.message or "Workflow failed",
            "reason": ending.reason,
        }
    metadata: dict = {
        "task_file": os.path.abspath(task_file),
        "execution_id": hashlib.sha256(content).hexdigest()[:8],
        "status": status,
        "exit_code": 0 if dry_run else ending.exit_code,
    }
    if dry_run:
        metadata["dry_run"] = True
    return {
        "workflow_metadata": {
            **metadata,
            "start_time": iso(started),
            "end_time": iso(finished),
            "duration_seconds": round(finished - started, 2),
            "log_file": log_file,
        },
        "execution_summary": summary,
        "task_results": task_results(records, timeline or []),
        "timeline": list(timeline or []),
        "variables": variables,
    }


def write_atomic(path: str, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` atomically, mode 600 (see ``tasker.report.private``)."""
    directory = os.path.dirname(os.path.abspath(path))
    private.private_dir(directory)
    private.sweep_temp(directory)
    private.write_atomic(path, (json.dumps(data, indent=2, ensure_ascii=True) + "\n").encode("ascii"))


def default_path(task_file: str, environ: dict) -> str:
    """``~/TASKER/output/<prefix>_<YYYYmmdd_HHMMSS_ffffff>.json`` (always under HOME)."""
    home = environ.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, "TASKER", "output", f"{prefix_of(task_file)}_{timestamp()}.json")
