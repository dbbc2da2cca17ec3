"""The VM over compiled workflows, with a scripted runner (docs/flow.md).

Each task ``k`` runs the program ``c<k>``; the script says what it answers.
"""

from __future__ import annotations

import pytest
from fakes import FakeRunner
from support import run_vm

from tasker.report.events import Events, ListSink
from tasker.runners.base import RunResult
from tasker.runners.output import Output


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


@pytest.mark.parametrize(("exit0", "path", "code"), [(0, [0, 1], 3), (4, [0, 2], 0)])
def test_return_only_task_with_condition_returns_or_skips_to_the_next_id(exit0, path, code):
    r = run_vm(T(0, on_failure=1) + "task=1\nreturn=3\ncondition=@0_exit@=0\n\n" + T(2), {"c0": [(exit0, "", "")]})
    assert (r.path, r.code) == (path, code)
    rec = r.record(1)
    if exit0 == 0:
        assert (r.ending.reason, rec.kind, rec.exit_code) == ("return", "return", 3)
    else:
        assert (rec.exit_code, rec.stderr.text()) == (-1, "Task skipped due to condition")


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


def test_a_finished_loop_continues_at_on_success_when_validation_is_skipped():
    r = run_vm(T(0, next="loop", loop=2, on_success=2) + T(1) + T(2), validate=False)
    assert [c[0] for c in r.runner.calls] == ["c0", "c0", "c2"]
    assert r.path == [0, 2]


def test_loop_count_without_next_loop_runs_once():
    r = run_vm(T(0, loop=3) + T(1), validate=False)
    assert [c[0] for c in r.runner.calls] == ["c0", "c1"]


def test_next_loop_without_a_count_is_a_false_condition():
    r = run_vm(T(0, next="loop") + T(1), validate=False)
    assert ([c[0] for c in r.runner.calls], r.code) == (["c0"], 1)


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


def test_decision_with_a_numeric_next_jumps_there_when_validation_is_skipped():
    r = run_vm("task=0\ntype=decision\nsuccess=false\nnext=2\n\n" + T(1) + T(2), validate=False)
    assert (r.path, r.code) == ([0, 2], 0)


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


def test_an_oversized_argv_names_every_output_reference_in_it_d26():
    r = run_vm(T(0) + T(1, arguments="@0_stdout@,@0_stderr@", next="never"), {"c0": [(0, "x" * 70_000, "y" * 70_000)]})
    assert r.record(1).stderr.text().endswith(
        "Pass large output as a file: @0_stdout_file@ instead of @0_stdout@, @0_stderr_file@ instead of "
        "@0_stderr@ gives the path of the file that holds it")


def test_an_argument_too_long_without_routing_ends_the_workflow_with_1_d26():
    r = run_vm(T(0) + T(1, arguments="@0_stdout@"), {"c0": [(0, "x" * 140_000, "")]})
    assert r.code == 1


# ----------------------------------------------------------------- what a run records (state, log, hooks)


class _Hooks:
    """A machine wired like ``run_vm`` plus a progress hook, a checkpoint hook and a cancel token."""

    def __init__(self, text: str, script: dict | None = None, *, dry_run: bool = False, validate: bool = True,
                 fail_checkpoint: int | None = None, cancel_at: tuple | None = None, runner=None,
                 events=None) -> None:
        import io

        from fakes import FakeClock, FakeRunner
        from support import compile_text

        from tasker.ir.lower import LowerOptions, lower
        from tasker.report.log import Log
        from tasker.runners.base import Cancel
        from tasker.runners.exectypes import ExecConfig, ExecTypes
        from tasker.vm.machine import Env, Machine

        workflow, diags = compile_text(text, validate=validate)
        assert not diags.has_errors(), [d.message for d in diags.errors]
        program = lower(workflow, LowerOptions())
        self.clock = FakeClock()
        self.sleep_cancels: list = []
        plain_sleep = self.clock.sleep

        def sleep(seconds, cancel=None):
            self.sleep_cancels.append(cancel)
            return plain_sleep(seconds, cancel)

        self.clock.sleep = sleep
        self.runner = runner or FakeRunner(script, self.clock)
        exec_types = ExecTypes(environ={})
        exec_types.use_config(ExecConfig())
        self.stream = io.StringIO()
        self.cancel = Cancel()
        self.progress: list = []
        self.checkpoints: list = []
        self.fail_checkpoint = fail_checkpoint
        self.cancel_at = cancel_at
        self.env = Env(runner=self.runner, clock=self.clock, exec_types=exec_types, log=Log("DEBUG", self.stream),
                       cancel=self.cancel, dry_run=dry_run, checkpoint=self.checkpoint, progress=self.on_progress,
                       events=events)
        self.machine = Machine(program, self.env)
        self.ending = self.machine.run()
        self.log = self.stream.getvalue()
        self.state = self.machine.state

    def on_progress(self, event, **info):
        self.progress.append((event, info))
        if self.cancel_at == (event, info.get("task", info.get("block"))):
            self.cancel.set(self.cancel_signal)

    cancel_signal = 15

    def checkpoint(self, machine, instr):
        from tasker.vm.errors import CheckpointError

        self.checkpoints.append((instr.addr if instr is not None else None, machine.state.in_flight))
        if len(self.checkpoints) == self.fail_checkpoint:
            raise CheckpointError("cannot write the recovery file: disk full")


