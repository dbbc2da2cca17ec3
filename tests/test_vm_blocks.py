"""Parallel and conditional blocks on the VM with a scripted runner (docs/flow.md, D7, D11, D12)."""

from __future__ import annotations

import signal

import pytest
from support import run_vm


def T(tid: int, **fields: object) -> str:
    lines = [f"task={tid}", "hostname=localhost", f"command=c{tid}", "exec=local"]
    lines += [f"{k}={v}" for k, v in fields.items()]
    return "\n".join(lines) + "\n\n"


def P(tid: int, **fields: object) -> str:
    lines = [f"task={tid}", "type=parallel"] + [f"{k}={v}" for k, v in fields.items()]
    return "\n".join(lines) + "\n\n"


def C(tid: int, **fields: object) -> str:
    lines = [f"task={tid}", "type=conditional"] + [f"{k}={v}" for k, v in fields.items()]
    return "\n".join(lines) + "\n\n"


FAIL = [(1, "", "no\n")]
FIREWALL = "task=9\nreturn=0\n\n"


def members(*ids: int, **fields) -> str:
    return "".join(T(i, **fields) for i in ids)


# ----------------------------------------------------------------- parallel


def test_parallel_block_runs_members_and_stores_the_aggregate():
    r = run_vm(P(1, tasks="100,101,102") + T(2, next="never") + members(100, 101, 102))
    assert r.path == [1, 2]
    assert sorted(c[0] for c in r.runner.calls[:3]) == ["c100", "c101", "c102"]
    block = r.record(1)
    assert (block.exit_code, block.success, block.stdout.text()) == (0, True, "Parallel execution: 3/3 successful")
    assert block.counts == (3, 0, 3)
    assert r.machine.state.subtasks[1] and sorted(r.machine.state.subtasks[1]) == [100, 101, 102]


def test_parallel_failure_without_routing_exits_10():
    r = run_vm(P(1, tasks="100,101") + T(2) + members(100, 101), {"c101": FAIL})
    assert r.path == [1]
    assert r.code == 10
    block = r.record(1)
    assert block.stdout.text() == "Parallel execution: 1/2 successful, 1 failed"
    assert block.stderr.text() == "Failed tasks: [101]."


@pytest.mark.parametrize("policy,failing,continues", [
    ("next=all_success", 0, True), ("next=all_success", 1, False),
    ("next=any_success", 3, True), ("next=any_success", 4, False),
    ("next=majority_success", 1, True), ("next=majority_success", 2, False),
    ("next=min_success=3", 1, True), ("next=min_success=3", 2, False),
    ("next=max_failed=1", 1, True), ("next=max_failed=1", 2, False),
    ("next=always", 4, True), ("next=exit_0", 1, False), ("next=exit_0", 0, True),
])
def test_multi_task_conditions_route_the_block(policy, failing, continues):
    key, value = policy.split("=", 1)
    script = {f"c{100 + i}": FAIL for i in range(failing)}
    r = run_vm(P(1, tasks="100,101,102,103", **{key: value}) + T(2, next="never") + members(100, 101, 102, 103),
               script)
    assert (r.path == [1, 2]) is continues
    assert r.code == (0 if continues else 10)


def test_success_field_with_jumps():
    text = P(1, tasks="100,101,102,103", success="majority_success", on_success=2, on_failure=8) \
        + T(2, next="never") + T(8, next="never") + members(100, 101, 102, 103)
    assert run_vm(text, {"c100": FAIL, "c101": FAIL}).path == [1, 8]
    assert run_vm(text, {"c100": FAIL}).path == [1, 2]


def test_block_success_variable_is_all_success_whatever_routed():
    text = P(1, tasks="100,101", next="min_success=1") + T(2, arguments="@1_success@") + members(100, 101)
    r = run_vm(text, {"c100": FAIL})
    assert r.runner.calls[-1] == ["c2", "False"]


