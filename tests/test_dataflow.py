"""The data-flow warning: reading @N_…@ where task N may not have run (issue 8)."""

from __future__ import annotations

import pytest
from support import EXAMPLES, compile_text, dedent

from tasker.check.dataflow import analyze
from tasker.ir.lower import lower, task_graph
from tasker.syntax.taskfile import parse_taskfile


def T(tid, **fields) -> str:
    lines = [f"task={tid}", "hostname=localhost", "command=echo", "exec=local"]
    return "\n".join(lines + [f"{k}={v}" for k, v in fields.items()]) + "\n\n"


def warnings(text: str, start=None):
    wf, diags = compile_text(text)
    assert not diags.has_errors(), [d.message for d in diags.errors]
    return analyze(wf, parse_taskfile(dedent(text), "t.txt"), start=start).items


def test_a_jump_past_the_task_is_reported_with_both_places():
    found = warnings(T(0, on_success=2, on_failure=1) + T(1) + T(2, arguments="@1_stdout@"))
    assert len(found) == 1
    w = found[0]
    assert "task 2 reads @1_stdout@, but task 1 may not have run" in w.message
    assert "task 0 -> task 2" in w.message
    assert (w.span.line, w.span.col) == (17, 11)
    assert w.related[0][0].line == 8 and "task 1 is defined here" in w.related[0][1]


def test_a_read_on_every_path_through_the_task_is_safe():
    assert warnings(T(0) + T(1) + T(2, arguments="@0_stdout@ @1_exit@")) == []


def test_a_skipped_task_still_stores_a_result():
    assert warnings(T(0, condition="false") + T(1, arguments="@0_exit@")) == []


def test_both_branches_of_a_jump_rejoin_after_the_task():
    text = T(0, on_success=1, on_failure=2) + T(1, on_success=3) + T(2) + T(3, arguments="@0_stdout@")
    assert warnings(text) == []


def test_a_member_of_only_one_conditional_branch_may_not_have_run():
    text = (T(0) + "task=1\ntype=conditional\ncondition=@0_exit@=0\nif_true_tasks=100\nif_false_tasks=101\n\n"
            + T(2, arguments="@100_stdout@", next="never") + T(100) + T(101))
    found = warnings(text)
    assert any("task 2 reads @100_stdout@" in w.message for w in found)


def test_members_of_a_parallel_block_do_not_see_each_other():
    text = "task=0\ntype=parallel\ntasks=100,101\nnext=never\n\n" + T(100) + T(101, arguments="@100_stdout@")
    found = warnings(text)
    assert any("runs in the same block" in w.message for w in found)


def test_later_members_of_a_conditional_branch_see_earlier_ones():
    text = ("task=0\ntype=conditional\ncondition=true\nif_true_tasks=100,101\nif_false_tasks=102\nnext=never\n\n"
            + T(100) + T(101, arguments="@100_stdout@") + T(102))
    assert not any("@100_stdout@" in w.message for w in warnings(text))


def test_a_parallel_block_stores_its_members_for_the_tasks_after_it():
    text = "task=0\ntype=parallel\ntasks=100\n\n" + T(1, arguments="@100_stdout@", next="never") + T(100)
    assert warnings(text) == []


def test_start_from_makes_earlier_results_unavailable():
    found = warnings(T(0) + T(1) + T(2, arguments="@0_stdout@"), start=1)
    assert any("task 0 may not have run" in w.message for w in found)


def test_a_decision_block_stores_no_result():
    found = warnings("task=0\ntype=decision\nsuccess=true\non_success=1\n\n" + T(1, arguments="@0_stdout@"))
    assert any("decision block and stores no result" in w.message for w in found)


def test_the_examples_have_no_data_flow_warnings():
    for example in EXAMPLES.glob("*.txt"):
        assert warnings(example.read_text()) == [], example.name


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.txt")))
def test_task_graph_agrees_with_the_program(example):
    """The analysis reads the same edges the VM follows."""
    wf, _ = compile_text((EXAMPLES / example).read_text())
    program = lower(wf)
    from_program: dict[int, set[int]] = {}
    for instr in program.instrs.values():
        for _name, target in instr.succ:
            tgt = program.instrs[target].task
            if instr.task is not None and tgt is not None and tgt != instr.task:
                from_program.setdefault(instr.task, set()).add(tgt)
    graph = task_graph(wf)
    for tid, succs in graph.items():
        assert set(succs) - {tid} == from_program.get(tid, set()), tid


def test_the_warning_is_printed_by_validate_only(tasker):
    flow = tasker.write(T(0, on_success=2, on_failure=1) + T(1) + T(2, arguments="@1_stdout@"))
    r = tasker.run(flow, "--validate-only")
    assert r.returncode == 0
    assert "warning: task 2 reads @1_stdout@, but task 1 may not have run" in r.stderr
