"""The VM over compiled workflows, with a scripted runner (docs/flow.md).

Each task ``k`` runs the program ``c<k>``; the script says what it answers.
"""

from __future__ import annotations

import pytest
from support import run_vm


def T(tid: int, **fields: object) -> str:
    lines = [f"task={tid}", "hostname=localhost", f"command=c{tid}", "exec=local"]
    lines += [f"{k}={v}" for k, v in fields.items()]
    return "\n".join(lines) + "\n\n"


OK = [(0, "ok\n", "")]
FAIL = [(3, "", "boom\n")]


# ----------------------------------------------------------------- sequencing


def test_default_successor_is_the_next_id_by_number_not_file_order():
    r = run_vm(T(1) + T(0) + T(2))
    assert r.path == [0, 1, 2]
    assert r.code == 0


def test_run_ends_when_the_next_id_does_not_exist():
    r = run_vm(T(0) + T(1) + T(5), validate=False)
    assert r.path == [0, 1]
    assert r.code == 0


def test_start_from_skips_lower_ids():
    r = run_vm(T(0) + T(1) + T(2), start=1)
    assert r.path == [1, 2]


# ----------------------------------------------------------------- routing table


def test_no_routing_success_continues():
    assert run_vm(T(0) + T(1)).path == [0, 1]


def test_no_routing_failure_stops_with_the_task_exit_code():
    r = run_vm(T(0) + T(1), {"c0": FAIL})
    assert r.path == [0]
    assert r.code == 3
    assert r.ending.reason == "failure"


def test_failure_of_a_task_that_exited_0_ends_with_1():
    r = run_vm(T(0, success="stdout~never") + T(1))
    assert r.code == 1


def test_fire_and_forget_continues_after_a_failure_without_routing():
    r = run_vm(T(0) + T(1), {"c0": FAIL}, fire_and_forget=True)
    assert r.path == [0, 1]
    assert r.code == 0


def test_on_success_only_jumps_on_success():
    r = run_vm(T(0, on_success=2) + T(1) + T(2))
    assert r.path == [0, 2]


def test_on_success_only_failure_exits_10():
    r = run_vm(T(0, on_success=2) + T(1) + T(2), {"c0": FAIL})
    assert r.path == [0]
    assert r.code == 10


def test_on_success_only_failure_is_not_rescued_by_fire_and_forget():
    r = run_vm(T(0, on_success=2) + T(1) + T(2), {"c0": FAIL}, fire_and_forget=True)
    assert r.code == 10


def test_on_failure_only_success_continues_with_next_id():
    r = run_vm(T(0, on_failure=2) + T(1) + T(2))
    assert r.path == [0, 1, 2]


def test_on_failure_only_failure_jumps_and_the_run_ends_successfully():
    r = run_vm(T(0, on_failure=2) + T(1) + T(2), {"c0": FAIL})
    assert r.path == [0, 2]
    assert r.code == 0


def test_both_targets():
    script = {"c0": FAIL}
    assert run_vm(T(0, on_success=1, on_failure=2) + T(1, next="never") + T(2), script).path == [0, 2]
    assert run_vm(T(0, on_success=1, on_failure=2) + T(1, next="never") + T(2)).path == [0, 1]


def test_next_never_stops_successfully_even_after_a_failure():
    r = run_vm(T(0, next="never") + T(1), {"c0": FAIL})
    assert r.path == [0]
    assert r.code == 0
    assert r.ending.reason == "never"


def test_next_always_continues_after_a_failure():
    r = run_vm(T(0, next="always") + T(1), {"c0": FAIL})
    assert r.path == [0, 1]
    assert r.code == 0


def test_next_condition_true_continues_even_when_the_task_failed():
    r = run_vm(T(0, next="stderr~boom") + T(1), {"c0": FAIL})
    assert r.path == [0, 1]


def test_next_condition_false_stops_with_failure():
    r = run_vm(T(0, next="stdout~zzz") + T(1))
    assert r.path == [0]
    assert r.code == 1


def test_next_success_keyword_is_the_task_success():
    assert run_vm(T(0, next="success") + T(1)).path == [0, 1]
    assert run_vm(T(0, next="success") + T(1), {"c0": FAIL}).code == 3


def test_return_with_command_exits_after_the_task_whatever_its_routing():
    r = run_vm(T(0, on_failure=1, **{"return": 9}) + T(1), {"c0": FAIL})
    assert r.code == 9
    assert r.ending.reason == "return"