def test_aggregate_variables_d7():
    counts = "@1_success_count@/@1_failed_count@/@1_total_count@"
    text = P(1, tasks="100,101,102", next="always") + T(2, arguments=counts) + members(100, 101, 102)
    r = run_vm(text, {"c102": FAIL})
    assert r.runner.calls[-1] == ["c2", "2/1/3"]


def test_parallel_next_never_stops_successfully():
    r = run_vm(P(1, tasks="100", next="never") + T(2) + members(100), {"c100": FAIL})
    assert r.path == [1] and r.code == 0


def test_members_do_not_see_each_others_results_but_later_tasks_do():
    text = P(1, tasks="100,101") + T(2, arguments="@100_stdout@") + T(3, next="never") + \
        T(100) + T(101, arguments="@100_stdout@")
    r = run_vm(text, {"c100": [(0, "first\n", "")]})
    call_101 = next(c for c in r.runner.calls if c[0] == "c101")
    assert call_101 == ["c101", "@100_stdout@"]
    assert r.runner.calls[2] == ["c2", "first"]


def test_member_condition_false_is_a_skipped_failure():
    r = run_vm(P(1, tasks="100,101", next="always") + T(2, next="never") + T(100) + T(101, condition="false"))
    assert r.record(101).exit_code == -1
    assert r.record(1).counts == (1, 1, 2)


def test_member_return_gives_a_result_and_does_not_exit():
    r = run_vm(P(1, tasks="100,101", next="always") + T(2, next="never") + T(100) + "task=101\nreturn=3\n\n")
    assert r.path == [1, 2]
    rec = r.record(101)
    assert (rec.exit_code, rec.success, rec.stderr.text()) == (3, False, "Return task: 3")


def test_member_failure_field_is_ignored():
    r = run_vm(P(1, tasks="100") + T(2, next="never") + T(100, failure="exit_0"))
    assert r.record(100).success is True


def test_dry_run_members_succeed_without_running():
    r = run_vm(P(1, tasks="100") + T(2, next="never") + T(100, success="stdout~never"), dry_run=True)
    assert r.runner.calls == []
    assert r.record(100).stdout.text() == "" and r.record(100).success     # no output is guessed (D24)


def test_member_sleep_holds_the_block_result():
    r = run_vm(P(1, tasks="100") + T(2, next="never") + T(100, sleep=3))
    assert r.clock.sleeps == [3]


# ----------------------------------------------------------------- retries (docs/flow.md)


def test_retry_count_gives_exactly_one_plus_count_attempts_with_the_delay_between():
    text = P(1, tasks="100", retry_count=2, retry_delay=7) + T(2) + members(100)
    r = run_vm(text, {"c100": FAIL})
    assert [c[0] for c in r.runner.calls] == ["c100"] * 3
    assert r.clock.sleeps == [7, 7]
    assert "Task 1-100.3" in r.log


def test_retry_stops_at_the_first_success():
    r = run_vm(P(1, tasks="100", retry_count=5, retry_delay=1) + T(2, next="never") + members(100),
               {"c100": [(1, "", ""), (0, "", "")]})
    assert [c[0] for c in r.runner.calls] == ["c100", "c100", "c2"]
    assert r.path == [1, 2]


def test_retry_failed_alone_retries_once_with_one_second_delay():
    r = run_vm(P(1, tasks="100", retry_failed="true") + T(2) + members(100), {"c100": FAIL})
    assert len(r.runner.calls) == 2 and r.clock.sleeps == [1]


def test_timeouts_are_not_retried():
    r = run_vm(P(1, tasks="100", retry_count=3) + T(2) + members(100), {"c100": [(124, "", "")]})
    assert len(r.runner.calls) == 1
    assert r.record(1).stdout.text() == "Parallel execution: 0/1 successful, 1 timeout"


def test_retry_values_from_globals_d9():
    r = run_vm("N=2\nD=4\n\n" + P(1, tasks="100", retry_count="@N@", retry_delay="@D@") + T(2) + members(100),
               {"c100": FAIL})
    assert len(r.runner.calls) == 3 and r.clock.sleeps == [4, 4]


# ----------------------------------------------------------------- hostnames= (D11)


