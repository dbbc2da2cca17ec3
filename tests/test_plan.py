"""Plan renderings: golden DOT and Mermaid files, escaping, and the --show-plan formats end to end."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from support import EXAMPLES, compile_text

from tasker.ir import instructions as ir
from tasker.ir import plan
from tasker.ir.lower import lower

GOLDEN = Path(__file__).parent / "golden"
ALL_KINDS = {ir.EXEC, ir.SKIP, ir.BRANCH, ir.LOOP, ir.FORK, ir.JOIN, ir.SLEEP, ir.RETURN, ir.STOP}
EVERY_KIND = EXAMPLES / "every_kind.txt"
DOT = shutil.which("dot")
needs_dot = pytest.mark.skipif(DOT is None, reason="Graphviz `dot` is not installed (apt-get install graphviz)")

# Text with every character the two formats treat specially (validation off: it is not run).
NASTY = r"""
task=0
hostname=localhost
command=echo
arguments=say "hi" \N a\nb <x> a|b {c} & #quot; 50% `tick` C:\\temp
exec=local
success=exit_0&stdout~"a|b"
"""


def example_program(path: Path) -> ir.Program:
    wf, diags = compile_text(path.read_text(), path=f"examples/{path.name}")
    assert not diags.has_errors()
    return lower(wf)


def nasty_program() -> ir.Program:
    wf, diags = compile_text(NASTY, validate=False, security=False)
    assert not diags.has_errors(), [d.message for d in diags.errors]
    return lower(wf)


def check_golden(text: str, golden: Path) -> None:
    if os.environ.get("TASKER_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), f"{golden.name} changed; TASKER_UPDATE_GOLDEN=1 rewrites {golden}"


# ---------------------------------------------------------------- golden files


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.txt")))
@pytest.mark.parametrize("fmt,suffix", [("dot", ".dot"), ("mermaid", ".mmd")])
def test_golden_picture(example, fmt, suffix):
    text = plan.render(example_program(EXAMPLES / example), fmt) + "\n"
    check_golden(text, GOLDEN / (example[:-4] + suffix))


def test_every_kind_example_uses_every_instruction_kind():
    prog = example_program(EVERY_KIND)
    assert {i.kind for i in prog.instrs.values()} == ALL_KINDS


def test_every_kind_example_validates_cleanly(tasker):
    r = tasker.run(EVERY_KIND, "--validate-only")
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr and "error" not in r.stderr


# ---------------------------------------------------------------- escaping


def test_dot_string_escapes_quotes_backslashes_record_characters_and_newlines():
    assert plan.dot_string('a"b\\c<d>e|f{g}h\ni') == r'"a\"b\\c\<d\>e\|f\{g\}h\ni"'
    assert plan.dot_string("\\N\\n") == r'"\\N\\n"'   # DOT escapes written literally stay literal
    assert plan.dot_string("x\r\ny\rz") == r'"x\ny\nz"'


def test_mermaid_text_uses_entity_codes_and_br():
    assert plan.mermaid_text('say "hi" <b> & #1; `x` 50%\nnext') == \
        '"say #quot;hi#quot; #lt;b#gt; #amp; #35;1; #96;x#96; 50#37;<br>next"'
    assert plan.mermaid_text("a|b {c} [d] (e)") == '"a|b {c} [d] (e)"'


def test_labels_wrap_long_parts_at_spaces():
    lines = plan.label_lines(nasty_program()["0"])
    assert lines[0] == "0  exec"
    assert all(len(line) <= plan.WRAP for line in lines[1:] if " " in line)
    assert " ".join(lines[1:]) == " ".join(plan.describe_parts(nasty_program()["0"]))


# ---------------------------------------------------------------- DOT structure

_DOT_NODE = re.compile(r'^\s*"((?:[^"\\]|\\.)*)" \[label=')
_DOT_EDGE = re.compile(r'^\s*"((?:[^"\\]|\\.)*)" -> "((?:[^"\\]|\\.)*)"(?: \[label="(\w+)")?')


def test_dot_has_a_node_per_instruction_and_an_edge_per_successor():
    prog = example_program(EVERY_KIND)
    text = plan.to_dot(prog)
    nodes = [m.group(1) for m in map(_DOT_NODE.match, text.splitlines()) if m]
    edges = [m.groups() for m in map(_DOT_EDGE.match, text.splitlines()) if m]
    members = plan.Members(prog)
    generated = [node for nodes in members.nodes.values() for node, _ in nodes]
    assert sorted(nodes) == sorted([*prog.instrs, "plan.start", *generated])
    expected = {(i.addr, target, outcome) for i in prog.instrs.values() for outcome, target in i.succ}
    expected |= {(a, b, label or None) for a, b, label in members.edges}
    assert set(edges) == expected | {("plan.start", prog.start, None)}
    assert len(edges) == len(expected) + 1


def test_dot_groups_each_task_in_a_cluster_and_leaves_terminals_outside():
    prog = example_program(EVERY_KIND)
    text = plan.to_dot(prog)
    tasks = sorted({i.task for i in prog.instrs.values() if i.task is not None})
    assert re.findall(r'subgraph "cluster_task_(\d+)"', text) == [str(t) for t in tasks]
    clusters = re.findall(r'subgraph "cluster_task_(\d+)" \{(.*?)\n  \}', text, re.S)
    for task, body in clusters:
        inside = {m.group(1) for m in map(_DOT_NODE.match, body.splitlines()) if m}
        generated = {node for node, _ in plan.Members(prog).nodes.get(int(task), ())}
        assert inside == {i.addr for i in prog.instrs.values() if i.task == int(task)} | generated
    assert not any('"stop.failure" [' in body for _t, body in clusters)


@pytest.mark.parametrize("kind,shape", [(ir.BRANCH, "diamond"), (ir.STOP, "doubleoctagon"),
                                        (ir.LOOP, "hexagon"), (ir.SLEEP, "ellipse")])
def test_dot_shape_per_kind(kind, shape):
    prog = example_program(EVERY_KIND)
    text = plan.to_dot(prog)
    for instr in prog.instrs.values():
        if instr.kind == kind:
            line = next(x for x in text.splitlines() if x.strip().startswith(f'"{instr.addr}" [label='))
            assert f"shape={shape}" in line


def test_dot_fork_and_join_are_dark_bars_and_return_is_a_double_box():
    text = plan.to_dot(example_program(EVERY_KIND))
    for addr in ("3", "3.join"):
        line = next(x for x in text.splitlines() if x.strip().startswith(f'"{addr}" [label='))
        assert 'fillcolor="#37474f"' in line and "height=0.25" in line
    line = next(x for x in text.splitlines() if x.strip().startswith('"9" [label='))
    assert "peripheries=2" in line


def test_dot_marks_the_start():
    prog = example_program(EVERY_KIND)
    text = plan.to_dot(prog)
    assert f'"plan.start" -> "{prog.start}";' in text
    start_line = next(x for x in text.splitlines() if x.strip().startswith(f'"{prog.start}" [label='))
    assert "penwidth" in start_line
    assert sum("penwidth" in x for x in text.splitlines()) == 1


def _svg_node_texts(svg: bytes) -> dict[str, list[str]]:
    """node name -> the lines of its label, read back from Graphviz's SVG."""
    ns = {"s": "http://www.w3.org/2000/svg"}
    out = {}
    for g in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}g"):
        if g.get("class") == "node":
            # Graphviz keeps runs of spaces as space + no-break space
            out[g.find("s:title", ns).text] = [(t.text or "").replace("\xa0", " ") for t in g.findall("s:text", ns)]
    return out


