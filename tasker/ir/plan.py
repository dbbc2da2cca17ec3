"""Renderings of an ``ir.Program``: a text listing like ``dis``, Graphviz DOT, Mermaid.

All three read the same graph: one node per instruction, one edge per
successor, labelled with its outcome (next, true, false, body, again, done,
join).  ``describe`` gives the one-line operand text every view uses.
"""

from __future__ import annotations

from itertools import pairwise

from tasker.exitcodes import Exit, TaskerExit
from tasker.ir import instructions as ir
from tasker.syntax.ast import Template
from tasker.syntax.condition import show, show_template


def _t(template: Template | None) -> str:
    return "" if template is None else show_template(template)


def command_text(cmd: ir.Command) -> str:
    """``[exec] command arguments`` of a command, placeholders shown as written."""
    exec_name = _t(cmd.exec) or "default"
    args = _t(cmd.arguments)
    text = f"[{exec_name}] {_t(cmd.command)}" + (f" {args}" if args else "")
    host = _t(cmd.hostname)
    if host and exec_name not in ("local", "default"):
        text += f" @ {host}"
    return text


def _command_extras(cmd: ir.Command) -> str:
    extras = []
    if cmd.success is not None:
        extras.append(f"success={show(cmd.success)}")
    if cmd.failure is not None:
        extras.append(f"failure={show(cmd.failure)}")
    if cmd.timeout is not None:
        extras.append(f"timeout={_t(cmd.timeout)}")
    for name in ("stdout_split", "stderr_split"):
        spec = getattr(cmd, name)
        if spec is not None:
            extras.append(f"{name}={spec.delimiter},{spec.index}")
    return " ".join(extras)


def describe(instr: ir.Instr) -> str:
    """The operand text of one instruction."""
    return "  ".join(describe_parts(instr))


def describe_parts(instr: ir.Instr) -> list[str]:
    """The operand text of one instruction in parts: the listing joins them, pictures stack them."""
    op = instr.op
    kind = instr.kind
    if kind == ir.EXEC:
        extras = _command_extras(op.command)
        return [command_text(op.command)] + ([extras] if extras else [])
    if kind == ir.SKIP:
        return [f"record task {op.task} as skipped"]
    if kind == ir.BRANCH:
        test = "success" if op.test == "success" else show(op.test)
        text = f"{'not ' if op.negate else ''}{test}"
        where = {"pre": "before running", "task": "on the task's result", "block": "on the block's members"}
        return [f"{op.label}: {text}", f"({where.get(op.context, op.context)})"]
    if kind == ir.LOOP:
        if op.phase == "enter":
            return [f"enter loop of {op.count} runs"]
        extras = []
        if op.until is not None:
            extras.append(f"until {show(op.until)}")
        if op.while_ is not None:
            extras.append(f"while {show(op.while_)}")
        return ["next iteration" + (f" ({', '.join(extras)})" if extras else "")]
    if kind == ir.FORK:
        members = ", ".join(str(m.task) for m in op.members)
        how = "one after another" if op.sequential else f"max_parallel={op.max_parallel}"
        retry = ""
        if op.retry is not None:
            retry = f" retry={_value(op.retry.count)}x delay={_value(op.retry.delay)}s"
        branch = f"{op.branch} branch " if op.branch else ""
        return [f"{branch}[{members}] {how}{retry}"]
    if kind == ir.JOIN:
        return [f"collect the results of block {op.block}"]
    if kind == ir.SLEEP:
        return [f"{_value(op.seconds)} s"]
    if kind == ir.RETURN:
        return [f"exit {op.value}"]
    if kind == ir.STOP:
        return [op.message or op.reason]
    return []


def _value(value) -> str:
    return show_template(value) if isinstance(value, Template) else str(value)


def listing(program: ir.Program) -> str:
    """The text listing: one instruction a line, ``addr kind operands -> successors``."""
    rows = []
    width = max((len(a) for a in program.instrs), default=4)
    for addr, instr in program.instrs.items():
        edges = "  ".join(f"{name}: {target}" for name, target in instr.succ)
        arrow = f"  -> {edges}" if edges else ""
        marker = ">" if addr == program.start else " "
        rows.append(f"{marker} {addr:<{width}}  {instr.kind:<6}  {describe(instr)}{arrow}")
    return "\n".join(rows)


