"""One command on the VM: exec type and host, timeout, the Slurm hook, refusals, dry runs and the
events and progress each command reports (``Machine.execute``)."""

from __future__ import annotations

import pytest
from fakes import FakeRunner
from support import run_vm

from tasker.report.events import Events, ListSink
from tasker.runners.base import RunResult
from tasker.runners.output import Output

SSH = {"ssh": {"binary": "ssh", "command_template": ["{binary}", "--", "{hostname}", "{command}"]}}


def T(tid: int, **fields: object) -> str:
    lines = [f"task={tid}", "hostname=localhost", f"command=c{tid}", "exec=local"]
    return "\n".join(lines + [f"{k}={v}" for k, v in fields.items()]) + "\n\n"


def R(tid: int, host: str, exec_type: str = "ssh", **fields: object) -> str:
    """A task on ``host`` with the exec type ``exec_type``."""
    lines = [f"task={tid}", f"hostname={host}", f"command=c{tid}", f"exec={exec_type}"]
    return "\n".join(lines + [f"{k}={v}" for k, v in fields.items()]) + "\n\n"


def P(tid: int, members: str, **fields: object) -> str:
    lines = [f"task={tid}", "type=parallel", f"tasks={members}"]
    return "\n".join(lines + [f"{k}={v}" for k, v in fields.items()]) + "\n\n"


def finished(events: list[dict]) -> list[dict]:
    return [e for e in events if e["event"] == "task_finished"]


# ----------------------------------------------------------------- exec type and host


def test_the_tasks_exec_type_builds_the_command_line_for_its_host():
    r = run_vm(R(0, "web1"), exec_types=SSH)
    assert r.runner.calls == [["ssh", "--", "web1", "c0"]]
    assert r.record(0).hostname == "web1"


def test_a_host_is_replaced_by_the_name_host_validation_resolved_it_to():
    r = run_vm(R(0, "web1"), exec_types=SSH, hosts={"web1": "web1.example.org"})
    assert r.runner.calls == [["ssh", "--", "web1.example.org", "c0"]]
    assert r.record(0).hostname == "web1.example.org"


def test_an_exec_type_from_a_result_that_is_not_configured_stops_the_run_with_exit_20():
    r = run_vm(T(0) + R(1, "localhost", "@0_stdout@"), {"c0": [(0, "nosuch", "")]}, exec_types=SSH,
               validate=False)
    assert (r.ending.reason, r.code) == ("error", 20)
    assert r.ending.message.startswith("Task 1: exec type 'nosuch' is not configured (available: local, ssh;")
    assert f"ERROR: {r.ending.message}" in r.log
    assert r.runner.calls == [["c0"]]


def test_an_exec_type_from_a_result_with_an_at_sign_is_looked_up_like_any_other():
    r = run_vm(T(0) + R(1, "localhost", "@0_stdout@"), {"c0": [(0, "ops@site", "")]}, exec_types=SSH,
               validate=False)
    assert (r.ending.reason, r.code) == ("error", 20)
    assert r.ending.message.startswith("Task 1: exec type 'ops@site' is not configured")
    assert r.runner.calls == [["c0"]]


# ----------------------------------------------------------------- result values in arguments


def test_a_result_value_is_data_in_the_arguments_whatever_quotes_it_holds():
    text = T(0) + T(1, arguments="@0_stdout@") + T(2, arguments='"@0_stdout@"')
    r = run_vm(text, {"c0": [(0, "it's here", "")]})
    assert r.runner.calls[1:] == [["c1", "it's", "here"], ["c2", "it's here"]]


# ----------------------------------------------------------------- arguments that cannot be split


def test_an_unbalanced_quote_with_a_value_in_it_stops_the_run_and_names_the_arguments():
    r = run_vm(T(0) + T(1, arguments="'@0_stdout@"), {"c0": [(0, "x", "")]}, validate=False)
    assert (r.ending.reason, r.code) == ("error", 1)
    # the arguments are named as they were split (values in, no internal marker characters)
    assert r.ending.message == "Task 1: cannot split arguments \"'x\": No closing quotation"
    assert f"ERROR: {r.ending.message}" in r.log