def P(tid: int, **fields: object) -> str:
    return "\n".join([f"task={tid}", "type=parallel"] + [f"{k}={v}" for k, v in fields.items()]) + "\n\n"


def C(tid: int, **fields: object) -> str:
    return "\n".join([f"task={tid}", "type=conditional"] + [f"{k}={v}" for k, v in fields.items()]) + "\n\n"


def members3() -> str:
    return T(100) + T(101) + T(102)


def _final(state) -> tuple:
    return state.steps, state.final_task, state.final_host, state.final_command, state.final_exit, state.final_success


@pytest.mark.parametrize("text,script,ending,final", [
    (T(0), None, ("end", 0, ""), (1, 0, "localhost", "c0", 0, True)),
    (T(0) + T(1, condition="exit_1") + "task=2\ntype=decision\nsuccess=true\n\n" + "task=3\nreturn=3\n", None,
     ("return", 3, "return=3"), (4, 3, "N/A", "return", 3, False)),
    ("task=0\nreturn=0\n", None, ("return", 0, "return=0"), (1, 0, "N/A", "return", 0, True)),
    ("task=0\nreturn=-1\n", None, ("return", 255, "return=-1"), (1, 0, "N/A", "return", -1, False)),
    (T(0, **{"return": 4}), {"c0": [(2, "", "")]}, ("return", 4, "return=4"), (1, 0, "localhost", "c0", 2, False)),
    (P(1, tasks="100,101") + T(100) + T(101), {"c101": FAIL},
     ("condition", 10, "the condition to continue was not met"),
     (1, 1, "parallel", "Parallel execution: 1/2 successful, 1 failed", 1, False)),
    (C(1, condition="true", if_true_tasks="100", if_false_tasks="101") + T(100) + T(101), None, ("end", 0, ""),
     (1, 1, "conditional", "Conditional TRUE branch: 1/1 successful", 0, True)),
])
def test_the_final_task_and_step_count_of_a_run(text, script, ending, final):
    r = run_vm(text, script)
    assert (r.ending.reason, r.code, r.ending.message) == ending
    assert _final(r.machine.state) == final


def test_return_tasks_store_their_value_as_a_record():
    r = run_vm("task=0\nreturn=0\n")
    rec = r.record(0)
    assert (rec.exit_code, rec.success, rec.kind, rec.stdout.text(), rec.stderr.text()) == (0, True, "return", "", "")
    assert "Task 0: Returning with exit code 0" in r.log
    r = run_vm(T(0) + "task=1\nreturn=7\n")
    rec = r.record(1)
    assert (rec.exit_code, rec.success, rec.kind) == (7, False, "return")


def test_invalid_return_value_ends_the_run_with_its_own_reason_and_record():
    r = run_vm(T(0) + "task=1\nreturn=abc\n", validate=False)
    message = "Task 1: return value 'abc' is not a whole number"
    assert (r.ending.reason, r.code, r.ending.message) == ("invalid_return", 50, message)
    assert f"ERROR: {message}" in r.log
    rec = r.record(1)
    assert (rec.exit_code, rec.success, rec.kind, rec.stdout.text()) == (1, False, "return", "")
    assert _final(r.machine.state) == (2, 1, "N/A", "return", 1, False)