def test_return_only_exits_with_value_modulo_256():
    r = run_vm(T(0) + "task=1\nreturn=300\n")
    assert r.path == [0, 1]
    assert r.code == 44


def test_invalid_return_value_exits_50():
    r = run_vm(T(0) + "task=1\nreturn=abc\n", validate=False)
    assert r.code == 50
    assert r.record(1).stderr.text() == "Invalid return code: abc"


# ----------------------------------------------------------------- condition gate


def test_false_condition_skips_and_continues_with_next_id_ignoring_routing():
    r = run_vm(T(0) + T(1, condition="@0_exit@=5", on_success=3, on_failure=3) + T(2) + T(3))
    assert r.path == [0, 2, 3]
    rec = r.record(1)
    assert (rec.exit_code, rec.success, rec.stderr.text()) == (-1, False, "Task skipped due to condition")
    assert "c1" not in [c[0] for c in r.runner.calls]


def test_condition_sees_exit_0_and_empty_output():
    r = run_vm(T(0, condition="exit_0&stdout~") + T(1, condition="exit_1"), {"c0": OK})
    assert r.path == [0]
    assert r.record(1).exit_code == -1


# ----------------------------------------------------------------- loops


def test_loop_runs_exactly_n_times_and_appears_once_in_the_path():
    r = run_vm(T(0, next="loop", loop=3) + T(1))
    assert [c[0] for c in r.runner.calls] == ["c0", "c0", "c0", "c1"]
    assert r.path == [0, 1]
    assert "Task 0.3" in r.log


def test_loop_break_ends_the_loop_early():
    script = {"c0": [(0, "1\n", ""), (0, "2\n", ""), (0, "3\n", "")]}
    r = run_vm(T(0, next="loop", loop=5, loop_break="stdout~2") + T(1), script)
    assert [c[0] for c in r.runner.calls] == ["c0", "c0", "c1"]


def test_failing_iterations_do_not_stop_the_loop():
    r = run_vm(T(0, next="loop", loop=3) + T(1), {"c0": [(7, "", "")]})
    assert [c[0] for c in r.runner.calls] == ["c0", "c0", "c0", "c1"]
    assert r.record(0).success is False
    assert r.code == 0


def test_next_loop_with_condition_loops_while_it_holds():
    script = {"c0": [(0, "a\n", ""), (0, "b\n", ""), (0, "stop\n", ""), (0, "c\n", "")]}
    r = run_vm(T(0, next="loop&stdout!~stop", loop=10) + T(1), script)
    assert [c[0] for c in r.runner.calls] == ["c0", "c0", "c0", "c1"]


def test_loop_sleeps_after_every_iteration():
    r = run_vm(T(0, next="loop", loop=2, sleep=1.5))
    assert r.clock.sleeps == [1.5, 1.5]


# ----------------------------------------------------------------- decisions


def test_decision_true_jumps_to_on_success():
    r = run_vm(T(0) + "task=1\ntype=decision\nsuccess=@0_stdout@=ok\non_success=3\non_failure=2\n\n" + T(2) + T(3),
               {"c0": OK})
    assert r.path == [0, 1, 3]


def test_decision_false_without_on_failure_continues_at_next_id():
    r = run_vm(T(0) + "task=1\ntype=decision\nsuccess=@0_stdout@=nope\non_success=3\n\n" + T(2) + T(3), {"c0": OK})
    assert r.path == [0, 1, 2, 3]


def test_decision_failure_field_is_inverted():
    r = run_vm(T(0) + "task=1\ntype=decision\nfailure=@0_exit@!=0\non_success=3\non_failure=2\n\n" + T(2) + T(3),
               {"c0": OK})
    assert r.path == [0, 1, 3]


def test_decision_next_never_stops_successfully_d13():
    r = run_vm("task=0\ntype=decision\nsuccess=false\nnext=never\n\n" + T(1))
    assert r.path == [0]
    assert r.code == 0


def test_decision_stores_no_record():
    r = run_vm("task=0\ntype=decision\nsuccess=true\non_success=1\n\n" + T(1))
    assert r.record(0) is None


# ----------------------------------------------------------------- sleep, dry run, timeout


def log_order(log: str, *needles: str) -> list[int]:
    """Line numbers of the first line containing each needle (each must be there)."""
    lines = log.splitlines()
    found = [next((i for i, line in enumerate(lines) if needle in line), None) for needle in needles]
    assert None not in found, (needles, log)
    return found