def test_hostnames_block_runs_one_subtask_per_host_with_its_id():
    r = run_vm("task=2\ntype=parallel\nhostnames=a,b,c\ncommand=echo\narguments=id=@task@\nexec=local\n"
               "next=never\n")
    assert sorted(" ".join(c) for c in r.runner.calls) == ["echo id=120000", "echo id=120001", "echo id=120002"]
    assert r.record(120001).success


def test_hostnames_success_with_a_count_decides_the_block_d11():
    text = "task=0\ntype=parallel\nhostnames=a,b,c\ncommand=chk\nexec=local\nsuccess=min_success=2\n" \
           "on_success=1\non_failure=2\n\n" + T(1, next="never") + T(2, next="never")
    script = {"chk": [(0, "", ""), (1, "", ""), (0, "", "")]}
    assert run_vm(text, script).path == [0, 1]


def test_hostnames_success_with_a_plain_condition_applies_to_each_host_d11():
    text = "task=0\ntype=parallel\nhostnames=a,b\ncommand=chk\nexec=local\nsuccess=stdout~ok\nnext=never\n"
    r = run_vm(text, {"chk": [(0, "ok", ""), (0, "bad", "")]})
    assert sorted(r.record(i).success for i in (100000, 100001)) == [False, True]


# ----------------------------------------------------------------- conditional (D12)


def test_conditional_runs_the_chosen_branch_in_listed_order_with_results_visible_at_once():
    text = T(0) + C(1, condition="@0_stdout@=OPEN", if_true_tasks="102,100", if_false_tasks="101") \
        + T(2, next="never") + FIREWALL + T(100, arguments="@102_stdout@") + T(101) + T(102)
    r = run_vm(text, {"c0": [(0, "OPEN\n", "")], "c102": [(0, "from 102\n", "")]})
    assert [c[0] for c in r.runner.calls] == ["c0", "c102", "c100", "c2"]
    assert r.runner.calls[2] == ["c100", "from", "102"]
    assert r.path == [0, 1, 2]
    assert r.record(1).stdout.text() == "Conditional TRUE branch: 2/2 successful"


def test_conditional_false_branch():
    text = C(1, condition="false", if_true_tasks="100", if_false_tasks="101") + T(2, next="never") + \
        FIREWALL + members(100, 101)
    r = run_vm(text)
    assert [c[0] for c in r.runner.calls] == ["c101", "c2"]
    assert r.record(1).stdout.text() == "Conditional FALSE branch: 1/1 successful"


def test_conditional_without_routing_continues_even_when_a_branch_task_failed():
    text = C(1, condition="true", if_true_tasks="100", if_false_tasks="101") + T(2, next="never") + \
        FIREWALL + members(100, 101)
    assert run_vm(text, {"c100": FAIL}).path == [1, 2]


def test_conditional_with_on_failure_uses_all_success_d12():
    text = C(1, condition="true", if_true_tasks="100", if_false_tasks="101", on_failure=8) + T(2, next="never") + \
        T(8, next="never") + FIREWALL + members(100, 101)
    assert run_vm(text, {"c100": FAIL}).path == [1, 8]
    assert run_vm(text).path == [1, 2]


def test_conditional_next_condition_failing_exits_10():
    text = C(1, condition="true", if_true_tasks="100,101", if_false_tasks="102", next="min_success=2") + \
        T(2, next="never") + FIREWALL + members(100, 101, 102)
    assert run_vm(text, {"c101": FAIL}).code == 10


def test_conditional_retries_branch_tasks():
    text = C(1, condition="true", if_true_tasks="100", if_false_tasks="101", retry_count=1, retry_delay=2) + \
        T(2, next="never") + FIREWALL + members(100, 101)
    r = run_vm(text, {"c100": FAIL})
    assert [c[0] for c in r.runner.calls] == ["c100", "c100", "c2"] and r.clock.sleeps == [2]


