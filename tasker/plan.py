"""Renderings of an ``ir.Program``: a text listing like ``dis``, Graphviz DOT, Mermaid.

All three read the same graph: one node per instruction, one edge per
successor, labelled with its outcome (next, true, false, body, again, done,
join).  ``describe`` gives the one-line operand text every view uses.
"""

from __future__ import annotations

from tasker import ir
from tasker.syntax.condition import show, show_template

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tasker.syntax.ast import Template


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
    return ("  " + " ".join(extras)) if extras else ""


def describe(instr: ir.Instr) -> str:
    """The operand text of one instruction."""
    op = instr.op
    kind = instr.kind
    if kind == ir.EXEC:
        return command_text(op.command) + _command_extras(op.command)
    if kind == ir.SKIP:
        return f"record task {op.task} as skipped"
    if kind == ir.BRANCH:
        test = "success" if op.test == "success" else show(op.test)
        text = f"{'not ' if op.negate else ''}{test}"
        where = {"pre": "before running", "task": "on the task's result", "block": "on the block's members"}
        return f"{op.label}: {text}  ({where.get(op.context, op.context)})"
    if kind == ir.LOOP:
        if op.phase == "enter":
            return f"enter loop of {op.count} runs"
        extras = []
        if op.until is not None:
            extras.append(f"until {show(op.until)}")
        if op.while_ is not None:
            extras.append(f"while {show(op.while_)}")
        return "next iteration" + (f" ({', '.join(extras)})" if extras else "")
    if kind == ir.FORK:
        members = ", ".join(str(m.task) for m in op.members)
        how = "one after another" if op.sequential else f"max_parallel={op.max_parallel}"
        retry = ""
        if op.retry is not None:
            retry = f" retry={_value(op.retry.count)}x delay={_value(op.retry.delay)}s"
        branch = f"{op.branch} branch " if op.branch else ""
        return f"{branch}[{members}] {how}{retry}"
    if kind == ir.JOIN:
        return f"collect the results of block {op.block}"
    if kind == ir.SLEEP:
        return f"{_value(op.seconds)} s"
    if kind == ir.RETURN:
        return f"exit {op.value}"
    if kind == ir.STOP:
        return op.message or op.reason
    return ""


def _value(value) -> str:
    from tasker.syntax.ast import Template

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


def render_plan(program: ir.Program, settings) -> str | None:
    """The plan in the requested format; writes it to --plan-output when given."""
    fmt = (getattr(settings, "plan_format", None) or "text").lower()
    if fmt != "text":
        raise ValueError(f"--plan-format={fmt} is not available yet; use text")
    text = listing(program)
    out = getattr(settings, "plan_output", None)
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        return f"plan written to {out}"
    return text