# ---------------------------------------------------------------- pictures
#
# DOT and Mermaid draw the same graph as the listing: a node per instruction
# (its address and kind, then the ``describe_parts`` stacked), an edge per
# successor labelled with its outcome, a box around each task's instructions,
# and a start marker pointing at the program's entry.

WRAP = 44   # characters per label line before a part wraps at a space

# kind -> DOT node attributes: a shape per kind, so a picture reads at a glance
_DOT_NODE = {
    ir.EXEC: 'shape=box, style="rounded,filled", fillcolor="#e8f0fe"',
    ir.SKIP: 'shape=box, style="rounded,dashed"',
    ir.BRANCH: 'shape=diamond, style=filled, fillcolor="#fff8e1", margin=0',
    ir.LOOP: 'shape=hexagon, style=filled, fillcolor="#f3e5f5"',
    ir.FORK: 'shape=box, style=filled, fillcolor="#37474f", fontcolor=white, height=0.25',
    ir.JOIN: 'shape=box, style=filled, fillcolor="#37474f", fontcolor=white, height=0.25',
    ir.SLEEP: 'shape=ellipse, style=dashed',
    ir.RETURN: 'shape=box, style="rounded,filled,bold", fillcolor="#e0e0e0", peripheries=2',
    ir.STOP: 'shape=doubleoctagon, style=filled, fillcolor="#ffebee", color="#c62828"',
}
# A stop that ends the workflow well (end of the flow, next=never) is green, the others red.
_DOT_STOP_OK = 'shape=doubleoctagon, style=filled, fillcolor="#e8f5e9", color="#2e7d32"'
_DOT_MEMBER = 'shape=box, style="rounded,dotted", fontsize=9'
_DOT_MEMBER_EDGE = 'style=dotted, color="#546e7a", fontcolor="#546e7a", arrowhead=empty'
MEMBERS_SHOWN = 8   # generated members drawn one by one; more are summed up in one node
_DOT_EDGE = {
    "true": 'color="#2e7d32", fontcolor="#2e7d32"',
    "false": 'color="#c62828", fontcolor="#c62828", style=dashed',
    "again": "style=dashed",
}

# kind -> Mermaid node shape (open, close) and class
_MERMAID_NODE = {
    ir.EXEC: ("[", "]", "exec"),
    ir.SKIP: (">", "]", "skip"),
    ir.BRANCH: ("{", "}", "branch"),
    ir.LOOP: ("{{", "}}", "loop"),
    ir.FORK: ("[[", "]]", "bar"),
    ir.JOIN: ("[[", "]]", "bar"),
    ir.SLEEP: ("(", ")", "sleep"),
    ir.RETURN: ("([", "])", "final"),
    ir.STOP: ("([", "])", "stop"),
}
_MERMAID_CLASSES = (
    ("exec", "fill:#e8f0fe,stroke:#3367d6"),
    ("skip", "fill:#ffffff,stroke:#777777,stroke-dasharray:4 3"),
    ("branch", "fill:#fff8e1,stroke:#f9a825"),
    ("loop", "fill:#f3e5f5,stroke:#8e24aa"),
    ("bar", "fill:#37474f,stroke:#37474f,color:#ffffff"),
    ("sleep", "fill:#ffffff,stroke:#777777"),
    ("final", "fill:#e0e0e0,stroke:#212121,stroke-width:3px"),
    ("stop", "fill:#ffebee,stroke:#c62828,stroke-width:3px"),
    ("stopok", "fill:#e8f5e9,stroke:#2e7d32,stroke-width:3px"),
    ("member", "fill:#ffffff,stroke:#546e7a,stroke-dasharray:2 2"),
    ("start", "fill:#212121,stroke:#212121,color:#ffffff"),
)


def _wrap(text: str, width: int = WRAP) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken at spaces (long words stay whole)."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return lines