@needs_dot
def test_graphviz_shows_labels_exactly_as_the_listing_writes_them():
    prog = nasty_program()
    texts = _svg_node_texts(plan.svg(prog, dict(os.environ)))
    for addr, instr in prog.instrs.items():
        assert [t.strip() for t in texts[addr]] == [x.strip() for x in plan.label_lines(instr)], addr
    assert r'say "hi" \N a\nb <x> a|b {c} & #quot; 50% `tick` C:\\temp' in " ".join(texts["0"])


@needs_dot
@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.txt")))
def test_show_plan_dot_output_is_accepted_by_graphviz(tasker, example):
    out = tasker.tmp / "plan.dot"
    r = tasker.run(EXAMPLES / example, "--show-plan", "--plan-format=dot", "--plan-output", out, input="n\n")
    assert r.returncode == 0, r.stderr
    # on stdout, the plan comes before the prompt; --log-level=WARN keeps log lines out of it
    r = tasker.run(EXAMPLES / example, "--show-plan", "--plan-format=dot", "--log-level=WARN", input="n\n")
    on_stdout = r.stdout.split("Proceed with execution?")[0]
    assert on_stdout == out.read_text()
    done = subprocess.run([DOT, "-Tsvg", str(out)], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert b"<svg" in done.stdout and not done.stderr


# ---------------------------------------------------------------- Mermaid structure

_MM_NODE = re.compile(r'^\s*(\w+)(\(\(|\(\[|\[\[|\{\{|\[|\{|\(|>)(".*")(\)\)|\]\)|\]\]|\}\}|\]|\}|\))$')
_MM_EDGE = re.compile(r'^\s*(\w+) (-->|-\.->)(?:\|"(\w+)"\|)? (\w+)$')


def _mermaid_decode(label: str) -> list[str]:
    assert label.startswith('"') and label.endswith('"') and '"' not in label[1:-1]
    assert not re.search(r"<(?!br>)", label[1:-1]) and ">" not in label[1:-1].replace("<br>", "")
    body = re.sub(r"#(\w+);", lambda m: html.unescape(f"&#{m[1]};" if m[1].isdigit() else f"&{m[1]};"), label[1:-1])
    return body.split("<br>")


def _mermaid_parts(text: str):
    nodes, edges = {}, []
    for line in text.splitlines():
        if m := _MM_NODE.match(line):
            nodes[m[1]] = (m[2], _mermaid_decode(m[3]))
        elif m := _MM_EDGE.match(line):
            edges.append((m[1], m[2], m[3], m[4]))
    return nodes, edges


def test_mermaid_has_a_node_per_instruction_with_its_label():
    prog = nasty_program()
    text = plan.to_mermaid(prog)
    nodes, _ = _mermaid_parts(text)
    ids = plan._mermaid_ids(prog)
    assert set(nodes) == set(ids.values()) | {"start"}
    for addr, instr in prog.instrs.items():
        assert nodes[ids[addr]][1] == plan.label_lines(instr)


def test_mermaid_edges_carry_their_outcome():
    prog = example_program(EVERY_KIND)
    ids = plan._mermaid_ids(prog)
    _, edges = _mermaid_parts(plan.to_mermaid(prog))
    members = plan.Members(prog)
    ids = plan._mermaid_ids(prog, [node for nodes in members.nodes.values() for node, _ in nodes])
    expected = {(ids[i.addr], outcome, ids[t]) for i in prog.instrs.values() for outcome, t in i.succ}
    expected |= {(ids[a], label or None, ids[b]) for a, b, label in members.edges}
    assert {(a, o, b) for a, _arrow, o, b in edges if a != "start"} == expected
    assert ("start", "-->", None, ids[prog.start]) in edges
    assert all(arrow == "-.->" for _a, arrow, o, _b in edges if o == "false")


def test_mermaid_ids_are_safe_and_subgraphs_balanced():
    prog = example_program(EVERY_KIND)
    text = plan.to_mermaid(prog)
    ids = plan._mermaid_ids(prog)
    assert all(re.fullmatch(r"n_[A-Za-z0-9_]+", i) for i in ids.values())
    assert len(set(ids.values())) == len(ids) and ids["end"] != "end"
    opened = [x for x in text.splitlines() if x.strip().startswith("subgraph ")]
    closed = [x for x in text.splitlines() if x.strip() == "end"]
    tasks = {i.task for i in prog.instrs.values() if i.task is not None}
    assert len(opened) == len(closed) == len(tasks)


def test_mermaid_shapes_per_kind():
    prog = example_program(EVERY_KIND)
    ids = plan._mermaid_ids(prog)
    nodes, _ = _mermaid_parts(plan.to_mermaid(prog))
    shape = {instr.kind: nodes[ids[addr]][0] for addr, instr in prog.instrs.items()}
    assert shape[ir.BRANCH] == "{" and shape[ir.LOOP] == "{{" and shape[ir.SKIP] == ">"
    assert shape[ir.FORK] == shape[ir.JOIN] == "[["
    assert shape[ir.STOP] == shape[ir.RETURN] == "(["
    assert nodes["start"][0] == "(("


def test_mermaid_ids_stay_unique_when_addresses_collide():
    instrs = {a: ir.Instr(a, ir.STOP, None, ir.Stop("end"), ()) for a in ("1.a", "1_a", "end")}
    ids = plan._mermaid_ids(ir.Program(instrs, {}, "end"))
    assert len(set(ids.values())) == 3


# ---------------------------------------------------------------- --show-plan on the command line


def test_show_plan_prints_dot_then_asks(tasker):
    r = tasker.run(EVERY_KIND, "--show-plan", "--plan-format=dot", input="")
    assert r.returncode == 0
    assert "digraph plan {" in r.stdout and "Proceed with execution? [y/N]" in r.stdout
    assert r.stdout.index("digraph plan {") < r.stdout.index("Proceed with execution?")


def test_show_plan_prints_mermaid(tasker):
    r = tasker.run(EVERY_KIND, "--show-plan", "--plan-format=MERMAID", input="")
    assert r.returncode == 0 and "flowchart TD" in r.stdout and "Proceed with execution?" in r.stdout


@pytest.mark.parametrize("fmt,head", [("text", "> 0 "), ("dot", "// tasker plan"), ("mermaid", "%% tasker plan")])
def test_plan_output_writes_the_text_to_the_file(tasker, fmt, head):
    out = tasker.tmp / f"plan.{fmt}"
    r = tasker.run(EVERY_KIND, "--show-plan", f"--plan-format={fmt}", "--plan-output", out, input="n\n")
    assert r.returncode == 0, r.stderr
    assert f"plan written to {out}" in r.stdout and "Proceed with execution?" in r.stdout
    assert out.read_text() == plan.render(example_program(EVERY_KIND), fmt) + "\n"
    assert out.read_text().startswith(head)


@needs_dot
def test_svg_format_writes_a_picture(tasker):
    out = tasker.tmp / "plan.svg"
    r = tasker.run(EVERY_KIND, "--show-plan", "--plan-format=svg", "--plan-output", out, input="n\n")
    assert r.returncode == 0, r.stderr
    root = ET.fromstring(out.read_bytes())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert set(_svg_node_texts(out.read_bytes())) == {*example_program(EVERY_KIND).instrs, "plan.start"}


def test_svg_format_without_graphviz_says_how_to_get_a_picture(tasker):
    empty = tasker.tmp / "empty-bin"
    empty.mkdir()
    out = tasker.tmp / "plan.svg"
    r = tasker.run(EVERY_KIND, "--show-plan", "--plan-format=svg", "--plan-output", out, input="y\n",
                   env={"PATH": str(empty)})
    assert r.returncode == 2
    assert "apt-get install graphviz" in r.stderr and "--plan-format=dot" in r.stderr
    assert not out.exists() and "Proceed with execution?" not in r.stdout


def test_svg_format_needs_an_output_file(tasker):
    r = tasker.run(EVERY_KIND, "--show-plan", "--plan-format=svg", input="y\n")
    assert r.returncode == 2 and "--plan-output FILE" in r.stderr


def test_unwritable_plan_output_exits_1(tasker):
    out = tasker.tmp / "no-such-dir" / "plan.dot"
    r = tasker.run(EVERY_KIND, "--show-plan", "--plan-format=dot", "--plan-output", out, input="y\n")
    assert r.returncode == 1 and "cannot write the plan" in r.stderr


def test_plan_format_without_show_plan_warns(tasker):
    r = tasker.run(EVERY_KIND, "--plan-format=dot", "--validate-only")
    assert r.returncode == 0 and "--show-plan" in r.stdout and "digraph" not in r.stdout


def test_readme_shows_the_current_plan_of_hello():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Seeing the plan", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w*)\n(.*?)```", section, re.S)
    prog = example_program(EXAMPLES / "hello.txt")
    assert ("", plan.listing(prog) + "\n") in blocks
    assert ("mermaid", plan.to_mermaid(prog) + "\n") in blocks