def test_a_skipped_task_is_stored_as_skipped_and_logged():
    r = run_vm(T(0) + T(1, condition="exit_1") + T(2))
    rec = r.record(1)
    assert (rec.kind, rec.stdout.text(), rec.success) == ("skipped", "", False)
    assert "Task 1: Condition false, skipping task" in r.log
    assert r.machine.state.steps == 3


@pytest.mark.parametrize("text,script,line", [
    (T(0, next="exit_0") + T(1), {"c0": OK}, "Task 0: 'exit_0' is True: continuing with Task 1"),
    (T(0, on_success=2) + T(1) + T(2), None, "Task 0: success is True: continuing with Task 2"),
    (T(0), None, "Task 0: success is True: continuing with the end of the workflow (no next task)"),
    (T(0), {"c0": FAIL}, "Task 0: success is False: continuing with stop, the workflow failed"),
    (T(0, next="exit_1"), None, "Task 0: 'exit_1' is False: continuing with stop, the workflow failed"),
    (T(0, on_success=1) + T(1), {"c0": FAIL},
     "Task 0: success is False: continuing with stop, the condition to continue was not met"),
    (T(0, next="never"), None, "Task 0: next=never: stop, the workflow succeeded"),
    (T(0, next="always") + T(1), {"c0": FAIL}, "Task 0: next=always: Task 1"),
    (T(0, condition="exit_1") + T(1), None, "Task 0: Condition 'exit_1' evaluated to: False"),
    ("task=0\ntype=decision\nsuccess=exit_0\non_success=2\n\n" + T(1) + T(2), None,
     "Task 0: DECISION - Evaluating conditions: True -> Task 2"),
    (C(1, condition="exit_1", if_true_tasks="100", if_false_tasks="101") + T(100) + T(101), None,
     "Task 1: Conditional block condition evaluated to: False"),
    (P(1, tasks="100", next="all_success") + T(100), None, "Task 1: 'all_success' is True: continuing with"),
    (P(1, tasks="100") + T(100), None, "Task 1: Parallel execution: 1/1 successful"),
    (T(0, timeout=5), {"c0": [(124, "", "")]}, "WARN: Task 0: Timeout after 5 seconds"),
])
def test_routing_decisions_are_logged(text, script, line):
    assert line in run_vm(text, script).log


def test_next_conditions_see_the_exit_code_and_the_judged_success():
    # success= decides that exit 3 is a success; next= then reads both
    r = run_vm(T(0, success="exit_3", next="success&exit_3") + T(1), {"c0": [(3, "", "")]})
    assert r.path == [0, 1]


def test_a_loop_condition_reads_the_exit_code_not_the_judged_success():
    # the loop's conditions see the exit code only: exit 3 is not "success" there
    r = run_vm(T(0, next="loop", loop=3, success="exit_3", loop_break="success") + T(1), {"c0": [(3, "", "")]})
    assert len(r.runner.calls) == 4


def test_loop_leaving_is_logged():
    r = run_vm(T(0, next="loop", loop=3, loop_break="exit_0") + T(1))
    assert "Task 0.1: loop_break condition met, leaving the loop" in r.log
    r = run_vm(T(0, next="loop&exit_1", loop=3) + T(1))
    assert "Task 0.1: loop condition no longer holds, leaving the loop" in r.log


def test_sleep_values_that_are_not_positive_numbers_do_not_sleep():
    r = run_vm(T(0, sleep="abc") + T(1, sleep=0) + T(2), validate=False)
    assert r.path == [0, 1, 2]
    assert r.clock.sleeps == []
    assert "WARN: Task 0: sleep value 'abc' is not a number; not sleeping" in r.log
    r = run_vm(T(0, sleep=5), dry_run=True)
    assert "Task 0: [DRY RUN] Would sleep 5 seconds" in r.log and r.clock.sleeps == []


def test_a_sleep_can_be_cut_short_by_the_cancel_token():
    h = _Hooks(T(0, sleep=5) + T(1))
    assert h.sleep_cancels == [h.cancel]


