"""The VM: fetch the instruction at pc, run it, store the result, follow an edge.

Everything with a side effect comes in through ``Env``: the runner that starts
processes, the clock that sleeps, the exec-type resolver, the log, the cancel
token and the checkpoint hook.  The machine's own state (``State``) is plain
data, so a checkpoint is that state written to disk and a resume is that state
read back into the same loop.
"""

from __future__ import annotations

import re

from tasker.check.security import exec_context, runtime_host_problem
from tasker.exitcodes import Exit
from tasker.ir import instructions as ir
from tasker.report.events import Events
from tasker.report.log import Log, show_output
from tasker.runners.base import Cancel, Runner, SystemClock
from tasker.runners.exectypes import ArgumentsError, ExecTypeError, ExecTypes
from tasker.runners.limits import too_long
from tasker.runners.output import Output
from tasker.syntax.condition import show
from tasker.vm.errors import CheckpointError, Fatal
from tasker.vm.evaluate import PRE, Context, evaluate, reads_results
from tasker.vm.forkjoin import run_fork
from tasker.vm.split import apply_split
from tasker.vm.store import Record, ResultStore

_STOPS = {
    ir.END: "the end of the workflow (no next task)",
    ir.STOP_FAILURE: "stop, the workflow failed",
    ir.STOP_NEVER: "stop, the workflow succeeded",
    ir.STOP_CONDITION: "stop, the condition to continue was not met",
    ir.STOP_FATAL: "stop, an unsupported construct was reached",
}
_ASSUMED = {"route": "next condition", "block result": "block condition", "decision": "decision condition",
            "select branch": "condition"}
COMMAND_LOG_LIMIT = 1000


def _shown_command(argv: list[str]) -> str:
    """The command line for the log: long ones (a substituted output ...) are cut."""
    text = " ".join(argv)
    if len(text) > COMMAND_LOG_LIMIT:
        return f"{text[:COMMAND_LOG_LIMIT]}... ({len(text)} chars)"
    return text


class Env:
    """The VM's connections to the world."""

    def __init__(self, *, runner: Runner, clock: SystemClock, exec_types: ExecTypes, log: Log,
                 cancel: Cancel, dry_run: bool = False, checkpoint=None, progress=None,
                 hosts: dict[str, str] | None = None, events: Events | None = None, steps=None) -> None:
        self.runner = runner
        self.steps = steps                # runs the tasks of Slurm exec types (runners/slurm.py), or None
        self.clock = clock
        self.exec_types = exec_types
        self.log = log
        self.cancel = cancel
        self.dry_run = dry_run
        self.checkpoint = checkpoint      # callable(machine, instr) after each instruction, or None
        self.progress = progress          # callable(event, **info) for the live progress line, or None
        self.hosts = hosts or {}          # host as written -> name host validation resolved it to
        self.events = events if events is not None else Events()   # run events (no sinks: nothing is built)
        self.halt = ""                    # why the run must stop (a checkpoint failed), "" while it may go on


class Ending:
    """How a run ended: a reason from the spec's end-of-run table and the exit code."""

    __slots__ = ("exit_code", "message", "reason")

    def __init__(self, reason: str, exit_code: int, message: str = "") -> None:
        self.reason = reason        # end never failure condition return fatal signal error
        self.exit_code = exit_code
        self.message = message

    @property
    def success(self) -> bool:
        return self.exit_code == 0 and self.reason in ("end", "never", "return")

    def __repr__(self) -> str:
        return f"Ending({self.reason}, {self.exit_code})"


class State:
    """The machine's mutable state: everything a checkpoint must hold besides the records."""

    def __init__(self) -> None:
        self.pc = ""
        self.path: list[int] = []          # execution_path: task ids in entry order (D15)
        self.steps = 0                     # top-level steps executed
        self.loops: dict[int, list] = {}   # task -> [remaining, iteration, entered]
        self.final_task: int | None = None
        self.final_host = ""
        self.final_command = ""
        self.final_exit: int | None = None
        self.final_success = False
        self.branch: dict[int, str] = {}   # conditional block -> TRUE/FALSE (for the join)
        self.members: dict[int, list] = {} # block -> [(sid, Record)] finished members
        self.fork_done: dict[int, dict] = {}  # block -> {sid: Record} (checkpointed progress)
        self.subtasks: dict[int, list[int]] = {}  # block -> members that ran, in completion order
        self.interrupted: int | None = None  # the task whose command a signal cut short
        self.resumed_from: str | None = None  # the recovery file this run resumed from
        self.in_flight: int | None = None     # the task whose command is running (for a crash resume)
        self.rerun: int | None = None         # after a crash resume: the task that runs again


