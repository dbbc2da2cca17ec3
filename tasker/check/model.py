"""The checked AST: a task file's meaning, typed, with globals already applied.

``check.compile_workflow`` builds a ``Workflow`` from a ``TaskFile``: every
task field has its final type (ints, parsed conditions, templates that hold
only task-result placeholders), hostnames blocks have their generated
subtasks.  Lowering reads nothing else.
"""

from __future__ import annotations

import attrs

from tasker.syntax.ast import EMPTY_TEMPLATE

NORMAL = "normal"
RETURN = "return"
PARALLEL = "parallel"
CONDITIONAL = "conditional"
DECISION = "decision"
BLOCK_KINDS = (PARALLEL, CONDITIONAL)

# Generated subtask ids of a hostnames= block (docs/flow.md).
HOSTNAMES_BASE = 100_000
HOSTNAMES_STRIDE = 10_000


def hostname_subtask_id(block: int, index: int) -> int:
    return HOSTNAMES_BASE + block * HOSTNAMES_STRIDE + index


@attrs.frozen
class GlobalVar:
    """A global variable: its value after ``$ENV`` expansion, and where it came from."""

    name: str
    value: str
    template: str                 # the value as written
    from_env: bool                # the value references environment variables
    span: object = attrs.field(default=None, eq=False)


@attrs.frozen
class Retry:
    """Retry settings of a block: attempts = 1 + count, ``delay`` seconds apart."""

    count: object                 # int, or Template resolved at run time
    delay: object                 # int/float, or Template


@attrs.frozen
class Task:
    """One task, typed.  Fields a kind does not use stay at their defaults."""

    id: int
    kind: str
    span: object = attrs.field(default=None, eq=False)
    hostname: object = None       # Template
    command: object = None        # Template
    arguments: object = EMPTY_TEMPLATE
    exec: object = None           # Template
    timeout: object = None        # Template
    sleep: object = None          # Template
    condition: object = None      # condition AST (gate, or a conditional block's selector)
    success: object = None
    failure: object = None
    next: object = None           # ast.Next
    on_success: int | None = None
    on_failure: int | None = None
    loop: int | None = None
    loop_break: object = None
    return_value: str | None = None   # as written (after globals); parsed when reached
    members: tuple = ()           # parallel: subtask ids (tasks= or generated)
    if_true: tuple = ()           # conditional branches
    if_false: tuple = ()
    hosts: tuple = ()             # hostnames= entries
    max_parallel: int | None = None
    retry: Retry | None = None
    stdout_split: object = None   # ast.Split
    stderr_split: object = None
    parent: int | None = None     # the hostnames block that generated this subtask
    reads: tuple = attrs.field(default=(), eq=False)   # ((field, task id, "@N_x@"), ...) results it reads

    @property
    def is_block(self) -> bool:
        return self.kind in BLOCK_KINDS


@attrs.frozen
class Workflow:
    """A compiled task file: tasks by id (ascending), globals by name."""

    path: str
    tasks: dict                   # int -> Task, in ascending id order
    globals: dict                 # name -> GlobalVar
    file_args: tuple = ()         # ast.FileArg
    text: str = attrs.field(default="", eq=False)
    unset_env: dict = attrs.field(default=None, eq=False)   # globals that took a recovery file's saved value

    def first_id(self) -> int | None:
        """The lowest id of the main flow (generated subtasks excluded)."""
        for tid, task in self.tasks.items():
            if task.parent is None:
                return tid
        return None

    def reads_results(self) -> bool:
        """Some task reads another task's result (``@N_…@``): data flow is worth analysing."""
        return any(task.reads for task in self.tasks.values())