def label_lines(instr: ir.Instr) -> list[str]:
    """A node's text: ``address  kind``, then the operand parts, wrapped."""
    lines = [f"{instr.addr}  {instr.kind}"]
    for part in describe_parts(instr):
        for piece in part.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            lines.extend(_wrap(piece))
    return lines


def ends_well(instr: ir.Instr) -> bool:
    """A stop that ends the workflow successfully: the flow ran out of tasks, or next=never."""
    return instr.kind == ir.STOP and instr.addr in (ir.END, ir.STOP_NEVER)


def _member_label(member: ir.Member) -> str:
    """``100000 [web1]``: a generated member's id and host."""
    host = _t(member.command.hostname) if member.command is not None else ""
    return f"{member.task} [{host}]" if host else str(member.task)


class Members:
    """How each block's members hang between its fork and its join, for the pictures.

    A member that is a task of the file is drawn where that task already is and
    attached by dotted edges; a generated member of a ``hostnames=`` block gets a
    node of its own inside the block's box, labelled with its host.  A
    conditional branch runs its members one after another, so they are chained;
    a parallel block's fan out.  Past ``MEMBERS_SHOWN`` generated members the
    rest are summed up in one node, so a 1,000-host block stays readable.
    """

    def __init__(self, program: ir.Program) -> None:
        self.program = program
        self.nodes: dict[int, list[tuple[str, str]]] = {}   # block task -> [(node id, label)]
        self.edges: list[tuple[str, str, str]] = []           # (source, target, label)
        for instr in program.instrs.values():
            if instr.kind == ir.FORK:
                self._fork(instr)

    def _fork(self, fork: ir.Instr) -> None:
        join = dict(fork.succ).get("join")
        nodes = self._member_nodes(fork)
        if fork.op.sequential:
            chain = [fork.addr, *nodes] + ([join] if join else [])
            for i, (a, b) in enumerate(pairwise(chain)):
                self.edges.append((a, b, "member" if i == 0 else "then"))
            return
        for node in nodes:
            self.edges.append((fork.addr, node, "member"))
            if join is not None:
                self.edges.append((node, join, ""))

    def _member_nodes(self, fork: ir.Instr) -> list[str]:
        nodes = [str(m.task) for m in fork.op.members if str(m.task) in self.program.instrs]
        generated = [m for m in fork.op.members if str(m.task) not in self.program.instrs]
        shown = generated if len(generated) <= MEMBERS_SHOWN else generated[:MEMBERS_SHOWN - 1]
        own = self.nodes.setdefault(fork.task, [])
        for member in shown:
            node = f"{fork.addr}.m{member.task}"
            own.append((node, _member_label(member)))
            nodes.append(node)
        rest = generated[len(shown):]
        if rest:
            node = f"{fork.addr}.more"
            own.append((node, f"... {len(rest)} more members\n{rest[0].task}-{rest[-1].task}"))
            nodes.append(node)
        return nodes


def _groups(program: ir.Program) -> list[tuple[int | None, list[ir.Instr]]]:
    """Instructions grouped by task in listing order; the shared terminals (task None) last."""
    by_task: dict = {}
    for instr in program.instrs.values():
        by_task.setdefault(instr.task, []).append(instr)
    terminals = by_task.pop(None, [])
    return [*by_task.items(), (None, terminals)] if terminals else list(by_task.items())


_DOT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "<": "\\<", ">": "\\>", "|": "\\|",
                "{": "\\{", "}": "\\}"}


