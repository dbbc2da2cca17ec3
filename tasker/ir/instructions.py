"""The IR: a workflow as a flat graph of instructions.

Each ``Instr`` has an address (the task id, plus a suffix for synthesized
parts: ``5.exec``, ``5.route``, ``5.join``), a kind, one typed operand node, and
explicit successor edges per outcome.  The VM follows the edges; ``--show-plan``
prints them.  Kinds:

``exec``    run a task's command and store its result          -> next
``skip``    store the record of a task skipped by condition=  -> next
``branch``  evaluate a condition                               -> true | false
``loop``    enter a loop / decide after an iteration           -> body | again | done
``fork``    run a block's member tasks                         -> join
``join``    aggregate the members' results into the block's    -> next
``sleep``   pause after a task                                  -> next
``return``  end the program with the task's return value
``stop``    end the run (success, failure, condition not met, end of flow, fatal)
"""

from __future__ import annotations

import attrs

EXEC = "exec"
SKIP = "skip"
BRANCH = "branch"
LOOP = "loop"
FORK = "fork"
JOIN = "join"
SLEEP = "sleep"
RETURN = "return"
STOP = "stop"

# Terminal addresses shared by the whole program.
END = "end"                 # the flow reached an id that does not exist: normal end
STOP_FAILURE = "stop.failure"     # a task failed without routing: exit with its code (or 1)
STOP_NEVER = "stop.never"         # next=never: stop, the run succeeded
STOP_CONDITION = "stop.condition" # a block/on_success-only condition failed: exit 10
STOP_FATAL = "stop.fatal"         # an unsupported construct reached at run time: exit 1


@attrs.frozen
class Instr:
    """One instruction of the program."""

    addr: str
    kind: str
    task: int | None
    op: object                    # the kind's operand node (below), or None
    succ: tuple                   # ((outcome, addr), ...) in display order

    def to(self, outcome: str) -> str:
        for name, addr in self.succ:
            if name == outcome:
                return addr
        raise KeyError(f"{self.addr}: no {outcome!r} edge")


@attrs.frozen
class Command:
    """What ``exec`` runs and how its result is judged (one task, or one block member)."""

    task: int
    hostname: object              # Template
    command: object               # Template
    arguments: object             # Template
    exec: object                  # Template or None (-> -t / env / config default)
    timeout: object               # Template or None
    stdout_split: object          # ast.Split or None
    stderr_split: object
    success: object               # condition or None (exit 0)
    failure: object               # condition or None (ignored for block members)
    display: str = attrs.field(default="", eq=False)


@attrs.frozen
class Exec:
    """Operand of ``exec``: the command, and whether entering it adds to the execution path."""

    command: Command
    main: bool = True             # a top-level task (not a block member)


@attrs.frozen
class Skip:
    """Operand of ``skip``: the task whose condition= was false."""

    task: int


@attrs.frozen
class Branch:
    """Operand of ``branch``: a condition and the context it sees.

    ``context`` is ``pre`` (exit 0, empty output: condition=, decisions,
    conditional selectors), ``task`` (the task just run), or ``block`` (the
    aggregate of the block just joined).  ``test`` may also be the string
    ``"success"``: the task's own success result.
    """

    test: object
    context: str
    negate: bool = False
    entry: bool = False           # entering this branch adds the task to the execution path
    label: str = ""               # what the branch decides, for listings


@attrs.frozen
class Loop:
    """Operand of ``loop``: ``enter`` starts a loop of ``count`` runs if none is active;
    ``next`` ends it when ``until`` holds or ``while_`` fails, else runs again."""

    phase: str                    # enter | next
    count: int
    until: object = None          # loop_break
    while_: object = None         # the condition of next=loop&COND


@attrs.frozen
class Member:
    """One task a block runs: its command plus its own gate, sleep and return value."""

    task: int
    command: Command | None       # None for a return-only member
    condition: object = None
    sleep: object = None          # Template or None
    return_value: str | None = None


@attrs.frozen
class Fork:
    """Operand of ``fork``: the members, how many run at once, and retries."""

    block: int
    members: tuple                # of Member
    max_parallel: int
    retry: object                 # model.Retry or None
    sequential: bool              # conditional branch: one after another, results visible at once
    branch: str = ""              # TRUE / FALSE for conditional blocks


@attrs.frozen
class Join:
    """Operand of ``join``: store the block's record from its members' results."""

    block: int
    kind: str                     # parallel | conditional


@attrs.frozen
class Sleep:
    """Operand of ``sleep``: seconds (a template, resolved when reached)."""

    task: int
    seconds: object


@attrs.frozen
class Return:
    """Operand of ``return``: the value as written (an integer, else exit 50)."""

    task: int
    value: str
    entry: bool = True


@attrs.frozen
class Stop:
    """Operand of ``stop``: why the run ends here."""

    reason: str                   # end | failure | never | condition | fatal
    message: str = ""


@attrs.frozen
class Program:
    """A compiled workflow: instructions by address, and the entry address of every task."""

    instrs: dict                  # addr -> Instr, in listing order
    entries: dict                 # task id -> addr of its first instruction
    start: str                    # address the run starts at (lowest id, or END)
    tasks: dict = attrs.field(default=None, eq=False)   # model tasks, for reports (not used to run)

    def __getitem__(self, addr: str) -> Instr:
        return self.instrs[addr]