def test_firewall_pattern_members_also_run_sequentially_without_it():
    r = run_vm(P(0, tasks="1,2") + members(1, 2), validate=False)
    assert [c[0] for c in r.runner.calls].count("c1") == 2


# ----------------------------------------------------------------- block next= (D28-D30)


def test_conditional_next_never_stops_successfully_d28():
    text = C(1, condition="true", if_true_tasks="100", if_false_tasks="101", next="never") + \
        T(2, next="never") + FIREWALL + members(100, 101)
    assert (run_vm(text).code, run_vm(text).path) == (0, [1])
    assert (run_vm(text, {"c100": FAIL}).code, run_vm(text, {"c100": FAIL}).path) == (0, [1])


AGGREGATE_CASES = [
    # (next= of the block, failing members, continues)
    ("stdout~0 failed", (), True),
    ("stdout=Parallel execution summary: 2 successful, 0 failed", (), True),
    ("stdout=Parallel execution summary: 1 successful, 1 failed", (101,), True),
    ("stdout~/2 successful", (), False),              # the stored record's text is not what next= sees
    ("exit_0", (), True),
    ("exit_1", (101,), True),
    ("exit_0", (100,), False),
    ("stderr~", (), True),
    ("stderr=Failed tasks: [100, 101]", (101, 100), True),
    ("stderr~Timeout", (101,), False),
]


@pytest.mark.parametrize("next_,failing,continues", AGGREGATE_CASES)
def test_parallel_plain_next_sees_the_aggregate_context_d29(next_, failing, continues):
    text = P(1, tasks="100,101", next=next_) + T(2, next="never") + members(100, 101)
    r = run_vm(text, {f"c{i}": FAIL for i in failing})
    assert r.path == ([1, 2] if continues else [1])
    assert r.record(1).stdout.text().startswith("Parallel execution: ")   # the record keeps its text


@pytest.mark.parametrize("next_,failing,continues", AGGREGATE_CASES)
def test_conditional_plain_next_sees_the_aggregate_context_d29(next_, failing, continues):
    text = C(1, condition="true", if_true_tasks="100,101", if_false_tasks="102", next=next_) + \
        T(2, next="never") + FIREWALL + members(100, 101, 102)
    r = run_vm(text, {f"c{i}": FAIL for i in failing})
    assert r.path == ([1, 2] if continues else [1])
    assert r.record(1).stdout.text().startswith("Conditional TRUE branch: ")


def test_aggregate_stderr_lists_timed_out_members_among_the_failed_d29():
    text = P(1, tasks="100,101,102", next="stderr=Failed tasks: [100, 102]") + T(2, next="never") + \
        members(100, 101, 102)
    r = run_vm(text, {"c102": [(124, "", "")], "c100": FAIL})
    assert r.path == [1, 2]
    assert r.record(1).stderr.text() == "Failed tasks: [100]. Timeout tasks: [102]"


def test_failed_and_timeout_ids_are_ascending_whatever_the_completion_order_d30():
    ids = list(range(100, 112))
    script = {f"c{i}": FAIL for i in ids if i % 3 == 0} | {f"c{i}": [(124, "", "")] for i in ids if i % 3 == 1}
    r = run_vm(P(1, tasks=",".join(map(str, reversed(ids))), max_parallel=12, next="always")
               + T(2, next="never") + members(*ids), script)
    assert r.record(1).stderr.text() == ("Failed tasks: [102, 105, 108, 111]. "
                                         "Timeout tasks: [100, 103, 106, 109]")


# ----------------------------------------------------------------- @host@ (D25)


def test_host_placeholder_is_each_members_host_d25():
    r = run_vm("task=2\ntype=parallel\nhostnames=web1,web2\ncommand=/opt/@host@/bin/check\n"
               "arguments=--node @host@ --id @task@\nexec=local\nmax_parallel=1\nnext=never\n")
    assert [" ".join(c) for c in r.runner.calls] == ["/opt/web1/bin/check --node web1 --id 120000",
                                                      "/opt/web2/bin/check --node web2 --id 120001"]
    assert r.record(120001).hostname == "web2"