def dot_string(text: str) -> str:
    """``text`` as a quoted DOT string whose label shows exactly ``text`` (newlines break lines).

    Besides quotes and backslashes (which start DOT's escapes such as ``\\N``),
    ``< > | { }`` are escaped too: they are structure in record labels, and an
    escaped one is shown as itself in every shape.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return '"' + "".join(_DOT_ESCAPES.get(c, c) for c in text) + '"'


def to_dot(program: ir.Program) -> str:
    """The program as a Graphviz digraph (``dot -Tsvg`` draws it)."""
    out = [
        "// tasker plan: one node per instruction, edges labelled with their outcome",
        "digraph plan {",
        '  graph [rankdir=TB, fontname="Helvetica", fontsize=10, nodesep=0.3, ranksep=0.35];',
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
        '  "plan.start" [label="start", shape=circle, style=filled, fillcolor="#212121", fontcolor=white, '
        "width=0.5, fixedsize=true];",
    ]
    members = Members(program)
    for task, instrs in _groups(program):
        indent = "  "
        if task is not None:
            out.append(f"  subgraph {dot_string(f'cluster_task_{task}')} {{")
            out.append(f'    label={dot_string(f"task {task}")}; style="rounded,dashed"; color="#9e9e9e"; '
                       'fontcolor="#616161";')
            indent = "    "
        for instr in instrs:
            start = ", penwidth=2.5" if instr.addr == program.start else ""
            label = dot_string("\n".join(label_lines(instr)))
            shape = _DOT_STOP_OK if ends_well(instr) else _DOT_NODE[instr.kind]
            out.append(f"{indent}{dot_string(instr.addr)} [label={label}, {shape}{start}];")
        for node, text in members.nodes.get(task, ()):
            out.append(f"{indent}{dot_string(node)} [label={dot_string(text)}, {_DOT_MEMBER}];")
        if task is not None:
            out.append("  }")
    out.append(f"  \"plan.start\" -> {dot_string(program.start)};")
    for instr in program.instrs.values():
        for outcome, target in instr.succ:
            style = _DOT_EDGE.get(outcome)
            attrs = f"label={dot_string(outcome)}" + (f", {style}" if style else "")
            out.append(f"  {dot_string(instr.addr)} -> {dot_string(target)} [{attrs}];")
    for source, target, text in members.edges:
        out.append(f"  {dot_string(source)} -> {dot_string(target)} [label={dot_string(text)}, {_DOT_MEMBER_EDGE}];")
    out.append("}")
    return "\n".join(out)


# Mermaid reads ``#name;`` / ``#123;`` in labels as character entities; these
# characters would otherwise end the quoted label (``"``), start an entity
# (``#``, ``&``), be read as HTML (``< >``), as Markdown (a backquote) or as a
# comment (``%%``).
_MERMAID_ESCAPES = {'"': "#quot;", "#": "#35;", "&": "#amp;", "<": "#lt;", ">": "#gt;", "`": "#96;",
                    "%": "#37;"}


def mermaid_text(text: str) -> str:
    """``text`` as a quoted Mermaid label: entity codes for special characters, ``<br>`` for newlines."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return '"' + "<br>".join("".join(_MERMAID_ESCAPES.get(c, c) for c in line) for line in lines) + '"'


def _mermaid_ids(program: ir.Program, extra: list[str] = ()) -> dict[str, str]:
    """A Mermaid node id per address: ``n_`` + the address with ``.`` as ``_``, kept unique.

    The prefix keeps ids clear of Mermaid's keywords (``end``) and of its
    ``o``/``x`` arrow heads; addresses never need more than letters, digits and ``_``.
    """
    ids: dict[str, str] = {}
    taken: set[str] = {"start"}
    for addr in [*program.instrs, *extra]:
        base = "n_" + "".join(c if c.isascii() and c.isalnum() else "_" for c in addr)
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        ids[addr] = name
    return ids


