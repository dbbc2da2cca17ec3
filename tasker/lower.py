"""Lowering: the checked ``Workflow`` -> an ``ir.Program`` (semantics.md §3-§13).

Every routing rule of the spec becomes an explicit edge here, so the VM has
no routing logic of its own: it evaluates the operand of an instruction and
follows the edge named by the outcome.  The default successor of task k is
k+1 *by number*, resolved now: if k+1 is not a task, the edge goes to ``end``.
"""

from __future__ import annotations

from tasker import ir
from tasker.ir import Branch, Command, Exec, Fork, Instr, Join, Loop, Member, Return, Skip, Sleep, Stop
from tasker.model import CONDITIONAL, DECISION, PARALLEL, RETURN, Task, Workflow
from tasker.syntax.ast import Keyword, Multi, Next

DEFAULT_MAX_PARALLEL = 8
ALL_SUCCESS = Multi("all_success")
FALSE = Keyword("false")
TRUE = Keyword("true")

_TERMINALS = {
    ir.END: Stop("end", "no task with the next id: the workflow is complete"),
    ir.STOP_FAILURE: Stop("failure", "a task failed and has no route for failure"),
    ir.STOP_NEVER: Stop("never", "next=never: stop here, successfully"),
    ir.STOP_CONDITION: Stop("condition", "the condition to continue was not met"),
    ir.STOP_FATAL: Stop("fatal", "a construct that cannot run was reached"),
}


class LowerOptions:
    """Switches that change edges: ``--fire-and-forget``."""

    def __init__(self, fire_and_forget: bool = False) -> None:
        self.fire_and_forget = fire_and_forget


def lower(workflow: Workflow, options: LowerOptions | None = None) -> ir.Program:
    """Compile a workflow into a program."""
    return _Lowerer(workflow, options or LowerOptions()).run()


