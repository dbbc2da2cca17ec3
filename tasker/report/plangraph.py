"""The plan graph of a run's task file, with the path the run took highlighted (for ``tasker report``).

The task file is compiled again (it is named in the JSON and the events);
when it changed since the run (its hash differs from the run's execution id)
the report says so.  With Graphviz's ``dot`` on PATH the graph is the same
one ``--show-plan --plan-format=svg`` draws, its executed instructions and
taken edges drawn thick and coloured; without ``dot`` a plain drawing shows
the tasks in id order and the path as numbered arrows.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

from tasker.check.checker import CheckOptions, compile_workflow
from tasker.ir import instructions as ir
from tasker.ir.instructions import Program
from tasker.ir.lower import LowerOptions, lower
from tasker.ir.plan import dot_string, to_dot
from tasker.report.html import COLOURS, esc
from tasker.report.masking import NO_SECRETS, Masker
from tasker.report.rundata import RunData
from tasker.syntax.taskfile import parse_taskfile

DOT_LIMIT = 400   # instructions; above this the graph is unreadable and dot slow (40 s for 3,000)


def compile_program(task_file: str, environ: dict) -> tuple[Program | None, str, Masker]:
    """(program, note, masker): the program of ``task_file``, or None and why not.

    The program is recompiled from the file, so its labels hold the globals' values; the
    masker hides the secret ones in the picture, as every other writer does.
    """
    try:
        with open(task_file, "rb") as fh:
            content = fh.read()
        text = content.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"The plan is not shown: cannot read the task file {task_file} ({exc}).", NO_SECRETS
    try:
        tree = parse_taskfile(text, task_file)
        workflow, diags = compile_workflow(tree, CheckOptions(validate=False, security=False, environ=environ))
    except Exception as exc:   # a file that no longer parses: the report still shows the run
        return None, f"The plan is not shown: the task file {task_file} does not compile ({exc}).", NO_SECRETS
    if diags.has_errors() or not workflow.tasks:
        return None, f"The plan is not shown: the task file {task_file} has errors now.", NO_SECRETS
    masker = Masker.for_globals(workflow.globals)
    return lower(workflow, LowerOptions()), hashlib.sha256(content).hexdigest()[:8], masker


def plan_svg(data: RunData, environ: dict | None = None) -> tuple[str | None, str]:
    """(inline SVG or None, a note for the reader)."""
    environ = dict(os.environ) if environ is None else environ
    if not data.task_file:
        return None, "The plan is not shown: the run does not name its task file."
    program, digest, masker = compile_program(data.task_file, environ)
    if program is None:
        return None, digest
    svg, note = _draw(program, data, environ, digest)
    return (masker.text(svg) if svg is not None else None), note


def _draw(program: Program, data: RunData, environ: dict, digest: str) -> tuple[str | None, str]:
    note = ""
    if data.execution_id and digest != data.execution_id:
        note = "The task file changed since this run: the plan below is the current file's. "
    executed = _executed_tasks(data)
    exe = shutil.which("dot", path=environ.get("PATH"))
    if exe is not None and len(program.instrs) > DOT_LIMIT:
        note += (f"The plan has {len(program.instrs)} instructions, too many for a readable graph (Graphviz "
                 "also takes minutes on it): this is the plain drawing. ")
        exe = None
    if exe is not None:
        svg = _dot_svg(exe, program, data, executed)
        if svg is not None:
            return svg, note + "Drawn by Graphviz; thick coloured nodes and edges are the path the run took."
        note += "Graphviz failed, so this is the plain drawing. "
    if not note and exe is None and shutil.which("dot", path=environ.get("PATH")) is None:
        note = "Graphviz not found: "
    return _plain_svg(program, data, executed), note + "The top-level tasks and the path the run took."


def _executed_tasks(data: RunData) -> dict[int, bool]:
    """Task id -> succeeded (last result), for every top-level task on the path and every member that ran."""
    out: dict[int, bool] = {}
    for run in data.runs:
        out[run["task"]] = bool(run["success"])
    for block in data.blocks:
        out[block["block"]] = bool(block["success"])
    for task in data.path:
        if task not in out:
            result = data.results.get(task)
            out[task] = bool(result.get("success")) if result else True
    return out


def _taken_edges(program: Program, data: RunData, executed: dict[int, bool]) -> set[tuple[str, str]]:
    """Edges inside an executed task, and from each task on the path to the entry of the next one."""
    taken = set()
    for instr in program.instrs.values():
        if instr.task in executed:
            for _outcome, target in instr.succ:
                target_instr = program.instrs.get(target)
                if target_instr is not None and target_instr.task == instr.task:
                    taken.add((instr.addr, target))
    for a, b in zip(data.path, data.path[1:], strict=False):
        entry = program.entries.get(b)
        for instr in program.instrs.values():
            if instr.task == a and any(t == entry for _o, t in instr.succ):
                taken.add((instr.addr, entry))
    return taken


def _dot_svg(exe: str, program: Program, data: RunData, executed: dict[int, bool]) -> str | None:
    taken = {f"  {dot_string(src)} -> {dot_string(dst)} [" for src, dst in _taken_edges(program, data, executed)}
    if data.path and data.path[0] in program.entries:
        taken.add(f"  \"plan.start\" -> {dot_string(program.entries[data.path[0]])};")
    lines = []
    for line in to_dot(program).rstrip().split("\n"):
        if " -> " in line and line.split(" [", 1)[0] + " [" in taken:
            line = line[:-2] + ', color="#1565c0", penwidth=3];'
        elif line in taken:
            line = line[:-1] + ' [color="#1565c0", penwidth=3];'
        lines.append(line)
    lines.pop()   # the closing brace: the executed nodes are restyled before it
    for instr in program.instrs.values():
        if instr.task in executed:
            colour = COLOURS["ok"] if executed[instr.task] else COLOURS["failed"]
            lines.append(f'  {dot_string(instr.addr)} [color="{colour}", penwidth=3];')
    lines.append("}")
    try:
        done = subprocess.run([exe, "-Tsvg"], input="\n".join(lines).encode(), capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    svg = done.stdout.decode("utf-8", errors="replace")
    return svg[svg.find("<svg"):] if "<svg" in svg else None


def _plain_svg(program: Program, data: RunData, executed: dict[int, bool]) -> str:
    """Top-level tasks top to bottom in id order (a block with its member count); the ones that ran
    coloured by outcome; the path as numbered arrows on the right."""

    members = {i.op.block: len(i.op.members) for i in program.instrs.values() if i.kind == ir.FORK}
    inside = {m.task for i in program.instrs.values() if i.kind == ir.FORK for m in i.op.members}
    tasks = sorted({i.task for i in program.instrs.values() if i.task is not None and i.task not in inside})
    ys = {task: 20 + n * 30 for n, task in enumerate(tasks)}
    out = []
    for task in tasks:
        y = ys[task]
        colour = COLOURS["ok"] if executed.get(task) else (COLOURS["failed"] if task in executed else "#bdbdbd")
        width = 3 if task in executed else 1
        label = f"task {task}" + (f" (block of {members[task]})" if task in members else "")
        out.append(f'<g class="plan-task" data-task="{task}"><rect x="20" y="{y}" width="200" height="22" rx="4" '
                   f'fill="#fff" stroke="{colour}" stroke-width="{width}"/><text x="30" y="{y + 15}" '
                   f'font-size="12">{esc(label)}</text></g>')
    step = 0
    for a, b in zip(data.path, data.path[1:], strict=False):
        if a not in ys or b not in ys:
            continue
        step += 1
        y1, y2 = ys[a] + 11, ys[b] + 11
        bend = 240 + 14 * (step % 12)
        out.append(f'<path d="M220,{y1} C{bend},{y1} {bend},{y2} 220,{y2}" fill="none" stroke="#1565c0" '
                   f'stroke-width="2" marker-end="url(#arrow)"><title>step {step}: {a} → {b}</title></path>')
    height = 40 + 30 * len(tasks)
    marker = ('<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
              'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#1565c0"/></marker></defs>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="460" height="{height}" role="img" '
            f'aria-label="{esc("plan")}">{marker}{"".join(out)}</svg>')