def test_progress_hook_sees_tasks_and_blocks():
    h = _Hooks(T(0) + P(1, tasks="100") + T(100), {"c100": FAIL})
    assert h.progress[:2] == [("start", {"task": 0}), ("done", {"task": 0, "success": True})]
    assert ("block", {"block": 1, "members": 1}) in h.progress
    assert h.progress[-1] == ("block_end", {"block": 1})


def test_a_checkpoint_is_written_before_and_after_each_command():
    h = _Hooks(T(0) + T(1))
    assert h.checkpoints == [("0", 0), ("0", None), ("0.route", None), ("1", 1), ("1", None), ("1.route", None)]
    assert h.state.fork_done == {}


def test_a_block_forgets_its_checkpointed_progress_once_joined():
    h = _Hooks(P(1, tasks="100,101") + T(2) + T(100) + T(101))
    assert h.state.fork_done == {} and h.state.members == {}
    assert h.ending.reason == "end"


@pytest.mark.parametrize("fail_at,ran", [(1, []), (2, ["c0"]), (3, ["c0"])])
def test_a_failed_checkpoint_stops_the_run_once(fail_at, ran):
    h = _Hooks(T(0) + T(1), fail_checkpoint=fail_at)
    assert (h.ending.reason, h.ending.exit_code) == ("checkpoint", 1)
    assert h.ending.message == "cannot write the recovery file: disk full" == h.env.halt
    assert [c[0] for c in h.runner.calls] == ran
    assert len(h.checkpoints) == fail_at                     # nothing is written after the failure
    assert h.log.count("ERROR: cannot write the recovery file: disk full: stopping the run") == 1
    assert "--auto-recovery resumes from it once there is space" in h.log
    assert h.state.final_success is False


def test_a_failed_checkpoint_inside_a_block_stops_the_run():
    h = _Hooks(C(1, condition="true", if_true_tasks="100,101", if_false_tasks="102") + T(2) + members3(),
               fail_checkpoint=2)
    assert (h.ending.reason, h.ending.exit_code, h.ending.message) == (
        "checkpoint", 1, "cannot write the recovery file: disk full")
    assert [c[0] for c in h.runner.calls] == ["c100"]
    assert h.log.count("ERROR: cannot write") == 1


@pytest.mark.parametrize("signum,name,code,suffix", [
    (15, "SIGTERM", 143, " [GRACEFUL_SHUTDOWN_SIGTERM]"), (2, "SIGINT", 130, " [GRACEFUL_SHUTDOWN_SIGINT]"),
    (1, "signal 1", 129, ""),
])
def test_a_signal_during_a_task_ends_the_run(signum, name, code, suffix):
    class Hooks(_Hooks):
        cancel_signal = signum

    h = Hooks(T(0) + T(1), cancel_at=("start", 0))
    assert (h.ending.reason, h.ending.exit_code, h.ending.message) == ("signal", code, f"interrupted by {name}")
    assert f"WARN: Received {name}: stopped the running tasks and their processes" in h.log
    assert (h.state.final_command, h.state.final_success, h.state.interrupted) == (f"c0{suffix}", False, 0)
    assert h.state.pc == "0.route"


def test_a_signal_in_a_dry_run_marks_no_task_as_interrupted():
    h = _Hooks(T(0) + T(1), dry_run=True, cancel_at=("start", 0))
    assert h.ending.reason == "signal" and h.state.interrupted is None


def test_a_signal_during_a_block_keeps_the_run_at_the_block():
    h = _Hooks(T(0) + P(1, tasks="100") + T(100), cancel_at=("start", 100))
    assert (h.ending.reason, h.ending.exit_code) == ("signal", 143)
    assert h.state.pc == "1"
    assert h.state.members == {}


def test_a_missing_command_ends_the_run_with_a_validation_error():
    r = run_vm("task=0\nhostname=localhost\ncommand=__missing__\nexec=local\n")
    assert r.ending.reason == "missing_command" and r.code == 20
    assert r.ending.message == "Task 0: FATAL ERROR: Missing command: '__missing__' was not found (not found)"
    assert f"ERROR: {r.ending.message}" in r.log


def test_a_command_that_cannot_start_is_logged():
    from fakes import FakeRunner

    from tasker.runners.base import RunResult
    from tasker.runners.output import Output

    class Runner(FakeRunner):
        def run(self, argv, timeout, cancel):
            self.calls.append(list(argv))
            return RunResult(126, Output(""), Output(""), error="permission denied")

    h = _Hooks(T(0), runner=Runner())
    assert "ERROR: Task 0: could not start: permission denied" in h.log
    assert h.ending.exit_code == 126