def test_member_lines_name_the_host_d25():
    r = run_vm("task=0\ntype=parallel\nhostnames=web1,web2\ncommand=chk\nexec=local\nmax_parallel=1\n"
               "retry_count=1\nretry_delay=0\nnext=always\n", {"chk": [(0, "", ""), (1, "", ""), (1, "", "")]})
    assert "Task 0-100000.1 [web1]: Exit code: 0" in r.log
    assert "Task 0-100001.2 [web2]: Exit code: 1" in r.log
    plain = run_vm(P(1, tasks="100", next="never") + T(100))
    assert "Task 1-100: Executing [local]: c100" in plain.log     # tasks= members show no host


# ----------------------------------------------------------------- block members in detail (issue 19)


def block(kind, **fields) -> str:
    """Block 1 running member 100: parallel, or a conditional block whose true branch it is."""
    if kind is P:
        return P(1, tasks="100", **fields)
    return C(1, condition="true", if_true_tasks="100", if_false_tasks="101", **fields)



def test_member_condition_decides_per_member_and_a_skip_is_recorded_as_such():
    r = run_vm(P(1, tasks="100,101", next="always") + T(2, next="never") + T(100, condition="true")
               + T(101, condition="false"))
    assert [c[0] for c in r.runner.calls] == ["c100", "c2"]
    skipped = r.record(101)
    assert (skipped.exit_code, skipped.stdout.text(), skipped.stderr.text(), skipped.success, skipped.kind) == \
        (-1, "", "Task skipped due to condition", False, "skipped")
    assert "Task 1-101: Condition false, skipping task" in r.log


def test_dry_run_member_condition_on_a_result_is_assumed_to_hold():
    text = T(0) + P(1, tasks="100", next="never") + T(100, condition="@0_stdout@=go")
    r = run_vm(text, dry_run=True)
    assert r.record(100).kind == "task" and r.record(100).success
    assert "Task 1-100: [DRY RUN] assuming condition '@0_stdout@=go' holds" in r.log


@pytest.mark.parametrize("value,record", [
    ("0", (0, "", "Return task: 0", True, "return")),
    ("3", (3, "", "Return task: 3", False, "return")),
    ("x", (1, "", "Invalid return code: x", False, "return")),
])
def test_member_return_record(value, record):
    # "x" is refused by the checker; unchecked, the VM still gives the member a clean failure
    r = run_vm(P(1, tasks="100", next="always") + T(2, next="never") + f"task=100\nreturn={value}\n\n",
               validate=False)
    rec = r.record(100)
    assert (rec.exit_code, rec.stdout.text(), rec.stderr.text(), rec.success, rec.kind) == record
    assert r.path == [1, 2]


@pytest.mark.parametrize("kind", [P, C])
def test_a_members_missing_command_is_that_members_failure_not_the_runs(kind):
    missing = "task=100\nhostname=localhost\ncommand=__missing__\nexec=local\n\n"
    r = run_vm(block(kind, next="always") + T(101) + T(2, next="never") + missing)
    assert r.path == [1, 2]
    assert (r.record(100).exit_code, r.record(100).stderr.text()) == (1, "not found")


@pytest.mark.parametrize("sleep,dry_run,sleeps", [
    ("0", False, []), ("0.5", False, [0.5]), ("3", True, []), ("@0_stdout@", False, []),
])
@pytest.mark.parametrize("kind", [P, C])
def test_member_sleep_values(kind, sleep, dry_run, sleeps):
    r = run_vm(T(0) + block(kind, next="never") + T(101) + T(100, sleep=sleep), {"c0": [(0, "soon\n", "")]},
               dry_run=dry_run)
    assert r.clock.sleeps == sleeps


def test_parallel_block_logs_its_start():
    r = run_vm(P(1, tasks="100,101", max_parallel=3, next="never") + members(100, 101))
    assert "Task 1: Starting parallel execution of 2 tasks (max_parallel=3)" in r.log


