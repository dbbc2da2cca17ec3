"""Which hosts a workflow may use more than once, known before it runs.

A connection shared by several tasks (an ssh master) is worth opening only for
a host that more than one command runs on: two tasks naming it, a task that
loops (``next=loop``), a member of a block that retries, or a task inside a
stretch of the flow that a routing target jumps back over.  A host used once
needs nothing shared, so a pure fan-out pays nothing for sharing.  Host names
with ``@...@`` placeholders are known only at run time and count as used once.
"""

from __future__ import annotations

from tasker.check.model import Task, Workflow
from tasker.syntax.ast import Next


def reused_hosts(workflow: Workflow) -> frozenset[str]:
    """The literal host names that more than one command execution may use."""
    repeated = _repeated_tasks(workflow)
    uses: dict[str, int] = {}
    for task in workflow.tasks.values():
        if task.command is None or task.hostname is None or not task.hostname.is_literal:
            continue
        host = task.hostname.literal().strip()
        if host:
            uses[host] = uses.get(host, 0) + (2 if task.id in repeated else 1)
    return frozenset(host for host, count in uses.items() if count > 1)


def _repeated_tasks(workflow: Workflow) -> set[int]:
    """Ids of the tasks that may run more than once."""
    tasks = workflow.tasks
    repeated: set[int] = set()
    main = [tid for tid, task in tasks.items() if task.parent is None]
    for task in tasks.values():
        if task.loop is not None and isinstance(task.next, Next) and task.next.kind == "loop":
            repeated.add(task.id)
        if task.retry is not None:
            repeated.update(_members(task))
        for target in (task.on_success, task.on_failure):
            if target is not None and target <= task.id:        # a jump back: the stretch between repeats
                repeated.update(tid for tid in main if target <= tid <= task.id)
    # a repeated block repeats its members, and theirs
    pending = [tid for tid in repeated if tid in tasks]
    while pending:
        for member in _members(tasks[pending.pop()]):
            if member not in repeated:
                repeated.add(member)
                if member in tasks:
                    pending.append(member)
    return repeated


def _members(task: Task) -> tuple:
    return (*task.members, *task.if_true, *task.if_false)