def test_an_oversized_argument_is_recorded_like_a_run_that_failed_at_once():
    text = T(0) + T(1, arguments="@0_stderr@", on_failure=2) + T(2, arguments="x" * 140_000, on_failure=3) + T(3)
    h = _Hooks(text, {"c0": [(0, "", "y" * 140_000)]}, validate=False)
    first = h.machine.store.get(1)
    assert (first.hostname, first.start, first.end, first.stdout.text()) == ("localhost", h.clock.t, h.clock.t, "")
    assert "@0_stderr_file@ instead of @0_stderr@" in first.stderr.text()
    second = h.machine.store.get(2).stderr.text()
    assert second.endswith("Pass large output as a file: @N_stdout_file@ instead of @N_stdout@ gives the path "
                           "of the file that holds it")
    assert ("done", {"task": 1, "success": False}) in h.progress
    assert ("done", {"task": 2, "success": False}) in h.progress


def test_a_block_reports_its_duration():
    from tasker.report.events import Events, ListSink

    sink = ListSink(("block_finished",))
    _Hooks(C(1, condition="true", if_true_tasks="100,101", if_false_tasks="102") + T(100, sleep=5) + T(101) + T(102),
           events=Events([sink]))
    assert [(e["block"], e["duration"]) for e in sink.events] == [(1, 5.0)]


def test_a_block_record_names_its_kind():
    r = run_vm(P(1, tasks="100,101") + T(100) + T(101), {"c101": FAIL})
    rec = r.record(1)
    assert (rec.exit_code, rec.hostname, rec.kind) == (1, "parallel", "block")
    r = run_vm(C(1, condition="true", if_true_tasks="100", if_false_tasks="101") + T(100) + T(101))
    rec = r.record(1)
    assert (rec.exit_code, rec.hostname, rec.kind) == (0, "conditional", "block")


# ----------------------------------------------------------------- host names checked at run time

REMOTE = {"ssh": {"binary": "ssh", "command_template": ["{binary}", "--", "{hostname}", "{command}"]},
          "shell": {"binary": "/bin/bash", "command_template": ["{binary}", "-c", "{command}"]}}
DASH = "hostname '-oX' starts with '-': a remote tool would read it as an option"


@pytest.mark.parametrize("exec_type,host,from_output,refused", [
    ("ssh", "-oX", True, DASH),
    ("ssh", "-oX", False, DASH),                  # refused even when written in the file (validation off)
    ("ssh", "a;b", True, "hostname contains the shell character ';'"),
    ("ssh", "a;b", False, None),                  # a written name was the validation's to judge
    ("ssh", "$(id)", True, "hostname contains shell command syntax `$(id)`; hostname contains the shell character '$'"),
    ("shell", "$(id)", True, "hostname contains the shell character '$'"),   # a shell type: no syntax finding
    ("ssh", "web1", True, None),
])
def test_a_host_name_is_checked_before_a_remote_exec_type_runs(exec_type, host, from_output, refused):
    text = T(0) + (f"task=1\nhostname={'@0_stdout@' if from_output else host}\ncommand=c1\nexec={exec_type}\n\n")
    run = run_vm(text, {"c0": [(0, f"{host}\n", "")], "c1": OK}, validate=False, exec_types=REMOTE)
    if refused is None:
        assert run.ending.exit_code == 0 and run.runner.calls[-1][-1] == "c1"
    else:
        assert (run.ending.exit_code, run.runner.calls) == (1, [["c0"]])
        assert f"ERROR: Task 1: refused: {refused}\n" in run.log
        record = run.record(1)
        assert (record.exit_code, record.stdout.text(), record.stderr.text(), record.success, record.hostname) == \
            (1, "", f"refused: {refused}", False, host)


def test_a_loop_check_without_a_running_loop_leaves_the_loop():
    """A state resumed at a loop's check that no longer holds the loop (a 2.2 file, an edited
    one) goes on after the loop instead of running the task again or failing."""
    r = run_vm(T(0, next="loop", loop=3) + T(1))
    check = next(i for i in r.machine.program.instrs.values() if i.kind == "loop" and i.op.phase == "next")
    assert 0 not in r.machine.state.loops
    assert r.machine._loop(check) == check.to("done") != check.to("again")


