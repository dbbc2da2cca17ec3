"""Property test of the task-file front end: any text gives an AST and diagnostics, never a traceback.

The values include numbers too long to convert, conditions nested past the limit and
globals that refer to themselves or to each other (which must hit the expansion cap,
not run for minutes).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tasker.check.checker import CheckOptions, compile_workflow
from tasker.ir.lower import lower
from tasker.ir.plan import render
from tasker.syntax.taskfile import parse_taskfile

KEYS = ["task", "hostname", "command", "arguments", "next", "on_success", "on_failure", "loop", "loop_break",
        "success", "failure", "condition", "type", "tasks", "hostnames", "if_true_tasks", "if_false_tasks",
        "return", "timeout", "sleep", "max_parallel", "retry_count", "retry_failed", "retry_delay",
        "stdout_split", "exec", "X", "hostname ", " task"]
VALUES = ["0", "1", "2", "-1", "abc", "parallel", "conditional", "decision", "never", "always", "loop",
          "exit_0", "stdout~x", "@0_stdout@", "@X@", "1,2", "localhost", "echo", "local", "space,1", "",
          "min_success=1", "(exit_0", "$HOME", "all_success", "3.5", "@task@", "a,b",
          "9" * 5000, "-" + "1" * 19, "space," + "9" * 4400, "1," + "7" * 30, f"exit_{'9' * 5000}",
          "@S@", "@A@", "@S@@S@@S@", f"@{'9' * 5000}_stdout@", "exit_1|(" * 60 + "exit_0" + ")" * 60,
          "exit_1|(exit_0&(" * 40 + "true" + "))" * 40]
GLOBALS = ["S=@S@@S@@S@@S@@S@@S@@S@@S@", "A=@B@@B@@B@@B@", "B=@A@@A@@A@@A@", "S=@S@", "A=@A@x",
           "L=" + "x" * 1000, "N=" + "9" * 5000]


@st.composite
def task_file(draw) -> str:
    head = draw(st.lists(st.sampled_from(GLOBALS), max_size=4))
    lines = head + draw(st.lists(st.one_of(
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
        for fmt in ("text", "dot", "mermaid"):
            assert render(program, fmt)
