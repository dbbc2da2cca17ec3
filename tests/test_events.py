"""Run events: what the VM reports through its event interface, and the schema every event follows."""

from __future__ import annotations

import json
import os
import re
import stat

import pytest
from support import ROOT, run_vm

from tasker.report.events import (
    EVENT_FIELDS,
    Events,
    JsonLinesSink,
    ListSink,
    Sink,
    check_event,
    iso,
    parse_iso,
    read_events,
)


def T(tid: int, **fields: object) -> str:
    lines = [f"task={tid}", "hostname=localhost", f"command=c{tid}", "exec=local"]
    lines += [f"{k}={v}" for k, v in fields.items()]
    return "\n".join(lines) + "\n\n"


def recorded(text: str, script: dict | None = None, **kw):
    sink = ListSink()
    result = run_vm(text, script, events=Events([sink]), **kw)
    return result, sink.events


def of(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["event"] == kind]


# ----------------------------------------------------------------- the VM's facts


def test_a_task_reports_start_and_finish_with_the_records_facts():
    r, events = recorded(T(0) + T(1), {"c0": [(0, "hello\n", "")], "c1": [(3, "", "bad\n")]})
    assert [e["event"] for e in events] == ["task_started", "task_finished"] * 2
    first, second = of(events, "task_finished")
    assert (first["task"], first["block"], first["host"], first["exec_type"]) == (0, None, "localhost", "local")
    assert (first["exit_code"], first["success"], first["stdout_bytes"], first["stderr_head"]) == (0, True, 6, "")
    assert (second["exit_code"], second["success"], second["stderr_head"]) == (3, False, "bad\n")
    record = r.record(1)
    assert parse_iso(second["start"]) == pytest.approx(record.start, abs=1e-6)
    assert parse_iso(second["end"]) == pytest.approx(record.end, abs=1e-6)


def test_loop_rounds_are_numbered():
    _r, events = recorded(T(0, next="loop", loop=3) + T(1))
    rounds = [(e["task"], e["loop_round"], e["display"]) for e in of(events, "task_finished")]
    assert rounds == [(0, 1, "0.1"), (0, 2, "0.2"), (0, 3, "0.3"), (1, None, "1")]


def test_block_members_retries_and_the_block_result():
    text = ("task=1\ntype=parallel\ntasks=100,101\nmax_parallel=2\nretry_count=2\nretry_delay=0\nnext=always\n\n"
            + T(100) + T(101))
    _r, events = recorded(text, {"c101": [(1, "", "e1\n"), (1, "", "e2\n"), (0, "ok", "")]})
    finished = of(events, "task_finished")
    assert sorted((e["task"], e["attempt"], e["block"]) for e in finished) == [
        (100, 1, 1), (101, 1, 1), (101, 2, 1), (101, 3, 1)]
    retries = of(events, "retry_scheduled")
    assert [(e["task"], e["attempt"], e["next_attempt"], e["exit_code"]) for e in retries] == [
        (101, 1, 2, 1), (101, 2, 3, 1)]
    (block,) = of(events, "block_finished")
    assert (block["block"], block["succeeded"], block["failed"], block["total"], block["success"]) == (
        1, 2, 0, 2, True)
    assert events.index(block) == len(events) - 1


def test_a_timeout_is_reported_as_timed_out():
    _r, events = recorded(T(0), {"c0": [(124, "", "")]})
    (done,) = of(events, "task_finished")
    assert (done["exit_code"], done["timed_out"], done["success"]) == (124, True, False)


def test_a_dry_run_reports_tasks_too():
    _r, events = recorded(T(0) + T(1), dry_run=True)
    assert [e["task"] for e in of(events, "task_finished")] == [0, 1]


def test_every_vm_event_follows_the_schema():
    text = ("task=0\nhostname=localhost\ncommand=c0\nexec=local\nnext=loop\nloop=2\n\n"
            "task=1\ntype=parallel\ntasks=100,101\nretry_count=1\nretry_delay=0\nnext=always\n\n"
            + T(100) + T(101) + T(2))
    _r, events = recorded(text, {"c101": [(1, "", "")], "c2": [(124, "", "")]})
    assert {e["event"] for e in events} == {"task_started", "task_finished", "retry_scheduled", "block_finished"}
    for event in events:
        assert check_event(event) == [], event


# ----------------------------------------------------------------- the hub


def test_a_sink_is_one_small_class_and_a_failing_sink_is_dropped_not_fatal():
    class Counting(Sink):
        def __init__(self) -> None:
            self.n = 0

        def handle(self, event: dict) -> None:
            self.n += 1

    class Broken(Sink):
        def handle(self, event: dict) -> None:
            raise OSError("disk full")

    warnings: list[str] = []
    counting = Counting()
    hub = Events([Broken(), counting], warn=warnings.append)
    hub.retry_scheduled(task=1, block=2, attempt=1, delay=0.0, exit_code=1)
    hub.retry_scheduled(task=1, block=2, attempt=2, delay=0.0, exit_code=1)
    assert counting.n == 2
    assert len(warnings) == 1 and "disk full" in warnings[0]


def test_strings_pass_through_the_masking_function():
    sink = ListSink()
    hub = Events([sink], mask=lambda text: text.replace("hunter2", "<masked>"))
    hub.task_started(task=1, display="1", block=None, host="h", exec_type="local", attempt=1, loop_round=None,
                     command="login --password hunter2", start=0.0)
    assert sink.events[0]["command"] == "login --password <masked>"


def test_the_events_file_is_private_and_flushed_per_line(tmp_path):
    path = tmp_path / "ev.jsonl"
    path.write_text("old\n")
    os.chmod(path, 0o644)
    sink = JsonLinesSink(str(path))
    hub = Events([sink])
    hub.retry_scheduled(task=1, block=2, attempt=1, delay=0.5, exit_code=1)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert json.loads(path.read_text())["event"] == "retry_scheduled"   # before close: flushed
    hub.close()


def test_read_events_ignores_a_torn_last_line(tmp_path):
    path = tmp_path / "ev.jsonl"
    path.write_text('{"event": "run_started"}\n{"event": "task_sta')
    assert read_events(str(path)) == [{"event": "run_started"}]


def test_iso_times_round_trip():
    t = 1_790_000_000.123456
    assert parse_iso(iso(t)) == pytest.approx(t, abs=1e-6)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d", iso(t))


# ----------------------------------------------------------------- the schema and its documentation


def test_check_event_finds_missing_and_mistyped_fields():
    good = {"schema": 1, "event": "retry_scheduled", "seq": 1, "time": iso(0), "task": 1, "block": 2,
            "attempt": 1, "next_attempt": 2, "delay": 0, "exit_code": 1}
    assert check_event(good) == []
    assert check_event({**good, "attempt": "1"}) != []
    assert check_event({**good, "attempt": True}) != []
    assert check_event({k: v for k, v in good.items() if k != "block"}) != []
    assert check_event({**good, "schema": 2}) != []
    assert check_event({**good, "event": "nope"}) != []


def test_the_readme_documents_every_event_and_field():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Event schema", 1)[1].split("\n## ", 1)[0]
    for kind, fields in EVENT_FIELDS.items():
        assert f"`{kind}`" in section, kind
        row = next(line for line in section.splitlines() if line.startswith(f"| `{kind}`"))
        for name in fields:
            assert f"`{name}`" in row, (kind, name)