# ---------------------------------------------------------------- block members in the pictures

BLOCKS = EXAMPLES / "blocks.txt"


def test_members_of_a_tasks_block_hang_between_its_fork_and_join():
    prog = example_program(BLOCKS)
    edges = set(plan.Members(prog).edges)
    assert {("1", "100", "member"), ("1", "101", "member"), ("100", "1.join", ""), ("101", "1.join", "")} <= edges


def test_conditional_branch_members_are_chained_in_their_order():
    prog = example_program(BLOCKS)
    edges = set(plan.Members(prog).edges)
    assert {("2.true", "200", "member"), ("200", "201", "then"), ("201", "2.join", "then")} <= edges
    assert {("2.false", "202", "member"), ("202", "2.join", "then")} <= edges


def test_hostnames_members_are_drawn_in_the_block_with_their_hosts():
    prog = example_program(BLOCKS)
    members = plan.Members(prog)
    assert members.nodes[0] == [("0.m100000", "100000 [web1]"), ("0.m100001", "100001 [web2]"),
                                ("0.m100002", "100002 [web3]")]
    text = plan.to_dot(prog)
    body = re.search(r'subgraph "cluster_task_0" \{(.*?)\n  \}', text, re.S).group(1)
    assert '"0.m100001" [label="100001 [web2]"' in body
    assert '"0" -> "0.m100001" [label="member"' in text and '"0.m100001" -> "0.join"' in text