def retries(text: str, script: dict, **kw):
    """The run and its retry_scheduled events."""
    from tasker.report.events import Events, ListSink

    sink = ListSink()
    r = run_vm(text, script, events=Events([sink]), **kw)
    return r, [{k: e[k] for k in ("task", "block", "attempt", "delay", "exit_code")}
               for e in sink.events if e["event"] == "retry_scheduled"]


@pytest.mark.parametrize("count,delay,attempts,sleeps,warning", [
    ("abc", "2", 1, [], "Task 1: retry_count 'abc' is not a number; retries disabled"),
    ("0", "2", 2, [2.0], "Task 1: retry_count 0 is outside 1..1000; using 1"),
    ("1", "2", 2, [2.0], None),
    ("1000", "0", 1001, [0.0] * 1000, None),
    ("1001", "2", 2, [2.0], "Task 1: retry_count 1001 is outside 1..1000; using 1"),
    ("1", "0", 2, [0.0], None),
    ("1", "0.5", 2, [0.5], None),
    ("1", "300", 2, [300.0], None),
    ("1", "301", 2, [1.0], "Task 1: retry_delay is outside 0..300 seconds; using 1"),
    ("1", "-1", 2, [1.0], "Task 1: retry_delay is outside 0..300 seconds; using 1"),
    ("1", "soon", 2, [1.0], "Task 1: retry_delay is outside 0..300 seconds; using 1"),
])
@pytest.mark.parametrize("kind", [P, C])
def test_retry_values_known_only_at_run_time(kind, count, delay, attempts, sleeps, warning):
    text = T(0) + block(kind, retry_count="@0_stdout@", retry_delay="@0_stderr@", next="always")
    r = run_vm(text + T(2, next="never") + members(100, 101), {"c0": [(0, count, delay)], "c100": FAIL})
    assert [c[0] for c in r.runner.calls].count("c100") == attempts
    assert [s for s in r.clock.sleeps if s] == [s for s in sleeps if s]   # a parallel block waits no 0 s
    warnings = [line for line in r.log.splitlines() if "retry_" in line and "WARN" in line]
    assert [w[w.index("Task 1:"):] for w in warnings] == ([warning] if warning else [])


@pytest.mark.parametrize("kind", [P, C])
@pytest.mark.parametrize("dry_run", [False, True])
def test_retry_events_name_the_member_the_attempt_and_the_delay(kind, dry_run):
    text = block(kind, retry_count=2, retry_delay=7, next="always") + T(2, next="never") + members(100, 101)
    r, events = retries(text, {"c100": [(5, "", "")]}, dry_run=dry_run)
    if dry_run:   # a dry run's members succeed: nothing to retry
        assert events == [] and r.clock.sleeps == []
        return
    assert events == [{"task": 100, "block": 1, "attempt": 1, "delay": 7.0, "exit_code": 5},
                      {"task": 100, "block": 1, "attempt": 2, "delay": 7.0, "exit_code": 5}]
    assert "Task 1-100.3: Exit code: 5" in r.log


def test_parallel_retries_run_in_the_order_the_members_failed():
    text = P(1, tasks="100,101,102", max_parallel=1, retry_count=1, retry_delay=5, next="always") \
        + T(2, next="never") + members(100, 101, 102)
    r = run_vm(text, {"c100": FAIL, "c101": FAIL, "c102": FAIL})
    assert [c[0] for c in r.runner.calls] == ["c100", "c101", "c102", "c100", "c101", "c102", "c2"]


def test_a_member_that_crashes_is_that_members_failure(monkeypatch):
    from fakes import FakeRunner

    from tasker.vm.errors import Fatal
    real = FakeRunner.run

    def run(self, argv, timeout, cancel):
        if argv[0] == "c100":
            raise RuntimeError("boom")
        if argv[0] == "c101":
            raise Fatal("error", 20, "Task 1-101: no way")
        return real(self, argv, timeout, cancel)
    monkeypatch.setattr(FakeRunner, "run", run)
    r = run_vm(P(1, tasks="100,101,102", next="always") + T(2, next="never") + members(100, 101, 102))
    assert r.path == [1, 2]
    got = {t: (r.record(t).exit_code, r.record(t).stdout.text(), r.record(t).stderr.text(), r.record(t).success)
           for t in (100, 101)}
    assert got == {100: (1, "", "RuntimeError: boom", False), 101: (1, "", "Task 1-101: no way", False)}
    assert r.record(1).counts == (1, 2, 3)


