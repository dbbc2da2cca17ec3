"""A finished (or cut short) run, read back from ``--output-json`` or from an ``--events`` file.

Both hold the same facts: the JSON's ``timeline`` is the list of
``task_finished``, ``retry_scheduled`` and ``block_finished`` events the
events file has, and its metadata is what ``run_started``/``run_finished``
carry.  ``load`` turns either into one ``RunData`` for the report.
"""

from __future__ import annotations

import json

from tasker.report.events import parse_iso, read_events


class RunDataError(Exception):
    """The file is not a tasker JSON summary or events file."""


class RunData:
    """What the report shows: the outcome, every command run, retries, blocks, and the path."""

    def __init__(self) -> None:
        self.task_file = ""
        self.execution_id = ""
        self.status = "unknown"        # success | failed | unknown (the run did not finish)
        self.exit_code: int | None = None
        self.reason = ""
        self.message = ""
        self.start: float | None = None
        self.end: float | None = None
        self.path: list[int] = []
        self.final_task: int | None = None
        self.dry_run = False
        self.runs: list[dict] = []     # task_finished events, in the order they finished
        self.retries: list[dict] = []
        self.blocks: list[dict] = []
        self.results: dict[int, dict] = {}   # task id -> last result (JSON only: full stdout/stderr)
        self.source = ""               # "json" or "events"

    def finals(self) -> list[dict]:
        """The last attempt of every command run (per task, block and loop round)."""
        last: dict[tuple, dict] = {}
        for run in self.runs:
            last[(run["task"], run["block"], run["loop_round"])] = run
        return list(last.values())

    def failed(self) -> list[dict]:
        """Final attempts that failed, in the order they finished."""
        return [run for run in self.finals() if not run["success"]]

    def retried(self) -> set[tuple]:
        """(task, block, loop_round, attempt) of the attempts that were followed by another."""
        return {(r["task"], r["block"], None, r["attempt"]) for r in self.retries}


def load(path: str) -> RunData:
    """Read a JSON summary or an events file; raises RunDataError or OSError."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, dict) and "workflow_metadata" in whole:
        return _from_json(whole)
    if isinstance(whole, dict) and "event" in whole:        # an events file of one line
        return _from_events([whole])
    events = read_events(path)
    if not events or not all(isinstance(e, dict) and "event" in e for e in events):
        raise RunDataError(f"{path}: neither a tasker --output-json summary nor an --events file")
    return _from_events(events)


def from_events(events: list[dict]) -> RunData:
    """A run from its events (the events file's, or the run history's reconstruction of them)."""
    return _from_events(events)


def _from_json(data: dict) -> RunData:
    run = RunData()
    run.source = "json"
    meta = data.get("workflow_metadata", {})
    summary = data.get("execution_summary", {})
    run.task_file = meta.get("task_file", "")
    run.execution_id = meta.get("execution_id", "")
    run.status = meta.get("status", "unknown")
    run.exit_code = meta.get("exit_code")
    run.start = _time(meta.get("start_time"))
    run.end = _time(meta.get("end_time"))
    run.path = list(summary.get("execution_path", []))
    run.final_task = summary.get("final_task")
    failure = summary.get("failure_info") or {}
    run.reason = failure.get("reason", "" if run.status == "success" else "failure")
    run.message = failure.get("error", "")
    run.results = {int(k): v for k, v in data.get("task_results", {}).items()}
    _add_facts(run, data.get("timeline", []))
    return run


def _from_events(events: list[dict]) -> RunData:
    run = RunData()
    run.source = "events"
    for event in events:
        kind = event.get("event")
        if kind == "run_started":
            run.task_file = event.get("task_file", "")
            run.execution_id = event.get("execution_id", "")
            run.dry_run = bool(event.get("dry_run"))
            run.start = _time(event.get("start"))
        elif kind == "run_finished":
            run.status = event.get("status", "unknown")
            run.exit_code = event.get("exit_code")
            run.reason = event.get("reason", "")
            run.message = event.get("message", "")
            run.path = list(event.get("path", []))
            run.final_task = event.get("final_task")
            run.end = _time(event.get("end"))
    _add_facts(run, events)
    if run.end is None and run.runs:        # cut off (killed): the last fact we have
        run.end = max(_time(r["end"]) for r in run.runs)
    return run


def _add_facts(run: RunData, events: list[dict]) -> None:
    for event in events:
        kind = event.get("event")
        if kind == "task_finished":
            run.runs.append(event)
        elif kind == "retry_scheduled":
            run.retries.append(event)
        elif kind == "block_finished":
            run.blocks.append(event)


def _time(text) -> float | None:
    if not text:
        return None
    try:
        return parse_iso(text)
    except ValueError:
        return None