class _Lowerer:
    def __init__(self, workflow: Workflow, options: LowerOptions) -> None:
        self.wf = workflow
        self.tasks = workflow.tasks
        self.opts = options
        self.main = [tid for tid, t in self.tasks.items() if t.parent is None]
        self.main_set = set(self.main)
        self.instrs: dict[str, Instr] = {}
        self.entries: dict[int, str] = {}
        self.used_terminals: set[str] = set()

    def run(self) -> ir.Program:
        for tid in self.main:
            task = self.tasks[tid]
            if task.kind == PARALLEL:
                self.parallel(task)
            elif task.kind == CONDITIONAL:
                self.conditional(task)
            elif task.kind == DECISION:
                self.decision(task)
            elif task.kind == RETURN:
                self.return_only(task)
            else:
                self.normal(task)
        for addr, stop in _TERMINALS.items():
            if addr in self.used_terminals:
                self.instrs[addr] = Instr(addr, ir.STOP, None, stop, ())
        start = self.target(self.wf.first_id()) if self.main else ir.END
        if start == ir.END and ir.END not in self.instrs:
            self.instrs[ir.END] = Instr(ir.END, ir.STOP, None, _TERMINALS[ir.END], ())
        return ir.Program(self.instrs, self.entries, start, self.tasks)

    # ------------------------------------------------------------ helpers

    def target(self, tid: int | None) -> str:
        """The entry address of task ``tid``, or ``end`` when it does not exist."""
        if tid is not None and tid in self.main_set:
            return str(tid)
        self.used_terminals.add(ir.END)
        return ir.END

    def terminal(self, addr: str) -> str:
        self.used_terminals.add(addr)
        return addr

    def next_of(self, task: Task) -> str:
        return self.target(task.id + 1)

    def emit(self, instrs: list[Instr]) -> None:
        self.entries[instrs[0].task] = instrs[0].addr
        for instr in instrs:
            self.instrs[instr.addr] = instr

    @staticmethod
    def command(task: Task, *, member: bool = False) -> Command:
        return Command(
            task=task.id,
            hostname=task.hostname,
            command=task.command,
            arguments=task.arguments,
            exec=task.exec,
            timeout=task.timeout,
            stdout_split=task.stdout_split,
            stderr_split=task.stderr_split,
            success=task.success,
            failure=None if member else task.failure,
        )

    # ------------------------------------------------------------ normal tasks

    def normal(self, task: Task) -> None:
        k = task.id
        looping = isinstance(task.next, Next) and task.next.kind == "loop" and task.loop is not None
        names = _Addresses(k)
        out: list[Instr] = []
        if looping:
            out.append(Instr(names.take("loop.enter"), ir.LOOP, k, Loop("enter", task.loop), ()))
        body_start = len(out)
        if task.condition is not None:
            out.append(Instr(names.take("gate"), ir.BRANCH, k, Branch(task.condition, "pre", label="condition"), ()))
        out.append(Instr(names.take("exec"), ir.EXEC, k, Exec(self.command(task)), ()))
        if task.sleep is not None:
            out.append(Instr(names.take("sleep"), ir.SLEEP, k, Sleep(k, task.sleep), ()))
        if task.return_value is not None:
            out.append(Instr(names.take("return"), ir.RETURN, k, Return(k, task.return_value, entry=False), ()))
        elif looping:
            nxt = task.next
            out.append(Instr(names.take("loop.next"), ir.LOOP, k,
                             Loop("next", task.loop, task.loop_break, nxt.condition), ()))
        else:
            out.extend(self.route(task, names))
        skip_addr = None
        if task.condition is not None:
            skip_addr = names.take("skip")
        self.link_normal(task, out, body_start, skip_addr)
        if skip_addr is not None:
            out.append(Instr(skip_addr, ir.SKIP, k, Skip(k), (("next", self.next_of(task)),)))
        self.emit(out)

    def link_normal(self, task: Task, out: list[Instr], body_start: int, skip_addr: str | None) -> None:
        """Fill in the successor edges of a normal task's straight-line instructions."""
        body_addr = out[body_start].addr
        for i, instr in enumerate(out):
            nxt = out[i + 1].addr if i + 1 < len(out) else None
            if instr.succ:
                continue
            if instr.kind == ir.LOOP and instr.op.phase == "enter":
                edges = (("body", nxt),)
            elif instr.kind == ir.BRANCH and instr.op.label == "condition":
                edges = (("true", nxt), ("false", skip_addr))
            elif instr.kind == ir.LOOP:
                edges = (("again", body_addr), ("done", self.continue_target(task)))
            elif instr.kind in (ir.RETURN, ir.STOP):
                edges = ()
            else:
                edges = (("next", nxt),)
            out[i] = Instr(instr.addr, instr.kind, instr.task, instr.op, edges)

    def continue_target(self, task: Task) -> str:
        return self.target(task.on_success) if task.on_success is not None else self.next_of(task)

    def route(self, task: Task, names: _Addresses) -> list[Instr]:
        """The routing of semantics.md §6, as a branch (or nothing, when unconditional)."""
        k = task.id
        nxt = task.next
        on_s = self.target(task.on_success) if task.on_success is not None else None
        on_f = self.target(task.on_failure) if task.on_failure is not None else None
        if nxt is None:
            test: object = "success"
            if on_s is None and on_f is None:
                fail = self.next_of(task) if self.opts.fire_and_forget else self.terminal(ir.STOP_FAILURE)
                true, false = self.next_of(task), fail
            elif on_f is None:
                true, false = on_s, self.terminal(ir.STOP_CONDITION)
            elif on_s is None:
                true, false = self.next_of(task), on_f
            else:
                true, false = on_s, on_f
        elif nxt.kind == "never":
            return self.goto(k, names, self.terminal(ir.STOP_NEVER), "next=never")
        elif nxt.kind == "always":
            return self.goto(k, names, on_s or self.next_of(task), "next=always")
        else:
            # a condition; `loop` without loop= and numeric next= evaluate as false conditions
            test = nxt.condition if nxt.kind == "condition" else FALSE
            true = on_s or self.next_of(task)
            false = on_f or self.terminal(ir.STOP_FAILURE)
        branch = Branch(test, "task", label="route")
        return [Instr(names.take("route"), ir.BRANCH, k, branch, (("true", true), ("false", false)))]

    def goto(self, k: int, names: _Addresses, addr: str, why: str) -> list[Instr]:
        """An unconditional edge, kept visible as a branch on `true`."""
        return [Instr(names.take("route"), ir.BRANCH, k, Branch(TRUE, "task", label=why), (("true", addr),))]

    # ------------------------------------------------------------ return-only, decision

    def return_only(self, task: Task) -> None:
        k = task.id
        names = _Addresses(k)
        out: list[Instr] = []
        if task.condition is not None:
            gate = names.take("gate")
            ret = names.take("return")
            skip = names.take("skip")
            out.append(Instr(gate, ir.BRANCH, k, Branch(task.condition, "pre", label="condition"),
                             (("true", ret), ("false", skip))))
            out.append(Instr(ret, ir.RETURN, k, Return(k, task.return_value or ""), ()))
            out.append(Instr(skip, ir.SKIP, k, Skip(k), (("next", self.next_of(task)),)))
        else:
            out.append(Instr(names.take("return"), ir.RETURN, k, Return(k, task.return_value or ""), ()))
        self.emit(out)

    def decision(self, task: Task) -> None:
        k = task.id
        if task.success is not None:
            test, negate = task.success, False
        elif task.failure is not None:
            test, negate = task.failure, True
        else:
            test, negate = TRUE, False
        nxt = task.next
        if isinstance(nxt, Next) and nxt.kind == "never":
            fallback = self.terminal(ir.STOP_NEVER)
        elif isinstance(nxt, Next) and nxt.kind == "jump":
            fallback = self.target(nxt.condition)
        else:
            fallback = self.next_of(task)
        true = self.target(task.on_success) if task.on_success is not None else fallback
        false = self.target(task.on_failure) if task.on_failure is not None else fallback
        branch = Branch(test, "pre", negate=negate, entry=True, label="decision")
        self.emit([Instr(str(k), ir.BRANCH, k, branch, (("true", true), ("false", false)))])

    # ------------------------------------------------------------ blocks

    def member(self, sid: int) -> Member:
        sub = self.tasks[sid]
        command = None if sub.command is None and sub.return_value is not None else self.command(sub, member=True)
        return Member(sid, command, sub.condition, sub.sleep, sub.return_value)

    def members(self, ids: tuple) -> tuple:
        return tuple(self.member(sid) for sid in ids if sid in self.tasks)

    def parallel(self, task: Task) -> None:
        k = task.id
        names = _Addresses(k)
        fork_addr, join_addr = names.take("fork"), names.take("join")
        fork = Fork(k, self.members(task.members), task.max_parallel or DEFAULT_MAX_PARALLEL, task.retry,
                    sequential=False)
        out = [Instr(fork_addr, ir.FORK, k, fork, (("join", join_addr),))]
        out.append(Instr(join_addr, ir.JOIN, k, Join(k, PARALLEL), ()))
        out.extend(self.block_route(task, names, out, PARALLEL))
        self.emit(out)

    def conditional(self, task: Task) -> None:
        k = task.id
        names = _Addresses(k)
        select = names.take("select")
        true_addr, false_addr, join_addr = names.take("true"), names.take("false"), names.take("join")
        out: list[Instr] = []
        edges = []
        for branch_name, ids, addr in (("TRUE", task.if_true, true_addr), ("FALSE", task.if_false, false_addr)):
            members = self.members(ids)
            if not members:   # only reachable with validation skipped: 2.2 stops here
                edges.append(self.terminal(ir.STOP_FAILURE))
                continue
            fork = Fork(k, members, 1, task.retry, sequential=True, branch=branch_name)
            out.append(Instr(addr, ir.FORK, k, fork, (("join", join_addr),)))
            edges.append(addr)
        selector = Branch(task.condition if task.condition is not None else FALSE, "pre", entry=True,
                          label="select branch")
        out.insert(0, Instr(select, ir.BRANCH, k, selector, (("true", edges[0]), ("false", edges[1]))))
        out.append(Instr(join_addr, ir.JOIN, k, Join(k, CONDITIONAL), ()))
        out.extend(self.block_route(task, names, out, CONDITIONAL))
        self.emit(out)

    def block_route(self, task: Task, names: _Addresses, out: list[Instr], kind: str) -> list[Instr]:
        """After the join: semantics.md §11 step 5-6, §12.6 (and decisions D12)."""
        k = task.id
        on_s = self.target(task.on_success) if task.on_success is not None else None
        on_f = self.target(task.on_failure) if task.on_failure is not None else None
        go_on = on_s or self.next_of(task)
        stop = on_f or self.terminal(ir.STOP_CONDITION)
        nxt = task.next
        test: object
        if task.success is not None:
            test = task.success
        elif nxt is None:
            if kind == CONDITIONAL and on_s is None and on_f is None:
                test = TRUE   # 2.2: a conditional block without next/success always continues
            else:
                test = ALL_SUCCESS
        elif nxt.kind == "never":
            test = None
            self.link_join(out, self.terminal(ir.STOP_NEVER))
            return []
        elif nxt.kind == "always":
            self.link_join(out, go_on)
            return []
        elif nxt.kind == "loop":
            target = self.terminal(ir.STOP_FATAL) if kind == PARALLEL else self.terminal(ir.STOP_CONDITION)
            self.link_join(out, target)
            return []
        elif nxt.kind == "condition":
            test = nxt.condition
        else:
            test = FALSE
        route = names.take("route")
        self.link_join(out, route)
        return [Instr(route, ir.BRANCH, k, Branch(test, "block", label="block result"),
                      (("true", go_on), ("false", stop)))]

    @staticmethod
    def link_join(out: list[Instr], addr: str) -> None:
        for i, instr in enumerate(out):
            if instr.kind == ir.JOIN:
                out[i] = Instr(instr.addr, instr.kind, instr.task, instr.op, (("next", addr),))


class _Addresses:
    """Hands out the addresses of one task's instructions: the first is the bare id."""

    def __init__(self, task: int) -> None:
        self.task = task
        self.first = True

    def take(self, part: str) -> str:
        if self.first:
            self.first = False
            return str(self.task)
        return f"{self.task}.{part}"