def test_a_stop_can_cut_short_the_retry_delay_and_the_sleep_of_a_conditional_member():
    text = block(C, retry_count=1, retry_delay=7, next="always") + T(2, next="never") + T(101) + T(100, sleep=3)
    r = run_vm(text, {"c100": FAIL})
    assert r.clock.sleeps == [7, 3]
    assert r.clock.cancels == [r.machine.env.cancel] * 2


def test_a_block_condition_without_the_blocks_counts_sees_what_a_task_not_yet_run_sees():
    """A block's record restored from a file that kept no counts (or none at all) must not
    break its next= condition: it reads exit 0 and no output, as before any run."""
    from tasker.vm.evaluate import PRE
    from tasker.vm.store import Record

    r = run_vm(P(1, tasks="100", next="never") + members(100))
    assert r.machine.block_context(1).counts == (1, 0, 1)
    r.machine.store.put(1, Record(0, "Parallel execution: 1/1 successful", "", True))
    assert r.machine.block_context(1) is PRE
    assert r.machine.block_context(7) is PRE


@pytest.mark.parametrize("dry_run", [False, True])
@pytest.mark.parametrize("kind", [P, C])
def test_a_members_condition_is_judged_before_it_runs_even_in_a_dry_run(kind, dry_run):
    """A member's condition sees exit 0 and no output (its own result does not exist yet), with
    placeholders of globals filled in; a dry run judges it too, as it reads no result."""
    fork = P(1, tasks="100,101,102", next="never") if kind is P else \
        C(1, condition="true", if_true_tasks="100,101,102", if_false_tasks="103", next="never")
    text = "G=x\n\n" + fork + T(100, condition="exit_0") + T(101, condition="exit_1") \
        + T(102, condition="@G@=x") + T(103)
    r = run_vm(text, dry_run=dry_run)
    assert [r.record(t).kind for t in (100, 101, 102)] == ["task", "skipped", "task"]
    assert "assuming" not in r.log


def test_a_stop_can_cut_short_the_wait_for_a_parallel_members_sleep():
    r = run_vm(P(1, tasks="100,101", next="never") + T(100, sleep=3) + T(101, sleep=5))
    assert r.clock.sleeps == [5]                  # the block waits once, for the longest
    assert r.clock.cancels == [r.machine.env.cancel]


def test_a_join_resumed_without_its_members_or_branch_records_an_empty_true_branch():
    """A state resumed at a block's join that kept no members, no chosen branch and no start
    time (the block ran before the state was written) still joins: 0 of 0, starting as it ends."""
    from tasker.report.events import Events, ListSink

    sink = ListSink()
    r = run_vm(C(1, condition="true", if_true_tasks="100", if_false_tasks="101", next="never") + members(100, 101),
               events=Events([sink]))
    join = next(i for i in r.machine.program.instrs.values() if i.kind == "join")
    r.machine.state.branch.clear()
    assert r.machine._join(join) == join.to("next")
    record = r.record(1)
    assert (record.stdout.text(), record.counts, r.machine.state.subtasks[1]) == \
        ("Conditional TRUE branch: 0/0 successful", (0, 0, 0), [])
    finished = [e for e in sink.events if e["event"] == "block_finished"][-1]
    assert finished["start"] == finished["end"]


