"""Lowering: golden IR listings, and the edges each routing rule compiles to (docs/flow.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import EXAMPLES, compile_text

from tasker.ir import instructions as ir
from tasker.ir.lower import LowerOptions, lower, task_graph
from tasker.ir.plan import listing
from tasker.syntax.ast import Keyword

GOLDEN = Path(__file__).parent / "golden"


def program(text: str, **kw) -> ir.Program:
    wf, diags = compile_text(text, validate=kw.pop("validate", True))
    assert not diags.has_errors(), [d.message for d in diags.errors]
    return lower(wf, LowerOptions(**kw))


def T(tid, **fields) -> str:
    lines = [f"task={tid}", "hostname=localhost", "command=echo", "exec=local"]
    return "\n".join(lines + [f"{k}={v}" for k, v in fields.items()]) + "\n"


def edges(prog: ir.Program, addr: str) -> dict[str, str]:
    return dict(prog[addr].succ)


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.txt")))
def test_golden_ir_listing(example):
    wf, _ = compile_text((EXAMPLES / example).read_text(), path=f"examples/{example}")
    text = listing(lower(wf)) + "\n"
    golden = GOLDEN / (example[:-4] + ".ir")
    if os.environ.get("TASKER_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), f"IR of {example} changed; TASKER_UPDATE_GOLDEN=1 rewrites {golden}"


@pytest.mark.parametrize("fields,true,false", [
    ({}, "1", ir.STOP_FAILURE),
    ({"on_success": 2}, "2", ir.STOP_CONDITION),
    ({"on_failure": 2}, "1", "2"),
    ({"on_success": 2, "on_failure": 3}, "2", "3"),
    ({"next": "exit_0"}, "1", ir.STOP_FAILURE),
])
def test_routing_edges(fields, true, false):
    prog = program(T(0, **fields) + T(1) + T(2) + T(3, next="never"))
    assert edges(prog, "0.route") == {"true": true, "false": false}


def test_next_never_and_always_are_unconditional():
    prog = program(T(0, next="never") + T(1, next="always") + T(2))
    assert edges(prog, "0.route") == {"true": ir.STOP_NEVER}
    assert edges(prog, "1.route") == {"true": "2"}


def test_fire_and_forget_turns_stop_failure_into_next():
    prog = program(T(0) + T(1), fire_and_forget=True)
    assert edges(prog, "0.route")["false"] == "1"


def test_next_id_that_does_not_exist_goes_to_end():
    prog = program(T(0) + T(5), validate=False)
    assert edges(prog, "0.route")["true"] == ir.END


def test_condition_gate_skip_continues_at_next_id():
    prog = program(T(0, condition="exit_0", on_success=2) + T(1) + T(2))
    assert prog["0"].kind == ir.BRANCH and edges(prog, "0") == {"true": "0.exec", "false": "0.skip"}
    assert edges(prog, "0.skip") == {"next": "1"}


def test_loop_edges():
    prog = program(T(0, next="loop", loop=3, loop_break="stdout~x") + T(1))
    assert prog["0"].kind == ir.LOOP and prog["0"].op.phase == "enter"
    assert edges(prog, "0.loop.next") == {"again": "0.exec", "done": "1"}


def test_return_with_command_comes_after_sleep():
    prog = program(T(0, sleep=1, **{"return": 4}))
    assert [i.kind for i in prog.instrs.values()][:3] == [ir.EXEC, ir.SLEEP, ir.RETURN]


def test_gated_return_only_task_is_gate_return_and_skip():
    text = T(0) + "\ntask=1\nreturn=3\ncondition=@0_exit@=0\n\n" + T(2)
    wf, diags = compile_text(text)
    assert not diags.has_errors(), [d.message for d in diags.errors]
    prog = lower(wf)
    gate = ir.Branch(wf.tasks[1].condition, "pre", label="condition")
    assert gate.test is not None
    assert [prog[a] for a in ("1", "1.return", "1.skip")] == [
        ir.Instr("1", ir.BRANCH, 1, gate, (("true", "1.return"), ("false", "1.skip"))),
        ir.Instr("1.return", ir.RETURN, 1, ir.Return(1, "3"), ()),
        ir.Instr("1.skip", ir.SKIP, 1, ir.Skip(1), (("next", "2"),)),
    ]
    assert prog.entries[1] == "1"
    assert [a for a in prog.instrs if a.startswith("1")] == ["1", "1.return", "1.skip"]


def test_return_only_task_is_one_return_instruction():
    prog = program(T(0) + "\ntask=1\nreturn=3\n\n" + T(2))
    assert prog["1"] == ir.Instr("1", ir.RETURN, 1, ir.Return(1, "3"), ())
    assert prog.entries[1] == "1"
    assert [a for a in prog.instrs if a.startswith("1")] == ["1"]


def test_decision_fallbacks():
    prog = program("task=0\ntype=decision\nsuccess=true\non_success=2\n\n" + T(1) + T(2))
    assert edges(prog, "0") == {"true": "2", "false": "1"}
    prog = program("task=0\ntype=decision\nsuccess=true\nnext=never\n\n" + T(1))
    assert edges(prog, "0") == {"true": ir.STOP_NEVER, "false": ir.STOP_NEVER}


@pytest.mark.parametrize(("routing", "true", "false"), [
    ("next=2", "2", "2"),
    ("next=2\non_success=3", "3", "2"),
    ("next=2\non_failure=3", "2", "3"),
    ("next=always", "1", "1"),
])
def test_a_decisions_numeric_next_is_its_fallback_when_validation_is_skipped(routing, true, false):
    prog = program(f"task=0\ntype=decision\nsuccess=true\n{routing}\n\n" + T(1) + T(2) + T(3), validate=False)
    assert edges(prog, "0") == {"true": true, "false": false}


@pytest.mark.parametrize(("fields", "done"), [({}, "1"), ({"on_success": 2}, "2")])
def test_a_finished_loop_continues_at_on_success_else_the_next_id(fields, done):
    prog = program(T(0, next="loop", loop=3, **fields) + T(1) + T(2), validate=False)
    assert edges(prog, "0.loop.next") == {"again": "0.exec", "done": done}


@pytest.mark.parametrize("fields", [{"loop": 3}, {"next": "loop"}])
def test_only_next_loop_with_loop_count_makes_a_loop(fields):
    prog = program(T(0, **fields) + T(1), validate=False)
    assert [i.kind for i in prog.instrs.values() if i.task == 0] == [ir.EXEC, ir.BRANCH]


def test_every_edge_leads_to_an_instruction():
    for example in EXAMPLES.glob("*.txt"):
        wf, _ = compile_text(example.read_text())
        prog = lower(wf)
        for instr in prog.instrs.values():
            for _name, target in instr.succ:
                assert target in prog.instrs, (instr.addr, target)


# ------------------------------------------------------------ the task graph and conditional selectors

def graph_of(text: str) -> dict[int, list[int]]:
    wf, diags = compile_text(text)
    assert not diags.has_errors(), [d.message for d in diags.errors]
    return task_graph(wf)


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param(T(0, on_success=2, on_failure=1) + "\n" + T(1) + "\n" + T(2), {0: [2, 1], 1: [2], 2: []},
                 id="plain-routing"),
    pytest.param(T(0, condition="false", on_success=3, on_failure=2) + "\n" + T(1) + "\n" + T(2) + "\n" + T(3),
                 {0: [1, 3, 2], 1: [2], 2: [3], 3: []}, id="condition-skip-goes-to-the-next-id"),
    pytest.param(T(0, loop=2, next="loop") + "\n" + T(1), {0: [1], 1: []}, id="loop-continues-after"),
    pytest.param(T(0, condition="true", **{"return": 3}) + "\n" + T(1), {0: [1], 1: []},
                 id="return-with-command-ends-unless-skipped"),
    pytest.param(T(0, **{"return": 3}) + "\n" + T(1), {0: [], 1: []}, id="return-with-command-ends"),
    pytest.param(T(0) + "\ntask=1\nreturn=1\n\n" + T(2), {0: [1], 1: [], 2: []}, id="return-block-ends"),
    pytest.param("task=0\ntype=parallel\ntasks=100\ncondition=true\non_success=2\n\n" + T(1) + "\n" + T(2)
                 + "\n" + T(100), {0: [2], 1: [2], 2: [], 100: []}, id="parallel-block-routing"),
    pytest.param("task=0\ntype=conditional\ncondition=true\nif_true_tasks=100\nif_false_tasks=100\non_failure=2\n\n"
                 + T(1) + "\n" + T(2) + "\n" + T(100), {0: [1, 2], 1: [2], 2: [], 100: []},
                 id="conditional-block-routing"),
    pytest.param("task=0\ntype=decision\nsuccess=true\non_success=2\non_failure=1\n\n" + T(1, next="never") + "\n"
                 + T(2), {0: [2, 1], 1: [], 2: []}, id="decision"),
    pytest.param("task=0\ntype=decision\nsuccess=true\non_success=2\n\n" + T(1, next="never") + "\n" + T(2),
                 {0: [2, 1], 1: [], 2: []}, id="decision-falls-back-to-the-next-id"),
])
def test_task_graph_follows_each_kind_of_task(text, expected):
    assert graph_of(text) == expected


@pytest.mark.parametrize(("branches", "true", "false"), [
    ("if_true_tasks=100", "1.true", ir.STOP_FAILURE),
    ("if_false_tasks=100", ir.STOP_FAILURE, "1.false"),
])
def test_an_empty_conditional_branch_stops_with_failure(branches, true, false):
    """Only possible with validation skipped: the branch with no members fails the run."""
    prog = program(T(0) + f"\ntask=1\ntype=conditional\ncondition=true\n{branches}\n\n" + T(100), validate=False)
    assert edges(prog, "1") == {"true": true, "false": false}


def test_a_conditional_block_without_condition_takes_the_false_branch():
    prog = program(T(0) + "\ntask=1\ntype=conditional\nif_true_tasks=100\nif_false_tasks=101\n\n" + T(100) + "\n"
                   + T(101), validate=False)
    assert prog["1"].op.test == Keyword("false")