def test_sleep_happens_after_the_task_and_before_routing():
    r = run_vm(T(0, sleep="0.5", on_success=2) + T(1) + T(2))
    assert r.clock.sleeps == [0.5]
    assert r.path == [0, 2]
    # the next task starts after the pause: task 0 ended at t, task 2 started at t + 0.5 on the fake clock
    assert r.record(2).start == r.record(0).end + 0.5
    ran, slept, routed = log_order(r.log, "Task 0: Exit code", "Task 0: Sleeping 0.5", "continuing with Task 2")
    assert ran < slept < routed


def test_sleep_happens_before_a_return():
    r = run_vm(T(0, sleep="0.5", **{"return": 3}) + T(1))
    assert (r.code, r.clock.sleeps, r.path) == (3, [0.5], [0])
    slept, returned = log_order(r.log, "Task 0: Sleeping 0.5", "Returning with exit code 3")
    assert slept < returned


def test_dry_run_starts_nothing_and_sleeps_not():
    r = run_vm(T(0, sleep=2) + T(1, success="stdout~ready"), dry_run=True)
    assert r.runner.calls == []
    assert r.clock.sleeps == []
    assert r.record(0).stdout.text() == ""
    assert r.code == 0  # success=stdout~ready reads the result: assumed to hold (D24)
    assert "Task 1: [DRY RUN] assuming success condition 'stdout~ready' holds" in r.log


# ----------------------------------------------------------------- dry run (D24)


def test_dry_run_assumes_every_condition_on_a_result_holds_d24():
    text = (T(0, success="exit_0&stdout~ok", next="stdout_count>2") + T(1, condition="@0_stdout@=go")
            + "task=2\ntype=decision\nsuccess=@1_exit@=0\non_success=3\non_failure=9\n\n"
            + T(3, failure="stderr~error", on_success=4, on_failure=9) + T(4, next="never") + "task=9\nreturn=1\n")
    r = run_vm(text, dry_run=True)
    assert r.runner.calls == []
    assert (r.code, r.path) == (0, [0, 1, 2, 3, 4])
    for line in ("Task 0: [DRY RUN] assuming success condition 'exit_0&stdout~ok' holds",
                 "Task 0: [DRY RUN] assuming next condition 'stdout_count>2' holds",
                 "Task 1: [DRY RUN] assuming condition '@0_stdout@=go' holds",
                 "Task 2: [DRY RUN] assuming decision condition '@1_exit@=0' holds",
                 "Task 3: [DRY RUN] assuming failure condition 'stderr~error' does not hold"):
        assert line in r.log


def test_dry_run_evaluates_conditions_that_read_no_result_d24():
    text = T(0, condition="false") + T(1, success="false", on_failure=3) + T(2) + T(3, next="never")
    r = run_vm(text, dry_run=True)
    assert r.path == [1, 3]                       # task 0 skipped by its condition
    assert "assuming" not in r.log


def test_dry_run_shows_a_loop_once_d24():
    r = run_vm(T(0, next="loop", loop=5, loop_break="stdout~done") + T(1, next="loop&exit_0", loop=3), dry_run=True)
    assert r.path == [0, 1]
    assert "Task 0.1: [DRY RUN] a loop of 5 rounds: shown once" in r.log
    assert "Task 0.2" not in r.log and "Task 1.2" not in r.log


def test_dry_run_leaves_result_placeholders_as_written_d24():
    r = run_vm(T(0) + T(1, arguments="got @0_stdout@ and @0_exit@"), dry_run=True)
    assert "Task 1: [DRY RUN] Would execute [local]: c1 got @0_stdout@ and @0_exit@" in r.log


def test_dry_run_takes_the_true_branch_of_a_conditional_that_reads_a_result_d24():
    text = (T(0) + "task=1\ntype=conditional\ncondition=@0_stdout@~yes\nif_true_tasks=10\nif_false_tasks=11\n"
            "success=all_success\n\n" + T(2, next="never") + "task=9\nreturn=0\n\n" + T(10) + T(11))
    r = run_vm(text, dry_run=True)
    assert r.path == [0, 1, 2]
    assert r.machine.state.subtasks[1] == [10]
    assert "Task 1: [DRY RUN] assuming condition '@0_stdout@~yes' holds" in r.log
    assert "Task 1: [DRY RUN] assuming block condition 'all_success' holds" in r.log