# ----------------------------------------------------------------- how a run ends

PAR_LOOP = "task=1\ntype=parallel\ntasks=100\nnext=loop\nloop=2\n\n" + T(100)


@pytest.mark.parametrize("text,script,ending", [
    (T(0, next="never"), {"c0": FAIL}, ("never", 0, "", True)),
    (T(0, on_success=1) + T(1), {"c0": FAIL}, ("condition", 10, "the condition to continue was not met", False)),
    (T(0) + T(1), {"c0": [(300, "", "")]}, ("failure", 44, "Task 0 failed", False)),    # modulo 256
    (T(0) + T(1), {"c0": [(-9, "", "")]}, ("failure", 247, "Task 0 failed", False)),    # killed by a signal
    (T(0, success="stdout~never") + T(1), None, ("failure", 1, "Task 0 failed", False)),
    (PAR_LOOP, None, ("fatal", 1, "Task 1: a parallel block cannot loop (next=loop)", False)),
])
def test_how_a_run_ends(text, script, ending):
    r = run_vm(text, script, validate=False)
    assert (r.ending.reason, r.ending.exit_code, r.ending.message, r.machine.state.final_success) == ending


def test_a_run_that_executes_no_task_ends_with_12():
    from tasker.ir.instructions import END
    from tasker.vm.machine import Machine

    r = run_vm(T(0))
    ending = Machine(r.machine.program, r.machine.env).run(END)
    assert (ending.reason, ending.exit_code, ending.message) == ("nothing", 12, "no task was executed")


# ----------------------------------------------------------------- what the log says of a result

def result_log(tmp_path, stdout, stderr) -> list[str]:
    """The lines Machine.log_result writes for a record of these outputs, without time stamps."""
    import io

    from tasker.report.log import Log
    from tasker.runners.base import RunResult
    from tasker.vm.store import Record

    r = run_vm(T(0))
    stream = io.StringIO()
    r.machine.log = Log("DEBUG", stream)
    r.machine.log_result("7", Record(0, stdout, stderr, True), RunResult(0, stdout, stderr))
    return [line.split("] ", 1)[1] for line in stream.getvalue().splitlines()]


def test_the_log_shows_the_head_of_each_output(tmp_path):
    """The log reads the head of each stream and shows 200 characters; its count is of the whole output."""
    from tasker.runners.output import Output

    assert result_log(tmp_path, Output("a" * 500), Output("b\n" * 300)) == [
        "Task 7: Exit code: 0",
        f"Task 7: STDOUT: {'a' * 200}... (500 bytes total)",
        "Task 7: STDERR: " + "b\\n" * 66 + "b\\... (600 bytes total)",   # newlines shown as \\n
    ]


def test_the_log_says_where_a_spilled_output_went(tmp_path):
    from tasker.runners.output import Output

    out, err = tmp_path / "o", tmp_path / "e"
    out.write_text("x" * 1000)
    err.write_text("e" * 10)
    assert result_log(tmp_path, Output(path=str(out), size=1000), Output(path=str(err), size=10)) == [
        "Task 7: Exit code: 0",
        f"Task 7: STDOUT: {'x' * 200}... (1000 bytes total) (spilled to disk)",
        "Task 7: STDERR: eeeeeeeeee",
        f"DEBUG: Task 7: stdout spilled to {out} (1000 bytes)",
        f"DEBUG: Task 7: stderr spilled to {err} (10 bytes)",
    ]


def test_arguments_without_result_values_are_plain_text():
    from tasker.syntax.ast import Template
    from tasker.vm.store import ResultStore

    store = ResultStore()
    assert store.arguments(None) == ""
    text = store.arguments(Template(("--name ", "x", " -v")))
    assert (type(text), text) == (str, "--name x -v")
    assert run_vm(T(0)).runner.calls == [["c0"]]      # no arguments: the program alone


def test_a_condition_never_sees_the_tasks_own_earlier_result():
    """condition= is judged before the task runs: exit 0 and no output, in every loop round and
    in a dry run too (where it reads no result, so nothing is assumed)."""
    r = run_vm(T(0, condition="exit_0", next="loop", loop=2) + T(1), {"c0": [(3, "", ""), (3, "", "")]})
    assert [c[0] for c in r.runner.calls] == ["c0", "c0", "c1"]
    dry = run_vm(T(0, condition="exit_1") + T(1, next="never"), dry_run=True)
    assert dry.record(0).kind == "skipped" and "assuming" not in dry.log