class Machine:
    """Runs one ``ir.Program``."""

    def __init__(self, program: ir.Program, env: Env, store: ResultStore | None = None,
                 state: State | None = None) -> None:
        self.program = program
        self.env = env
        self.store = store or ResultStore()
        self.state = state or State()
        self.log = env.log
        self.events = env.events
        self.block_started: dict[int, float] = {}   # block -> when its fork began (for block_finished)
        self._handlers = {
            ir.EXEC: self._exec, ir.SKIP: self._skip, ir.BRANCH: self._branch, ir.LOOP: self._loop,
            ir.FORK: self._fork, ir.JOIN: self._join, ir.SLEEP: self._sleep, ir.RETURN: self._return,
            ir.STOP: self._stop,
        }

    # ------------------------------------------------------------ the loop

    def run(self, start: str | None = None) -> Ending:
        state = self.state
        state.pc = start or state.pc or self.program.start
        instrs = self.program.instrs
        cancel = self.env.cancel
        while True:
            if cancel.is_set:
                return self._signal_ending()
            instr = instrs[state.pc]
            try:
                outcome = self._handlers[instr.kind](instr)
            except Fatal as exc:
                if exc.reason == "checkpoint":
                    return self._halt_ending()   # logged where it failed
                self.log.error(exc.message)
                return Ending(exc.reason, exc.exit_code, exc.message)
            if isinstance(outcome, Ending):
                return outcome
            state.pc = outcome
            if self.env.checkpoint is not None and not self.save_checkpoint(instr):
                return self._halt_ending()

    def save_checkpoint(self, instr: ir.Instr | None) -> bool:
        """Write a checkpoint; False (once logged) when it failed and the run must stop.

        Called from block worker threads too: the first failure is logged and sets
        ``env.halt``, which stops new work everywhere; later calls do nothing, so the
        state on disk stays the last one written whole.
        """
        env = self.env
        if env.halt:
            return False
        try:
            env.checkpoint(self, instr)
        except CheckpointError as exc:
            if not env.halt:
                env.halt = str(exc)
                self.log.error(f"{exc}: stopping the run; the recovery state keeps the last checkpoint "
                               "written whole, and --auto-recovery resumes from it once there is space")
            return False
        return True

    def _halt_ending(self) -> Ending:
        self.state.final_success = False
        return Ending("checkpoint", Exit.FAILURE, self.env.halt)

    def _signal_ending(self) -> Ending:
        signum = self.env.cancel.signum
        name = {2: "SIGINT", 15: "SIGTERM"}.get(signum, f"signal {signum}")
        self.log.warn(f"Received {name}: stopped the running tasks and their processes")
        self.state.final_command += f" [GRACEFUL_SHUTDOWN_{name}]" if name.startswith("SIG") else ""
        self.state.final_success = False
        return Ending("signal", 128 + signum, f"interrupted by {name}")

    # ------------------------------------------------------------ helpers

    def enter(self, task: int) -> None:
        """The top-level flow enters ``task`` (execution_path, D15): once per loop activation."""
        loop = self.state.loops.get(task)
        if loop is not None:
            if loop[2]:
                return
            loop[2] = True
        self.state.path.append(task)

    def display(self, task: int) -> str:
        loop = self.state.loops.get(task)
        return f"{task}.{loop[1]}" if loop is not None else str(task)

    def render(self, template) -> str:
        if self.env.dry_run and template is not None:
            return template.literal()     # a dry run never guesses a result: placeholders stay as written
        return self.store.render(template)

    def assumed(self, cond: object, own: bool, display: str, what: str, holds: bool = True) -> bool:
        """In a dry run, a condition that reads a task's result is taken to hold (or, for
        ``failure=``, not to hold), and the assumption is printed; True when so assumed."""
        if not self.env.dry_run or not reads_results(cond, own):
            return False
        verb = "holds" if holds else "does not hold"
        self.log.info(f"Task {display}: [DRY RUN] assuming {what} '{show(cond)}' {verb}")
        return True

    def track(self, task: int, host: str, command: str, exit_code: int | None) -> None:
        s = self.state
        s.final_task, s.final_host, s.final_command, s.final_exit = task, host, command, exit_code

    def task_context(self, task: int, success_known: bool = True) -> Context:
        record = self.store.get(task)
        if record is None:
            return PRE
        return Context(record.exit_code, record.stdout, record.stderr,
                       record.success if success_known else None, record.counts)

    def block_context(self, block: int) -> Context:
        """What a plain condition in a block's ``next=`` sees: exit 0 when every member
        succeeded (else 1), a summary of the counts as stdout, the ids of the members that
        did not succeed as stderr.  The block's stored record keeps its own text."""
        record = self.store.get(block)
        if record is None or record.counts is None:
            return PRE
        succeeded, failed, total = record.counts
        # the record's stderr lists exactly the members that failed or timed out
        ids = sorted(int(n) for n in re.findall(r"\d+", record.stderr.text()))
        return Context(0 if succeeded == total else 1,
                       Output(f"Parallel execution summary: {succeeded} successful, {failed} failed"),
                       Output(f"Failed tasks: {ids}" if ids else ""), None, record.counts)

    # ------------------------------------------------------------ exec

    def _exec(self, instr: ir.Instr) -> str:
        command = instr.op.command
        task = command.task
        self.enter(task)
        self.state.steps += 1
        if self.env.checkpoint is not None:
            self.state.in_flight = task      # a crash from here on means: it may have run partly
            if not self.save_checkpoint(instr):
                raise Fatal("checkpoint", Exit.FAILURE, self.env.halt)
        record, shown = self.execute(command, self.display(task), main=True)
        self.state.in_flight = None
        if self.env.cancel.is_set and not self.env.dry_run:
            self.state.interrupted = task   # cut short: a resume runs it again
        self.store.put(task, record)
        self.track(task, record.hostname, shown, record.exit_code)
        self.state.final_success = record.success
        return instr.to("next")

    def execute(self, command: ir.Command, display: str, *, main: bool, block: int | None = None,
                attempt: int = 1) -> tuple[Record, str]:
        """Run one command (or simulate it in a dry run); return its record and the shown command.

        ``block`` and ``attempt`` say which block member and which try this is (for the run events).
        """
        env = self.env
        host = self.render(command.hostname)
        host = env.hosts.get(host, host)
        program = self.render(command.command)
        # a dry run shows placeholders as written; a real run inserts result values as data
        arguments = self.render(command.arguments) if env.dry_run else self.store.arguments(command.arguments)
        requested = self.render(command.exec) if command.exec is not None else None
        try:
            name = env.exec_types.requested(requested)
            canonical = env.exec_types.canonical(name)
            if env.dry_run and "@" in name:
                argv = [program, arguments] if arguments else [program]   # the type is known only at run time
            else:
                argv = env.exec_types.argv(canonical, host, program, arguments)
        except ExecTypeError as exc:
            raise Fatal("error", Exit.VALIDATION, f"Task {display}: {exc}") from None
        except ArgumentsError as exc:
            if not main:
                return Record(1, "", str(exc), False, hostname=host), program
            raise Fatal("error", Exit.FAILURE, f"Task {display}: {exc}") from None
        if canonical != "local":
            problem = self._host_problem(command, host, canonical)
            if problem:
                self.log.error(f"Task {display}: refused: {problem}")
                return Record(1, "", f"refused: {problem}", False, hostname=host), program
        shown = self.log.mask(_shown_command(argv))
        self._progress("start", task=command.task)
        loop = self.state.loops.get(command.task) if main else None
        fact = {"task": command.task, "display": display, "block": block, "exec_type": canonical,
                "attempt": attempt, "loop_round": loop[1] if loop is not None else None}
        self.events.task_started(host=host, command=shown, start=env.clock.now(), **fact)
        oversize = too_long(argv)
        if oversize is not None:
            record = self._oversize(command, display, host, oversize)
            self.events.task_finished(record, **fact)
            return record, shown
        if env.dry_run:
            self.log.info(f"Task {display}: [DRY RUN] Would execute [{name}]: {shown}")
            now = env.clock.now()
            record = Record(0, "", "", True, hostname=host, start=now, end=now)
            if main:
                record.success = self.judge(command, record, display)
            self._progress("done", task=command.task, success=record.success)
            self.events.task_finished(record, **fact)
            return record, shown
        self.log.info(f"Task {display}: Executing [{name}]: {shown}")
        task_timeout = self.render(command.timeout)     # "" when the task sets none
        warn = self.log.warn

        def timeout() -> float:
            return env.exec_types.timeout(task_timeout, canonical, lambda m: warn(f"Task {display}: {m}"))

        if env.steps is not None and env.steps.handles(canonical):
            result = env.steps.run(canonical, argv, timeout, env.cancel, display)
        else:
            result = env.runner.run(argv, timeout, env.cancel)
        record = Record(result.exit_code, result.stdout, result.stderr, False, hostname=host,
                        start=result.start, end=result.end)
        if result.not_found and main:
            self.events.task_finished(record, **fact)
            raise Fatal("missing_command", Exit.VALIDATION,
                        f"Task {display}: FATAL ERROR: Missing command: {program!r} was not found "
                        f"({result.error})")
        self.log_result(display, record, result)
        self.apply_splits(command, record)
        record.success = self.judge(command, record, display)
        self._progress("done", task=command.task, success=record.success)
        self.events.task_finished(record, **fact)
        return record, shown

    def _oversize(self, command: ir.Command, display: str, host: str, oversize: tuple) -> Record:
        """A task whose argv the operating system would refuse fails before it starts."""
        what, size, limit = oversize
        refs = [p for t in (command.command, command.arguments) if t is not None
                for p in t.parts if type(p) is not str and p.name in ("stdout", "stderr")]
        if refs:
            hint = ", ".join(f"@{r.task}_{r.name}_file@ instead of {r.written}" for r in refs)
        else:
            hint = "@N_stdout_file@ instead of @N_stdout@"
        message = (f"Task {display}: {what} is {size:,} bytes after substitution, over the operating "
                   f"system's limit of {limit:,} bytes; nothing was started. Pass large output as a "
                   f"file: {hint} gives the path of the file that holds it")
        self.log.error(message)
        now = self.env.clock.now()
        record = Record(1, "", message, False, hostname=host, start=now, end=now)
        self._progress("done", task=command.task, success=False)
        return record

    def _host_problem(self, command: ir.Command, host: str, canonical: str) -> str | None:
        dynamic = command.hostname is not None and not command.hostname.is_literal
        return runtime_host_problem(host, exec_context(canonical), dynamic)

    def log_result(self, display: str, record: Record, result) -> None:
        log = self.log
        if result.timed_out:
            log.warn(f"Task {display}: Timeout after {result.timeout:g} seconds")
        elif result.error:
            log.error(f"Task {display}: could not start: {result.error}")
        log.info(f"Task {display}: Exit code: {record.exit_code}")
        # The log reads only the head of each stream; the total it names is the whole output's.
        if record.stdout.size:
            suffix = " (spilled to disk)" if record.stdout.spilled else ""
            log.info(f"Task {display}: STDOUT: {show_output(record.stdout.head(400), size=record.stdout.size)}{suffix}")
        if record.stderr.size:
            log.info(f"Task {display}: STDERR: {show_output(record.stderr.head(400), size=record.stderr.size)}")
        if log.enabled("DEBUG"):
            for name, out in (("stdout", record.stdout), ("stderr", record.stderr)):
                if out.spilled:
                    log.debug(f"Task {display}: {name} spilled to {out.path} ({out.size} bytes)")

    def apply_splits(self, command: ir.Command, record: Record) -> None:
        if command.stdout_split is None and command.stderr_split is None:
            return
        for name in ("stdout", "stderr"):
            spec = getattr(command, f"{name}_split")
            if spec is not None:
                setattr(record, name, apply_split(getattr(record, name), spec))

    def judge(self, command: ir.Command, record: Record, display: str) -> bool:
        """Success of a task (docs/flow.md)."""
        if command.success is None and command.failure is None:
            return record.exit_code == 0
        ctx = Context(record.exit_code, record.stdout, record.stderr, None)
        if command.success is not None:
            if self.assumed(command.success, True, display, "success condition"):
                return True
            value = evaluate(command.success, ctx, self.render)
            self.log.info(f"Task {display}: Success condition '{show(command.success)}' evaluated to: {value}")
            return value
        if command.failure is not None:
            if self.assumed(command.failure, True, display, "failure condition", holds=False):
                return True
            failed = evaluate(command.failure, ctx, self.render)
            self.log.info(f"Task {display}: Failure condition '{show(command.failure)}' evaluated to: {failed}")
            return not failed
        return record.exit_code == 0

    def _progress(self, event: str, **info) -> None:
        if self.env.progress is not None:
            self.env.progress(event, **info)

    # ------------------------------------------------------------ skip, branch, loop

    def _skip(self, instr: ir.Instr) -> str:
        task = instr.op.task
        self.state.steps += 1
        self.store.put(task, Record(-1, "", "Task skipped due to condition", False, kind="skipped"))
        self.log.info(f"Task {self.display(task)}: Condition false, skipping task")
        # an active loop counter of this task stays as it is (docs/flow.md)
        return instr.to("next")

    def _branch(self, instr: ir.Instr) -> str:
        op: ir.Branch = instr.op
        task = instr.task
        if op.entry:
            self.enter(task)
            self.state.steps += 1
        if op.test == "success":
            record = self.store.get(task)
            value = bool(record and record.success)
        else:
            if self.assumed(op.test, op.context != "pre", self.display(task), _ASSUMED.get(op.label, "condition"),
                            holds=not op.negate):
                return self._routed(instr, op, True)
            if op.context == "pre":
                ctx = PRE
            elif op.context == "block":
                ctx = self.block_context(task)
            else:
                ctx = self.task_context(task)
            value = evaluate(op.test, ctx, self.render)
        if op.negate:
            value = not value
        return self._routed(instr, op, value)

    def _routed(self, instr: ir.Instr, op: ir.Branch, value: bool) -> str:
        target = instr.to("true" if value else "false") if len(instr.succ) > 1 else instr.succ[0][1]
        self._log_branch(instr, op, value, target)
        return target

    def _log_branch(self, instr: ir.Instr, op: ir.Branch, value: bool, target: str) -> None:
        task = self.display(instr.task)
        where = f"Task {target}" if target.isdigit() else _STOPS.get(target, target)
        if op.label == "condition":
            self.log.info(f"Task {task}: Condition '{show(op.test)}' evaluated to: {value}")
        elif op.label == "decision":
            self.log.info(f"Task {task}: DECISION - Evaluating conditions: {value} -> {where}")
        elif op.label == "select branch":
            self.log.info(f"Task {task}: Conditional block condition evaluated to: {value}")
        elif op.label in ("route", "block result"):
            what = "success" if op.test == "success" else f"'{show(op.test)}'"
            self.log.info(f"Task {task}: {what} is {value}: continuing with {where}")
        elif len(instr.succ) == 1:
            self.log.info(f"Task {task}: {op.label}: {where}")

    def _loop(self, instr: ir.Instr) -> str:
        op: ir.Loop = instr.op
        task = instr.task
        loops = self.state.loops
        if op.phase == "enter":
            if task not in loops:
                loops[task] = [op.count, 1, False]
            return instr.to("body")
        state = loops.get(task)
        if state is None:
            return instr.to("done")
        if self.env.dry_run:
            self.log.info(f"Task {self.display(task)}: [DRY RUN] a loop of {op.count} rounds: shown once")
            del loops[task]
            return instr.to("done")
        ctx = self.task_context(task, success_known=False)
        if op.until is not None and evaluate(op.until, ctx, self.render):
            self.log.info(f"Task {self.display(task)}: loop_break condition met, leaving the loop")
            del loops[task]
            return instr.to("done")
        if op.while_ is not None and not evaluate(op.while_, ctx, self.render):
            self.log.info(f"Task {self.display(task)}: loop condition no longer holds, leaving the loop")
            del loops[task]
            return instr.to("done")
        state[0] -= 1
        if state[0] > 0:
            state[1] += 1
            return instr.to("again")
        del loops[task]
        return instr.to("done")

    # ------------------------------------------------------------ blocks

    def _fork(self, instr: ir.Instr) -> str | Ending:
        fork: ir.Fork = instr.op
        block = fork.block
        if not fork.sequential:
            self.enter(block)
            self.state.steps += 1
        else:
            self.state.branch[block] = fork.branch
        self._progress("block", block=block, members=len(fork.members))
        self.block_started.setdefault(block, self.env.clock.now())
        results = run_fork(self, fork)
        if self.env.halt:   # a checkpoint failed during the block: its results cannot be kept
            raise Fatal("checkpoint", Exit.FAILURE, self.env.halt)
        self._progress("block_end", block=block)
        if self.env.cancel.is_set:
            return self._signal_ending()   # pc stays at the fork: a resume runs what did not finish
        self.state.members[block] = results
        return instr.to("join")

    def _join(self, instr: ir.Instr) -> str | Ending:
        if self.env.cancel.is_set:
            return self._signal_ending()
        op: ir.Join = instr.op
        block = op.block
        results = self.state.members.pop(block, [])
        self.state.fork_done.pop(block, None)
        self.state.subtasks[block] = [sid for sid, _record in results]
        if op.kind == "parallel":
            for sid, record in results:
                self.store.put(sid, record)
        total = len(results)
        ok = [sid for sid, r in results if r.success]
        timeouts = [sid for sid, r in results if not r.success and r.exit_code == 124]
        failed = [sid for sid, r in results if not r.success and r.exit_code != 124]
        head = (f"Parallel execution: {len(ok)}/{total} successful" if op.kind == "parallel" else
                f"Conditional {self.state.branch.get(block, 'TRUE')} branch: {len(ok)}/{total} successful")
        if timeouts:
            head += f", {len(timeouts)} timeout"
        if failed:
            head += f", {len(failed)} failed"
        errs = []
        if failed:
            errs.append(f"Failed tasks: {sorted(failed)}.")
        if timeouts:
            errs.append(f"Timeout tasks: {sorted(timeouts)}")
        all_ok = len(ok) == total
        record = Record(0 if all_ok else 1, head, " ".join(errs).strip(), all_ok,
                        hostname=op.kind, counts=(len(ok), total - len(ok), total), kind="block")
        self.store.put(block, record)
        self.track(block, op.kind, head, record.exit_code)
        self.state.final_success = all_ok
        self.log.info(f"Task {block}: {head}")
        end = self.env.clock.now()
        self.events.block_finished(block=block, kind=op.kind, succeeded=len(ok), failed=len(failed),
                                   timeouts=len(timeouts), total=total, start=self.block_started.pop(block, end),
                                   end=end)
        return instr.to("next")

    # ------------------------------------------------------------ sleep, return, stop

    def _sleep(self, instr: ir.Instr) -> str:
        op: ir.Sleep = instr.op
        text = self.render(op.seconds).strip()
        display = self.display(op.task)
        try:
            seconds = float(text)
        except ValueError:
            self.log.warn(f"Task {display}: sleep value '{text}' is not a number; not sleeping")
            return instr.to("next")
        if seconds > 0:
            if self.env.dry_run:
                self.log.info(f"Task {display}: [DRY RUN] Would sleep {seconds:g} seconds")
            else:
                self.log.info(f"Task {display}: Sleeping {seconds:g} seconds")
                self.env.clock.sleep(seconds, self.env.cancel)
        return instr.to("next")

    def _return(self, instr: ir.Instr) -> Ending:
        op: ir.Return = instr.op
        task = op.task
        if op.entry:
            self.enter(task)
            self.state.steps += 1
        try:
            value = int(op.value.strip())
        except ValueError:
            self.store.put(task, Record(1, "", f"Invalid return code: {op.value}", False, kind="return"))
            self.track(task, "N/A", "return", 1)
            self.state.final_success = False
            message = f"Task {task}: return value '{op.value}' is not a whole number"
            self.log.error(message)
            return Ending("invalid_return", Exit.INVALID_RETURN, message)
        if op.entry:
            self.store.put(task, Record(value, "", "", value == 0, kind="return"))
            self.track(task, "N/A", "return", value)
        self.state.final_success = value == 0
        self.log.info(f"Task {task}: Returning with exit code {value}")
        return Ending("return", value % 256, f"return={value}")

    def _stop(self, instr: ir.Instr) -> Ending:
        reason = instr.op.reason
        s = self.state
        if reason == "end":
            if s.steps == 0:
                return Ending("nothing", Exit.START_OR_RESUME, "no task was executed")
            return Ending("end", Exit.OK)
        if reason == "never":
            s.final_success = True
            return Ending("never", Exit.OK)
        if reason == "condition":
            s.final_success = False
            return Ending("condition", Exit.CONDITION_FAILED, "the condition to continue was not met")
        if reason == "fatal":
            s.final_success = False
            return Ending("fatal", Exit.FAILURE, f"Task {s.final_task}: a parallel block cannot loop (next=loop)")
        s.final_success = False
        code = s.final_exit if s.final_exit else 1
        return Ending("failure", code % 256, f"Task {s.final_task} failed")
