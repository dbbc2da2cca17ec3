"""Lowering: the checked ``Workflow`` -> an ``ir.Program`` (docs/flow.md).

Every routing rule of the spec becomes an explicit edge here, so the VM has
no routing logic of its own: it evaluates the operand of an instruction and
follows the edge named by the outcome.  The default successor of task k is
k+1 *by number*, resolved now: if k+1 is not a task, the edge goes to ``end``.
"""

from __future__ import annotations

from tasker.check.model import CONDITIONAL, DECISION, NORMAL, PARALLEL, RETURN, Task, Workflow
from tasker.ir import instructions as ir
from tasker.ir.instructions import Branch, Command, Exec, Fork, Instr, Join, Loop, Member, Return, Skip, Sleep, Stop
from tasker.syntax.ast import Keyword, Multi, Next

DEFAULT_MAX_PARALLEL = 8
_SUCCESS_ROUTE = Branch("success", "task", label="route")
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


def task_graph(workflow: Workflow, options: LowerOptions | None = None) -> dict[int, list[int]]:
    """Main-flow task id -> the task ids the flow can continue at (ends dropped).

    Built by the same routing rules as the program's instructions, without
    building the instructions: what the data-flow analysis reads.
    """
    lowerer = _Lowerer(workflow, options or LowerOptions())
    ids = {addr: tid for tid, addr in lowerer.addr.items()}
    tasks = workflow.tasks
    return {tid: [ids[t] for t in lowerer.flow(tasks[tid]) if t in ids] for tid in lowerer.main}


def _loops(task: Task) -> bool:
    """``next=loop`` with ``loop=N``: the task repeats (without loop= it is a false condition)."""
    return task.loop is not None and isinstance(task.next, Next) and task.next.kind == "loop"