def test_a_dry_run_assumes_a_decisions_failure_condition_does_not_hold():
    text = T(0) + "task=1\ntype=decision\nfailure=@0_exit@=1\non_success=3\non_failure=9\n\n" \
        + T(3, next="never") + "task=9\nreturn=1\n"
    r = run_vm(text, dry_run=True)
    assert r.path == [0, 1, 3]
    assert "Task 1: [DRY RUN] assuming decision condition '@0_exit@=1' does not hold" in r.log


# ----------------------------------------------------------------- success of a task

@pytest.mark.parametrize("fields,answer,success,said", [
    ({}, (0, "", ""), True, None),
    ({}, (1, "", ""), False, None),
    ({"success": "stdout~ready"}, (1, "ready\n", ""), True, "Success condition 'stdout~ready' evaluated to: True"),
    ({"success": "stderr~ready"}, (0, "ready\n", ""), False, "Success condition 'stderr~ready' evaluated to: False"),
    ({"failure": "stderr~error"}, (0, "", "an error\n"), False, "Failure condition 'stderr~error' evaluated to: True"),
    ({"failure": "stderr~error"}, (1, "error\n", ""), True, "Failure condition 'stderr~error' evaluated to: False"),
])
def test_success_of_a_task_by_exit_code_or_its_condition(fields, answer, success, said):
    r = run_vm(T(0, next="never", **fields), {"c0": [answer]})
    assert r.record(0).success is success
    if said:
        assert f"Task 0: {said}\n" in r.log
    else:
        assert "condition" not in r.log


@pytest.mark.parametrize("length,shown", [(1000, "x" * 1000), (1001, "x" * 1000 + "... (1001 chars)")])
def test_a_long_command_line_is_cut_in_what_is_reported(length, shown):
    from tasker.report.events import Events, ListSink

    sink = ListSink()
    run_vm(T(0, arguments="x" * (length - 3), next="never"), events=Events([sink]))
    started = [e["command"] for e in sink.events if e["event"] == "task_started"]
    assert started == [shown.replace("xxx", "c0 ", 1)]


def test_rendering_text_without_placeholders():
    from tasker.syntax.ast import Template
    from tasker.vm.store import ResultStore

    store = ResultStore()
    assert (store.render(None), store.render(Template(("a",))), store.render(Template(("a", "b")))) == ("", "a", "ab")


def test_an_exec_type_that_is_not_configured_ends_the_run_with_20():
    r = run_vm(T(0).replace("exec=local", "exec=ssh"), validate=False)
    assert (r.ending.reason, r.code, r.runner.calls) == ("error", 20, [])
    assert r.ending.message == ("Task 0: exec type 'ssh' is not configured (available: local; "
                                "config: no configuration file found (searched: ))")


@pytest.mark.parametrize("arguments,shown", [("", "c1"), ("a b", "c1 a b")])
def test_a_dry_run_shows_a_task_whose_exec_type_is_known_only_at_run_time(arguments, shown):
    text = T(0) + T(1, arguments=arguments).replace("exec=local", "exec=@0_stdout@")
    r = run_vm(text, {"c0": [(0, "ssh\n", "")]}, validate=False, dry_run=True)
    assert r.code == 0
    assert f"Task 1: [DRY RUN] Would execute [@0_stdout@]: {shown}\n" in r.log


# ================================================================= one command (Machine.execute):
# exec type and host, timeout, the Slurm hook, refusals, dry runs, events and progress

SSH = {"ssh": {"binary": "ssh", "command_template": ["{binary}", "--", "{hostname}", "{command}"]}}


def R(tid: int, host: str, exec_type: str = "ssh", **fields: object) -> str:
    """A task on ``host`` with the exec type ``exec_type``."""
    lines = [f"task={tid}", f"hostname={host}", f"command=c{tid}", f"exec={exec_type}"]
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
    text = T(0) + P(1, tasks="100,101", next="always") + T(2) + T(100, arguments="'@0_stdout@") + T(101)
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