def test_an_unbalanced_quote_fails_only_the_block_member_that_has_it():
    text = T(0) + P(1, "100,101", next="always") + T(2) + T(100, arguments="'@0_stdout@") + T(101)
    r = run_vm(text, {"c0": [(0, "x", "")]}, validate=False)
    assert r.path == [0, 1, 2] and r.code == 0
    assert r.record(1).counts == (1, 1, 2)
    assert ["c101"] in r.runner.calls and not any(c[0] == "c100" for c in r.runner.calls)
    record = r.record(100)
    assert (record.exit_code, record.stdout.text(), record.success, record.hostname) == (1, "", False,
                                                                                         "localhost")
    assert record.stderr.text() == "cannot split arguments \"'x\": No closing quotation"


# ----------------------------------------------------------------- a host refused at run time


def test_a_host_name_from_output_that_is_an_option_is_refused_and_the_task_fails():
    text = T(0) + R(1, "@0_stdout@", on_failure=2) + T(2)
    r = run_vm(text, {"c0": [(0, "-oProxyCommand=x", "")]}, exec_types=SSH, validate=False)
    assert r.path == [0, 1, 2]
    rec = r.record(1)
    assert (rec.exit_code, rec.stdout.text(), rec.success, rec.hostname) == (1, "", False, "-oProxyCommand=x")
    assert rec.stderr.text().startswith("refused: ")
    assert f"ERROR: Task 1: {rec.stderr.text()}" in r.log
    assert r.runner.calls == [["c0"], ["c2"]]


def test_a_local_task_is_not_checked_as_a_remote_host():
    r = run_vm(T(0) + R(1, "@0_stdout@", "local"), {"c0": [(0, "-oProxyCommand=x", "")]}, validate=False)
    assert r.code == 0 and r.runner.calls == [["c0"], ["c1"]]


# ----------------------------------------------------------------- timeout


def test_the_task_timeout_is_what_the_runner_is_given():
    r = run_vm(T(0, timeout=30) + T(1) + R(2, "web1"),
               exec_types={"ssh": dict(SSH["ssh"], timeout=45)})
    first, plain, remote = (t() for t in r.runner.timeouts)
    assert (first, plain, remote) == (30.0, 300.0, 45.0)


def test_a_timeout_that_is_not_a_number_is_warned_about_with_the_task_and_the_default_used(monkeypatch):
    asked: list[float] = []
    real = FakeRunner.run

    def run(self, argv, timeout, cancel):
        asked.append(timeout())      # as the process runner does once a command has run 5 s
        return real(self, argv, timeout, cancel)
    monkeypatch.setattr(FakeRunner, "run", run)
    r = run_vm(T(0, timeout="soon"), validate=False)
    assert asked == [300.0]
    assert "WARN: Task 0: timeout 'soon' is not a whole number; using the default" in r.log


# ----------------------------------------------------------------- the Slurm hook


class Steps:
    """Runs the tasks of the ``batch`` exec type in place of the process runner; records each call."""

    def __init__(self, cancel_seen: list) -> None:
        self.calls: list[tuple] = []
        self.cancel_seen = cancel_seen

    def handles(self, canonical: str) -> bool:
        return canonical == "batch"

    def run(self, canonical, argv, timeout, cancel, display):
        self.calls.append((canonical, list(argv), timeout(), display))
        self.cancel_seen.append(cancel)
        return RunResult(3, Output("from the cluster"), Output(""), start=5.0, end=7.0)