def test_timeout_ends_the_workflow_with_124():
    r = run_vm(T(0) + T(1), {"c0": [(124, "", "")]})
    assert r.code == 124
    assert "Process killed after timeout" in r.record(0).stderr.text()


def test_task_killed_by_a_signal_ends_with_256_minus_n():
    r = run_vm(T(0), {"c0": [(-15, "", "")]})
    assert r.code == 241


# ----------------------------------------------------------------- variables (docs/taskfile.md, D7)


def test_result_placeholders_are_substituted_and_inserted_text_is_data():
    script = {"c0": [(0, "a|b & @1_stdout@\n", "")]}
    r = run_vm(T(0) + T(1, arguments="got @0_stdout@ rc=@0_exit@ ok=@0_success@"), script)
    assert r.runner.calls[1] == ["c1", "got", "a|b", "&", "@1_stdout@", "rc=0", "ok=True"]


def test_placeholder_of_a_task_without_result_stays_literal():
    r = run_vm(T(0, arguments="@1_stdout@") + T(1))
    assert r.runner.calls[0] == ["c0", "@1_stdout@"]


def test_stdout_split_replaces_the_output_before_success():
    r = run_vm(T(0, stdout_split="space,1", success="stdout=beta") + T(1), {"c0": [(0, "alpha beta gamma\n", "")]})
    assert r.record(0).stdout.text() == "beta"
    assert r.path == [0, 1]


@pytest.mark.parametrize("spec,text,expected", [
    ("comma,2", "a,b,c", "c"), ("colon,0", "x:y", "x"), ("semicolon,1", "a;b", "b"), ("pipe,1", "a|b", "b"),
    ("tab,1", "a\tb", "b"), ("newline,1", "l1\nl2\n", "l2"), ("whitespace,1", "a \t b", "b"),
    ("space,5", "a b", "a b"), ("-,1", "a-b", "b"),
    ("COMMA,1", "a,b", "b"), ("Space,0", "a b", "a"),          # keywords in any case
    ("[0-9]+,1", "a12b", "b"), ("(,1", "a(b", "b"),           # a regular expression; literal when it is none
    ("x,0", "x", ""), ("x,1", "x", ""),                         # a one-character output split to empty fields
    ("space,2", "a b", "a b"), ("space,1", "a b", "b"),         # one past the last field: unchanged
    ("space,-1", "a b", "a b"),                                 # a negative index leaves the output unchanged
    ("b(x)?c,1", "abc", ""), ("b(x)?c,2", "abc", ""), ("b(x)?c,0", "abc", "a"),  # a group that took no part
    ("b(x)c,1", "abxcd", "x"),
])
def test_split_delimiters(spec, text, expected):
    r = run_vm(T(0, stdout_split=spec), {"c0": [(0, text, "")]})
    assert r.record(0).stdout.text() == expected


def test_stderr_split_keeps_one_field_of_stderr_only():
    r = run_vm(T(0, stderr_split="colon,1"), {"c0": [(0, "a:b", "E:detail")]})
    assert (r.record(0).stdout.text(), r.record(0).stderr.text()) == ("a:b", "detail")


def test_splitting_an_empty_output_keeps_it_empty():
    r = run_vm(T(0, stdout_split="space,0"), {"c0": [(0, "", "")]})
    assert r.record(0).stdout.text() == ""


# ----------------------------------------------------------------- argv too long (D26)


def test_an_argument_too_long_for_the_os_fails_the_task_before_it_starts_d26():
    r = run_vm(T(0) + T(1, arguments="--data=@0_stdout@", on_failure=3) + T(2) + T(3, next="never"),
               {"c0": [(0, "x" * 200_000, "")]})
    assert [c[0] for c in r.runner.calls] == ["c0", "c3"]          # c1 never started
    assert r.path == [0, 1, 3]
    record = r.record(1)
    assert (record.exit_code, record.success) == (1, False)
    message = record.stderr.text()
    assert message.startswith("Task 1: argument 1 is 200,007 bytes after substitution")
    assert "limit of 131,072 bytes" in message and "@0_stdout_file@ instead of @0_stdout@" in message
    assert message in r.log


def test_an_argument_too_long_without_routing_ends_the_workflow_with_1_d26():
    r = run_vm(T(0) + T(1, arguments="@0_stdout@"), {"c0": [(0, "x" * 140_000, "")]})
    assert r.code == 1