def test_a_thousand_host_block_draws_a_few_members_and_sums_up_the_rest(tmp_path):
    hosts = ",".join(f"h{i}" for i in range(1000))
    wf, diags = compile_text(f"task=0\ntype=parallel\nhostnames={hosts}\ncommand=true\nexec=local\n")
    assert not diags.has_errors()
    prog = lower(wf)
    nodes = plan.Members(prog).nodes[0]
    assert len(nodes) == plan.MEMBERS_SHOWN
    assert nodes[-1] == ("0.more", "... 993 more members\n100007-100999")
    assert plan.to_dot(prog).count("more members") == 1


def test_stops_that_end_well_look_different_from_failures():
    prog = example_program(BLOCKS)
    text = plan.to_dot(prog)
    never = re.search(r'^\s*"stop.never" \[.*$', text, re.M).group(0)
    failure = re.search(r'^\s*"stop.condition" \[.*$', text, re.M).group(0)
    assert "#e8f5e9" in never and "#2e7d32" in never
    assert "#ffebee" in failure and "#c62828" in failure
    mermaid = plan.to_mermaid(prog)
    assert re.search(r"class [^\n]*n_stop_never[^\n]* stopok", mermaid)
    assert re.search(r"class [^\n]*n_stop_condition[^\n]* stop$", mermaid, re.M)