def test_a_task_of_a_type_the_step_runner_handles_goes_to_it_with_its_timeout_and_cancel():
    batch = {"batch": {"binary": "srun", "command_template": ["{binary}", "{command}"], "timeout": 40}}
    seen: list = []
    steps = Steps(seen)
    r = run_vm(R(0, "node1", "batch", next="always") + T(1), steps=steps, exec_types=batch)
    assert steps.calls == [("batch", ["srun", "c0"], 40.0, "0")]
    assert r.runner.calls == [["c1"]]          # the other task went to the process runner
    assert seen == [r.machine.env.cancel]
    rec = r.record(0)
    assert (rec.exit_code, rec.stdout.text(), rec.start, rec.end, rec.hostname) == (3, "from the cluster", 5.0,
                                                                                    7.0, "node1")


# ----------------------------------------------------------------- dry run


def test_a_dry_run_records_success_with_no_output_at_the_current_time():
    r = run_vm(T(0), dry_run=True)
    rec = r.record(0)
    now = r.clock.now()
    assert (rec.exit_code, rec.stdout.text(), rec.stderr.text(), rec.success) == (0, "", "", True)
    assert (rec.hostname, rec.start, rec.end) == ("localhost", now, now)
    assert r.runner.calls == []


def test_a_dry_run_shows_the_command_line_of_the_tasks_exec_type():
    r = run_vm(R(0, "web1", arguments="a b"), dry_run=True, exec_types=SSH)
    assert "Task 0: [DRY RUN] Would execute [ssh]: ssh -- web1 c0\n" in r.log


def test_a_dry_run_shows_a_command_whose_exec_type_comes_from_a_result_as_written():
    r = run_vm(T(0) + R(1, "localhost", "@0_stdout@", arguments="x y") + R(2, "localhost", "@0_stdout@"),
               dry_run=True, validate=False)
    assert "Task 1: [DRY RUN] Would execute [@0_stdout@]: c1 x y" in r.log
    assert "Task 2: [DRY RUN] Would execute [@0_stdout@]: c2\n" in r.log


# ----------------------------------------------------------------- progress and events


@pytest.mark.parametrize("dry", [False, True])
def test_each_command_reports_start_and_done_to_the_progress_line(dry):
    seen: list = []
    run_vm(T(0) + T(1), {"c1": [(2, "", "")]}, dry_run=dry,
           progress=lambda event, **info: seen.append((event, info)))
    # in a dry run nothing fails: the second task is a success too
    assert seen == [("start", {"task": 0}), ("done", {"task": 0, "success": True}),
                    ("start", {"task": 1}), ("done", {"task": 1, "success": dry})]


def test_a_command_is_reported_as_the_first_attempt_with_its_stored_record():
    sink = ListSink()
    r = run_vm(T(0), {"c0": [(4, "out", "err")]}, events=Events([sink]))
    started = [e for e in sink.events if e["event"] == "task_started"]
    assert [e["attempt"] for e in started] == [1]
    (done,) = finished(sink.events)
    assert (done["attempt"], done["exit_code"], done["host"], done["stderr_head"]) == (1, 4, "localhost", "err")
    assert r.code != 0


def test_a_command_too_long_for_the_system_is_reported_finished_with_its_failure():
    sink = ListSink()
    r = run_vm(T(0) + T(1, arguments="@0_stdout@"), {"c0": [(0, "x" * 3_000_000, "")]}, events=Events([sink]))
    assert len(r.runner.calls) == 1
    done = finished(sink.events)[1]
    assert (done["task"], done["exit_code"], done["success"]) == (1, 1, False)
    assert "over the operating system's limit" in done["stderr_head"]


def test_a_missing_command_is_reported_finished_before_the_run_stops():
    sink = ListSink()
    text = "task=0\nhostname=localhost\ncommand=__missing__\nexec=local\n"
    r = run_vm(text, events=Events([sink]))
    assert r.ending.reason == "missing_command"
    (done,) = finished(sink.events)
    assert (done["task"], done["exit_code"], done["stderr_head"]) == (0, 1, "not found")


def test_the_success_condition_is_logged_with_the_task():
    r = run_vm(T(0, success="exit_0&stdout~ok"), {"c0": [(0, "ok", "")]})
    assert "Task 0: Success condition 'exit_0&stdout~ok' evaluated to: True" in r.log
