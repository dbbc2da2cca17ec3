"""The data-flow warning: reading @N_…@ where task N may not have run (issue 8)."""

from __future__ import annotations

import pytest
from support import EXAMPLES, compile_text, dedent

from tasker.check import dataflow
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


# ------------------------------------------------------------ exact wording, places and notes

HELP = "route the flow through that task first, or read the value only on the paths where it ran"
JUMP = T(0, on_success=2, on_failure=1) + T(1)     # task 1 can be jumped over
PAST_1 = "but task 1 may not have run: the flow can go task 0 -> task 2 without it; the reference then stays as written"
BRANCHES = "task=2\ntype=conditional\ncondition=true\nif_true_tasks=100,101\nif_false_tasks=102\nnext=never\n\n"


def shown(text: str, start=None) -> list[tuple]:
    """(message, (line, col, length), help, [(note line, col, note)]) of every warning."""
    out = []
    for w in warnings(text, start):
        assert w.help == HELP
        notes = [(s.line, s.col, note) for s, note in w.related]
        out.append((w.message, (w.span.line, w.span.col, w.span.length), notes))
    return out


@pytest.mark.parametrize(("text", "start", "expected"), [
    pytest.param(JUMP + T(2, arguments="x @1_stdout@ @1_stdout@"), None,
                 [(f"task 2 reads @1_stdout@, {PAST_1}", (17, 13, 10), [(8, 6, "task 1 is defined here")])],
                 id="read-twice-in-one-field-is-one-warning-at-the-first"),
    pytest.param(JUMP + T(2, command="echo @2_exit@", arguments="@1_stdout@ y"), None,
                 [(f"task 2 reads @1_stdout@, {PAST_1}", (18, 11, 10), [(8, 6, "task 1 is defined here")])],
                 id="own-result-is-not-checked"),
    pytest.param("G=@1_stdout@\n\n" + JUMP + T(2, arguments="@G@"), None,
                 [(f"task 2 reads @1_stdout@, {PAST_1}", (19, 11, 3), [(10, 6, "task 1 is defined here")])],
                 id="read-through-a-global-points-at-the-whole-value"),
    pytest.param("task=0\ntype=parallel\ntasks=100,101\nnext=never\n\n" + T(100) + T(101, arguments="@100_stdout@ y"),
                 None,
                 [("task 101 reads @100_stdout@ as a member of parallel block 0, but task 100 runs in the same "
                   "block: results are stored when the block ends", (15, 11, 12),
                   [(6, 6, "task 100 is defined here")])],
                 id="parallel-sibling"),
    pytest.param("task=0\ntype=decision\nsuccess=true\non_success=1\n\n" + T(1, arguments="@0_stdout@"), None,
                 [("task 1 reads @0_stdout@, but task 0 is a decision block and stores no result", (10, 11, 10),
                   [(1, 6, "task 0 is defined here")])],
                 id="decision"),
    pytest.param(T(0) + T(1, arguments="@0_stdout@"), 1,
                 [("task 1 reads @0_stdout@, but task 0 cannot have run yet: task 1 is where the workflow starts",
                   (10, 11, 10), [(1, 6, "task 0 is defined here")])],
                 id="the-start-task-reads-an-earlier-one"),
    pytest.param(JUMP + BRANCHES + T(100, arguments="@1_stdout@") + T(101, arguments="@1_exit@")
                 + T(102, arguments="@1_stderr@"), None,
                 [(f"task 100 reads @1_stdout@ in the TRUE branch of conditional block 2, {PAST_1}", (24, 11, 10),
                   [(8, 6, "task 1 is defined here")]),
                  (f"task 101 reads @1_exit@ in the TRUE branch of conditional block 2, {PAST_1}", (30, 11, 8),
                   [(8, 6, "task 1 is defined here")]),
                  (f"task 102 reads @1_stderr@ in the FALSE branch of conditional block 2, {PAST_1}", (36, 11, 10),
                   [(8, 6, "task 1 is defined here")])],
                 id="conditional-branches"),
    pytest.param(JUMP + "task=2\ntype=parallel\ntasks=100\nnext=never\n\n" + T(100, arguments="@1_stdout@"), None,
                 [(f"task 100 reads @1_stdout@ as a member of parallel block 2, {PAST_1}", (22, 11, 10),
                   [(8, 6, "task 1 is defined here")])],
                 id="parallel-member-reads-a-skipped-task"),
])
def test_warning_text_place_and_note(text, start, expected):
    assert shown(text, start) == expected