class _Lowerer:
    def __init__(self, workflow: Workflow, options: LowerOptions) -> None:
        self.wf = workflow
        self.tasks = workflow.tasks
        self.opts = options
        self.main = [tid for tid, t in self.tasks.items() if t.parent is None]
        self.addr = {tid: str(tid) for tid in self.main}   # entry address of every main-flow task
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
        found = self.addr.get(tid)
        if found is not None:
            return found
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
        return Command(task.id, task.hostname, task.command, task.arguments, task.exec, task.timeout,
                       task.stdout_split, task.stderr_split, task.success, None if member else task.failure)

    # ------------------------------------------------------------ normal tasks

    def normal(self, task: Task) -> None:
        """[loop.enter] [gate] exec [sleep] (return | loop.next | route) [skip], each created once."""
        k = task.id
        if task.condition is None and task.sleep is None and task.return_value is None and task.loop is None:
            base = self.addr[k]   # the common case: exec and route
            route = f"{base}.route"
            self.entries[k] = base
            self.instrs[base] = Instr(base, ir.EXEC, k, Exec(self.command(task)), (("next", route),))
            self.instrs[route] = self.route(task, route)
            return
        looping = _loops(task)
        gated = task.condition is not None
        parts = ["loop.enter"] if looping else []
        if gated:
            parts.append("gate")
        parts.append("exec")
        if task.sleep is not None:
            parts.append("sleep")
        parts.append("return" if task.return_value is not None else ("loop.next" if looping else "route"))
        base = str(k)
        addr = [base] + [f"{base}.{p}" for p in parts[1:]]
        skip = f"{base}.skip" if gated else None
        body = addr[1] if looping else addr[0]
        out: list[Instr] = []
        last = len(parts) - 1
        for i, part in enumerate(parts):
            here = addr[i]
            nxt = addr[i + 1] if i < last else None
            if part == "exec":
                out.append(Instr(here, ir.EXEC, k, Exec(self.command(task)), (("next", nxt),)))
            elif part == "gate":
                out.append(Instr(here, ir.BRANCH, k, Branch(task.condition, "pre", label="condition"),
                                 (("true", nxt), ("false", skip))))
            elif part == "loop.enter":
                out.append(Instr(here, ir.LOOP, k, Loop("enter", task.loop), (("body", nxt),)))
            elif part == "sleep":
                out.append(Instr(here, ir.SLEEP, k, Sleep(k, task.sleep), (("next", nxt),)))
            elif part == "return":
                out.append(Instr(here, ir.RETURN, k, Return(k, task.return_value, entry=False), ()))
            elif part == "loop.next":
                op = Loop("next", task.loop, task.loop_break, task.next.condition)
                out.append(Instr(here, ir.LOOP, k, op, (("again", body), ("done", self.continue_target(task)))))
            else:
                out.append(self.route(task, here))
        if skip is not None:
            out.append(Instr(skip, ir.SKIP, k, Skip(k), (("next", self.next_of(task)),)))
        self.emit(out)

    def continue_target(self, task: Task) -> str:
        return self.target(task.on_success) if task.on_success is not None else self.next_of(task)

    def route_rule(self, task: Task) -> tuple:
        """The routing of docs/flow.md: ``(test, label, ((outcome, target), ...))``."""
        nxt = task.next
        on_s = self.target(task.on_success) if task.on_success is not None else None
        on_f = self.target(task.on_failure) if task.on_failure is not None else None
        if nxt is None:
            if on_s is None and on_f is None:
                fail = self.next_of(task) if self.opts.fire_and_forget else self.terminal(ir.STOP_FAILURE)
                true, false = self.next_of(task), fail
            elif on_f is None:
                true, false = on_s, self.terminal(ir.STOP_CONDITION)
            elif on_s is None:
                true, false = self.next_of(task), on_f
            else:
                true, false = on_s, on_f
            return "success", "route", (("true", true), ("false", false))
        if nxt.kind == "never":
            return TRUE, "next=never", (("true", self.terminal(ir.STOP_NEVER)),)
        if nxt.kind == "always":
            return TRUE, "next=always", (("true", on_s or self.next_of(task)),)
        # a condition; `loop` without loop= and numeric next= evaluate as false conditions
        test = nxt.condition if nxt.kind == "condition" else FALSE
        return test, "route", (("true", on_s or self.next_of(task)), ("false", on_f or self.terminal(ir.STOP_FAILURE)))

    def route(self, task: Task, addr: str) -> Instr:
        test, label, edges = self.route_rule(task)
        if test == "success":
            branch = _SUCCESS_ROUTE
        else:
            branch = Branch(test, "task", label=label)
        return Instr(addr, ir.BRANCH, task.id, branch, edges)

    # ------------------------------------------------------------ return-only, decision

    def return_only(self, task: Task) -> None:
        """[gate] return [skip]; ``return_value`` is always set on a task without a command."""
        k = task.id
        names = _Addresses(k)
        out: list[Instr] = []
        if task.condition is not None:
            gate = names.take("gate")
            ret = names.take("return")
            skip = names.take("skip")
            out.append(Instr(gate, ir.BRANCH, k, Branch(task.condition, "pre", label="condition"),
                             (("true", ret), ("false", skip))))
            out.append(Instr(ret, ir.RETURN, k, Return(k, task.return_value), ()))
            out.append(Instr(skip, ir.SKIP, k, Skip(k), (("next", self.next_of(task)),)))
        else:
            out.append(Instr(str(k), ir.RETURN, k, Return(k, task.return_value), ()))
        self.emit(out)

    def decision(self, task: Task) -> None:
        k = task.id
        test, negate, edges = self.decision_rule(task)
        branch = Branch(test, "pre", negate=negate, entry=True, label="decision")
        self.emit([Instr(str(k), ir.BRANCH, k, branch, edges)])

    def decision_rule(self, task: Task) -> tuple:
        """docs/flow.md (and D13): ``(test, negate, edges)``."""
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
        return test, negate, (("true", true), ("false", false))

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
        """The join's edge and the block's route (if the continuation depends on the result)."""
        test, edges = self.block_rule(task, kind)
        if test is None:
            self.link_join(out, edges[0][1])
            return []
        route = names.take("route")
        self.link_join(out, route)
        return [Instr(route, ir.BRANCH, task.id, Branch(test, "block", label="block result"), edges)]

    def block_rule(self, task: Task, kind: str) -> tuple:
        """After the join (docs/flow.md, D12): ``(test or None, edges)``."""
        on_s = self.target(task.on_success) if task.on_success is not None else None
        on_f = self.target(task.on_failure) if task.on_failure is not None else None
        go_on = on_s or self.next_of(task)
        stop = on_f or self.terminal(ir.STOP_CONDITION)
        nxt = task.next
        if task.success is not None:
            test: object = task.success
        elif nxt is None:
            # 2.2: a conditional block without next/success always continues
            test = TRUE if kind == CONDITIONAL and on_s is None and on_f is None else ALL_SUCCESS
        elif nxt.kind == "never":
            return None, (("next", self.terminal(ir.STOP_NEVER)),)
        elif nxt.kind == "always":
            return None, (("next", go_on),)
        elif nxt.kind == "loop":
            return None, (("next", self.terminal(ir.STOP_FATAL if kind == PARALLEL else ir.STOP_CONDITION)),)
        elif nxt.kind == "condition":
            test = nxt.condition
        else:
            test = FALSE
        return test, (("true", go_on), ("false", stop))

    def flow(self, task: Task) -> list[str]:
        """Every address the flow can continue at after ``task`` (the same rules as its instructions)."""
        kind = task.kind
        if kind == NORMAL and task.condition is None and task.loop is None and task.return_value is None:
            return [target for _outcome, target in self.route_rule(task)[2]]
        out: list[str] = []
        if task.condition is not None and kind not in (PARALLEL, CONDITIONAL, DECISION):
            out.append(self.next_of(task))   # skipped by condition=
        if kind in (PARALLEL, CONDITIONAL):
            out.extend(t for _o, t in self.block_rule(task, kind)[1])
        elif kind == DECISION:
            out.extend(t for _o, t in self.decision_rule(task)[2])
        elif kind == RETURN or task.return_value is not None:
            pass
        elif _loops(task):
            out.append(self.continue_target(task))
        else:
            out.extend(t for _o, t in self.route_rule(task)[2])
        return out

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