def to_mermaid(program: ir.Program) -> str:
    """The program as a Mermaid flowchart (GitHub and GitLab render it in Markdown)."""
    members = Members(program)
    ids = _mermaid_ids(program, [node for nodes in members.nodes.values() for node, _ in nodes])
    out = [
        "%% tasker plan: one node per instruction, edges labelled with their outcome",
        "flowchart TD",
        '  start(("start"))',
    ]
    classes: dict[str, list[str]] = {"start": ["start"]}
    for task, instrs in _groups(program):
        indent = "  "
        if task is not None:
            out.append(f"  subgraph task_{task} [{mermaid_text(f'task {task}')}]")
            indent = "    "
        for instr in instrs:
            opening, closing, cls = _MERMAID_NODE[instr.kind]
            cls = "stopok" if ends_well(instr) else cls
            label = mermaid_text("\n".join(label_lines(instr)))
            out.append(f"{indent}{ids[instr.addr]}{opening}{label}{closing}")
            classes.setdefault(cls, []).append(ids[instr.addr])
        for node, text in members.nodes.get(task, ()):
            out.append(f"{indent}{ids[node]}({mermaid_text(text)})")
            classes.setdefault("member", []).append(ids[node])
        if task is not None:
            out.append("  end")
    links = [f"  start --> {ids[program.start]}"]
    colours: dict[str, list[int]] = {}
    for instr in program.instrs.values():
        for outcome, target in instr.succ:
            arrow = "-.->" if outcome in ("false", "again") else "-->"
            if outcome in ("true", "false"):
                colours.setdefault(outcome, []).append(len(links))
            links.append(f"  {ids[instr.addr]} {arrow}|{mermaid_text(outcome)}| {ids[target]}")
    for source, target, text in members.edges:
        label = f"|{mermaid_text(text)}|" if text else ""
        links.append(f"  {ids[source]} -.->{label} {ids[target]}")
    out.extend(links)
    for outcome, colour in (("true", "#2e7d32"), ("false", "#c62828")):
        if outcome in colours:
            out.append(f"  linkStyle {','.join(map(str, colours[outcome]))} stroke:{colour},color:{colour}")
    for cls, style in _MERMAID_CLASSES:
        if cls in classes:
            out.append(f"  classDef {cls} {style}")
            out.append(f"  class {','.join(classes[cls])} {cls}")
    if program.start in ids:
        out.append(f"  style {ids[program.start]} stroke-width:4px")
    return "\n".join(out)


# ---------------------------------------------------------------- --show-plan

SVG_HELP = ("--plan-format=svg needs Graphviz's `dot` program, and none was found on PATH. "
            "Install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz), "
            "or write the graph with --plan-format=dot --plan-output plan.dot and render it elsewhere "
            "(dot -Tsvg plan.dot -o plan.svg)")


def render(program: ir.Program, fmt: str) -> str:
    """The plan as text in one of the text formats (text, dot, mermaid)."""
    if fmt == "dot":
        return to_dot(program)
    if fmt == "mermaid":
        return to_mermaid(program)
    return listing(program)


def svg(program: ir.Program, environ: dict | None = None) -> bytes:
    """The plan drawn by Graphviz (``dot -Tsvg``); raises ``TaskerExit`` when ``dot`` is missing or fails."""
    # Lazy: only the Graphviz picture runs a program; the text formats need neither module.
    import shutil
    import subprocess

    path = (environ or {}).get("PATH")
    exe = shutil.which("dot", path=path)
    if exe is None:
        raise TaskerExit(Exit.USAGE, f"tasker: {SVG_HELP}")
    try:
        done = subprocess.run([exe, "-Tsvg"], input=to_dot(program).encode(), capture_output=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TaskerExit(Exit.FAILURE, f"tasker: could not run {exe}: {exc}") from None
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip()
        raise TaskerExit(Exit.FAILURE, f"tasker: {exe} -Tsvg failed (exit {done.returncode}): {detail}")
    return done.stdout


def render_plan(program: ir.Program, settings) -> str | None:
    """The plan in the requested format; writes it to --plan-output when given (then says so).

    ``settings.plan_format`` is one of options.PLAN_FORMATS already (or None: text).
    """
    fmt = settings.plan_format or "text"
    out = settings.plan_output
    if fmt == "svg":
        if not out:
            raise TaskerExit(Exit.USAGE, "tasker: --plan-format=svg writes a picture: give it a file with "
                                         "--plan-output FILE")
        data = svg(program, settings.environ)
    else:
        text = render(program, fmt)
        if not out:
            return text
        data = (text + "\n").encode()
    try:
        with open(out, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise TaskerExit(Exit.FAILURE, f"tasker: cannot write the plan to {out}: {exc.strerror}") from None
    return f"plan written to {out}"