@pytest.mark.parametrize(("last", "route"), [
    (6, "task 0 -> task 2 -> task 3 -> task 4 -> task 5 -> task 6 without it"),
    (7, "task 0 -> task 2 -> task 3 -> task 4 -> task 5 -> task 6 -> ... without it"),
])
def test_a_long_route_is_cut_after_six_tasks(last, route):
    text = (T(0, on_success=2, on_failure=1) + T(1, on_success=last) + "".join(T(i) for i in range(2, last))
            + T(last, arguments="@1_stdout@"))
    [(message, _span, _notes)] = shown(text)
    assert message == f"task {last} reads @1_stdout@, but task 1 may not have run: the flow can go {route}; " \
                      "the reference then stays as written"


@pytest.mark.parametrize("text", [
    pytest.param(T(0) + "task=1\ntype=conditional\ncondition=true\nif_true_tasks=100\nif_false_tasks=100\n\n"
                 + T(2, arguments="@100_stdout@", next="never") + T(100), id="member-of-both-branches"),
    pytest.param(T(0) + "task=1\ntype=parallel\ntasks=100\n\n" + T(2, arguments="@100_stdout@", next="never")
                 + T(100), id="parallel-after-a-plain-task"),
    pytest.param(T(0) + "task=1\ntype=conditional\ncondition=true\nif_true_tasks=100,101\nif_false_tasks=102\n"
                 "next=never\n\ntask=100\ntype=decision\nsuccess=true\n\n" + T(101, arguments="@100_exit@") + T(102),
                 id="a-decision-run-as-a-branch-member-stores-its-record-for-later-members"),
    pytest.param(T(0) + "task=1\ntype=conditional\ncondition=true\nif_true_tasks=100,101\nif_false_tasks=102\n"
                 "next=never\n\n" + T(100) + T(101, arguments="@0_stdout@") + T(102),
                 id="later-branch-member-reads-a-task-before-the-block"),
])
def test_results_stored_on_every_path_give_no_warning(text):
    assert warnings(text) == []


def test_a_route_through_a_storing_task_does_not_hide_another_route():
    # task 3 is reached from task 1 (which stores the result) and from task 2 (which does not)
    text = T(0, on_success=1, on_failure=2) + T(1, on_success=3) + T(2) + T(3, arguments="@1_stdout@")
    assert [m for m, _s, _n in shown(text)] == [
        "task 3 reads @1_stdout@, but task 1 may not have run: the flow can go task 0 -> task 2 -> task 3 without "
        "it; the reference then stays as written"]


def test_every_reachable_task_is_checked():
    # 0 -> 4 or 1; 1 -> 3 or 2; 2 -> 3; 3 stops: task 3 is reached twice before task 4 is looked at
    text = (T(0, on_success=4, on_failure=1) + T(1, on_success=3, on_failure=2) + T(2) + T(3, next="never")
            + T(4, arguments="@1_stdout@"))
    assert [m for m, _s, _n in shown(text)] == [
        "task 4 reads @1_stdout@, but task 1 may not have run: the flow can go task 0 -> task 4 without it; "
        "the reference then stays as written"]


@pytest.mark.parametrize(("limit", "found"), [(1, 0), (2, 1)])
def test_the_search_gives_up_after_max_steps_tasks(monkeypatch, limit, found):
    """The path search visits task 2 then task 0: two steps."""
    monkeypatch.setattr(dataflow, "MAX_STEPS", limit)
    assert len(warnings(JUMP + T(2, arguments="@1_stdout@"))) == found


def test_an_earlier_branch_member_does_not_count_as_storing_another_task():
    # members 1 and 2 also run in the main flow; 0 -> 1 -> 2 -> 3 -> 5 skips task 4
    text = (T(0) + T(1) + T(2, arguments="@4_stdout@") + T(3, on_success=5, on_failure=4) + T(4)
            + "task=5\ntype=conditional\ncondition=true\nif_true_tasks=1,2\nif_false_tasks=1\nnext=never\n\n")
    assert [m for m, _s, _n in shown(text)] == [
        "task 2 reads @4_stdout@, but task 4 may not have run: the flow can go task 0 -> task 1 -> task 2 without "
        "it; the reference then stays as written",
        "task 2 reads @4_stdout@ in the TRUE branch of conditional block 5, but task 4 may not have run: the flow "
        "can go task 0 -> task 1 -> task 2 -> task 3 -> task 5 without it; the reference then stays as written"]


def test_a_read_in_a_hostnames_block_is_reported_at_the_blocks_own_field():
    # the block's generated per-host subtasks do the reading; the warning points at what the user wrote
    block = "task=2\ntype=parallel\nhostnames=a,b\ncommand=echo\narguments=@1_stdout@\nexec=local\nnext=never\n\n"
    assert shown(JUMP + block) == [(f"task 2 reads @1_stdout@, {PAST_1}", (17, 11, 10),
                                    [(8, 6, "task 1 is defined here")])]
