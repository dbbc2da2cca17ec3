"""Property test of the task-file front end: any text gives an AST and diagnostics, never a traceback."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tasker.check.checker import CheckOptions, compile_workflow
from tasker.ir.lower import lower
from tasker.syntax.taskfile import parse_taskfile

KEYS = ["task", "hostname", "command", "arguments", "next", "on_success", "on_failure", "loop", "loop_break",
        "success", "failure", "condition", "type", "tasks", "hostnames", "if_true_tasks", "if_false_tasks",
        "return", "timeout", "sleep", "max_parallel", "retry_count", "retry_failed", "retry_delay",
        "stdout_split", "exec", "X", "hostname ", " task"]
VALUES = ["0", "1", "2", "-1", "abc", "parallel", "conditional", "decision", "never", "always", "loop",
          "exit_0", "stdout~x", "@0_stdout@", "@X@", "1,2", "localhost", "echo", "local", "space,1", "",
          "min_success=1", "(exit_0", "$HOME", "all_success", "3.5", "@task@", "a,b"]


@st.composite
def task_file(draw) -> str:
    lines = draw(st.lists(st.one_of(
        st.tuples(st.sampled_from(KEYS), st.sampled_from(VALUES)).map(lambda kv: f"{kv[0]}={kv[1]}"),
        st.sampled_from(["# comment", "", "--log-level=DEBUG", "-r", "stray words", "=", "--help"]),
        st.text(max_size=20),
    ), max_size=30))
    return "\n".join(lines)


@given(st.one_of(task_file(), st.text(max_size=200)), st.booleans())
def test_front_end_never_crashes(text, validate):
    tree = parse_taskfile(text, "fuzz.txt")
    workflow, diags = compile_workflow(tree, CheckOptions(validate=validate, environ={"HOME": "/h"}))
    for diag in diags.items:
        assert diag.message
    if not diags.has_errors() and workflow.tasks:
        program = lower(workflow)
        for instr in program.instrs.values():
            for _name, target in instr.succ:
                assert target in program.instrs