@pytest.mark.parametrize("max_parallel,members_,together", [(2, 2, 2), (3, 2, 2), (5, 3, 3)])
def test_a_parallel_block_runs_as_many_members_at_once_as_it_may(monkeypatch, max_parallel, members_, together):
    """Every member waits until ``together`` of them are running: fewer workers would never get there."""
    import threading

    from fakes import FakeRunner

    barrier = threading.Barrier(together, timeout=30)
    real = FakeRunner.run

    def run(self, argv, timeout, cancel):
        barrier.wait()
        return real(self, argv, timeout, cancel)
    monkeypatch.setattr(FakeRunner, "run", run)
    ids = list(range(100, 100 + members_))
    r = run_vm(P(1, tasks=",".join(map(str, ids)), max_parallel=max_parallel, next="never") + members(*ids))
    assert r.record(1).counts == (members_, 0, members_)


@pytest.mark.parametrize("kind", [P, C])
def test_a_dry_run_retries_a_refused_member_without_waiting(kind):
    """A dry run starts nothing, but a host name it refuses fails the member: its retries are
    shown with no delay, and nothing sleeps."""
    ssh = {"ssh": {"binary": "ssh", "command_template": ["{binary}", "--", "{hostname}", "{command}"]}}
    refused = "task=100\nhostname=-oX\ncommand=c100\nexec=ssh\n\n"
    text = block(kind, retry_count=2, retry_delay=7, next="always") + T(2, next="never") + T(101) + refused
    r, events = retries(text, {}, dry_run=True, validate=False, exec_types=ssh)
    assert events == [{"task": 100, "block": 1, "attempt": a, "delay": 0.0, "exit_code": 1} for a in (1, 2)]
    assert r.clock.sleeps == [] and r.runner.calls == []


def test_a_parallel_block_never_runs_more_members_at_once_than_it_may(monkeypatch):
    """Each member keeps its slot a moment after a second one started: a block that let more
    start would be seen with more than ``max_parallel`` running (never the other way round)."""
    import threading
    import time

    from fakes import FakeRunner

    cond = threading.Condition()
    seen = {"active": 0, "peak": 0}
    real = FakeRunner.run

    def run(self, argv, timeout, cancel):
        with cond:
            seen["active"] += 1
            seen["peak"] = max(seen["peak"], seen["active"])
            cond.notify_all()
            cond.wait_for(lambda: seen["active"] >= 2, timeout=30)
        time.sleep(0.2)
        with cond:
            seen["active"] -= 1
        return real(self, argv, timeout, cancel)
    monkeypatch.setattr(FakeRunner, "run", run)
    ids = list(range(100, 106))
    r = run_vm(P(1, tasks=",".join(map(str, ids)), max_parallel=2, next="never") + members(*ids))
    assert r.record(1).counts == (6, 0, 6)
    assert seen["peak"] == 2


def test_a_fault_of_the_block_scheduler_in_a_worker_reaches_the_caller_and_stops_the_other_workers(monkeypatch):
    from tasker.vm import forkjoin

    real, calls = forkjoin._Parallel._finish, []

    def finish(self, member, attempt, record):
        calls.append(member.task)
        if len(calls) == 1:
            raise RuntimeError("scheduler fault")
        real(self, member, attempt, record)

    monkeypatch.setattr(forkjoin._Parallel, "_finish", finish)
    with pytest.raises(RuntimeError, match="scheduler fault"):
        run_vm(P(1, tasks="100,101,102,103", max_parallel=2, next="never") + members(100, 101, 102, 103))
    assert len(calls) < 4           # the other worker stopped taking members (at most one slipped in)


def test_a_stop_during_a_branch_members_sleep_keeps_its_result_and_starts_no_other_member(monkeypatch):
    from fakes import FakeClock

    real = FakeClock.sleep

    def sleep(self, seconds, cancel=None):
        if cancel is not None:
            cancel.set(signal.SIGINT)          # Ctrl-C while task 100 sleeps after its command
        return real(self, seconds, cancel)

    monkeypatch.setattr(FakeClock, "sleep", sleep)
    r = run_vm(C(1, condition="true", if_true_tasks="100,101", if_false_tasks="102", next="never")
               + T(100, sleep=3) + T(101) + T(102))
    assert r.code == 130 and [argv[0] for argv in r.runner.calls] == ["c100"]
    assert r.record(100).exit_code == 0 and r.record(101) is None
