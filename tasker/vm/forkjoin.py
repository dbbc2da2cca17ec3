"""Fork: run a block's members, in parallel or one after another, with retries.

Parallel blocks keep exactly ``max_parallel`` members running while work
remains (docs/flow.md; unlike TASKER 2.2 there is no hidden cap): a
dispatcher starts a thread per running member and waits for any to finish.
A member waiting for its retry delay does not hold a slot.  Conditional
branches run their members in the listed order, each result stored at once so
later members can read it.  On Ctrl-C/SIGTERM nothing new starts, the
runner kills the running members' process groups, and the fork returns what
finished.
"""

from __future__ import annotations

import heapq
import threading
from collections import deque
from typing import Any, Protocol

from tasker.check.model import HOSTNAMES_BASE
from tasker.ir import instructions as ir
from tasker.report.log import Log
from tasker.syntax.ast import Template
from tasker.vm.errors import Fatal
from tasker.vm.evaluate import PRE, evaluate
from tasker.vm.store import Record, ResultStore


class Machine(Protocol):
    """What a fork needs from the machine that runs it; the machine passes itself in.

    ``env`` is the machine's connection to the world (its ``clock``, ``cancel``,
    ``dry_run`` and ``checkpoint``); ``state.fork_done`` holds the members that
    finished, by block, so that a resumed run does not repeat them.
    """

    env: Any
    log: Log
    store: ResultStore
    state: Any

    def render(self, template: Template) -> str: ...

    def execute(self, command: ir.Command, display: str, *, main: bool) -> tuple[Record, str]: ...


class RetryPolicy:
    """How many attempts a member gets, and the pause between them (docs/flow.md, Retries)."""

    def __init__(self, attempts: int = 1, delay: float = 0.0) -> None:
        self.attempts = attempts
        self.delay = delay


def retry_policy(machine: Machine, fork: ir.Fork) -> RetryPolicy:
    retry = fork.retry
    if retry is None:
        return RetryPolicy()
    warn = machine.log.warn
    count = _resolve(machine, retry.count)
    if count is None:
        warn(f"Task {fork.block}: retry_count '{machine.render(retry.count)}' is not a number; retries disabled")
        return RetryPolicy()
    if not 1 <= count <= 1000:
        warn(f"Task {fork.block}: retry_count {count} is outside 1..1000; using 1")
        count = 1
    delay = _resolve(machine, retry.delay, number=True)
    if delay is None or not 0 <= delay <= 300:
        warn(f"Task {fork.block}: retry_delay is outside 0..300 seconds; using 1")
        delay = 1
    return RetryPolicy(1 + int(count), float(delay))


def _resolve(machine: Machine, value, number: bool = False):
    if isinstance(value, Template):
        value = machine.render(value).strip()
    try:
        return float(value) if number else int(str(value).strip())
    except (TypeError, ValueError):
        return None


def run_fork(machine: Machine, fork: ir.Fork) -> list[tuple[int, Record]]:
    """Run the members; return ``(id, record)`` pairs in completion order."""
    policy = retry_policy(machine, fork)
    done: dict[int, Record] = machine.state.fork_done.setdefault(fork.block, {})
    todo = [m for m in fork.members if m.task not in done]
    if fork.sequential:
        results = _sequential(machine, fork, todo, policy, done)
    else:
        width = max(1, min(fork.max_parallel, len(todo) or 1))
        machine.log.info(f"Task {fork.block}: Starting parallel execution of {len(fork.members)} tasks "
                         f"(max_parallel={fork.max_parallel})")
        results = _Parallel(machine, fork, todo, policy, width, done).run()
    ran_now = {sid for sid, _rec in results}
    finished = [(sid, rec) for sid, rec in done.items() if sid not in ran_now]   # by an earlier run
    return finished + results


def run_member(machine: Machine, fork: ir.Fork, member: ir.Member, attempt: int,
               policy: RetryPolicy) -> Record:
    """One attempt of one member (own gate, return gives a result, failure= ignored)."""
    display = f"{fork.block}-{member.task}"
    if policy.attempts > 1:
        display += f".{attempt}"
    if member.task >= HOSTNAMES_BASE and member.command is not None:   # a member of a hostnames= block
        display += f" [{member.command.hostname.literal()}]"
    if member.condition is not None and not machine.assumed(member.condition, False, display, "condition") \
            and not evaluate(member.condition, PRE, machine.render):
        machine.log.info(f"Task {display}: Condition false, skipping task")
        return Record(-1, "", "Task skipped due to condition", False, kind="skipped")
    if member.command is None:
        try:
            value = int((member.return_value or "").strip())
        except ValueError:
            return Record(1, "", f"Invalid return code: {member.return_value}", False, kind="return")
        return Record(value, "", f"Return task: {value}", value == 0, kind="return")
    record, _shown = machine.execute(member.command, display, main=False, block=fork.block, attempt=attempt)
    return record


def _needs_retry(record: Record, attempt: int, policy: RetryPolicy) -> bool:
    return not record.success and record.exit_code != 124 and attempt < policy.attempts


def _sleep_seconds(machine: Machine, member: ir.Member) -> float:
    if member.sleep is None or machine.env.dry_run:
        return 0.0
    try:
        return max(0.0, float(machine.render(member.sleep).strip()))
    except ValueError:
        return 0.0


def _sequential(machine: Machine, fork: ir.Fork, todo: list, policy: RetryPolicy,
                done: dict[int, Record]) -> list[tuple[int, Record]]:
    env = machine.env
    results: list[tuple[int, Record]] = []
    for member in todo:
        if env.cancel.is_set:
            break
        attempt = 1
        while True:
            record = run_member(machine, fork, member, attempt, policy)
            if not _needs_retry(record, attempt, policy) or env.cancel.is_set:
                break
            machine.events.retry_scheduled(task=member.task, block=fork.block, attempt=attempt,
                                           delay=0.0 if env.dry_run else policy.delay, exit_code=record.exit_code)
            attempt += 1
            if not env.dry_run:
                env.clock.sleep(policy.delay, env.cancel)
        if env.cancel.is_set:
            break                                # cut short: it runs again on a resume
        machine.store.put(member.task, record)   # visible to the next branch task at once
        done[member.task] = record
        results.append((member.task, record))
        if env.checkpoint is not None and not machine.save_checkpoint(None):
            break                                # the run stops: see Machine.save_checkpoint
        seconds = _sleep_seconds(machine, member)
        if seconds:
            env.clock.sleep(seconds, env.cancel)
    return results


class _Parallel:
    """Runs a parallel fork with ``width`` worker threads.

    Each worker takes the next member as soon as its previous one ends, so
    exactly ``width`` commands run while work remains.  A failed member that
    gets a retry waits in ``delayed`` until its retry_delay has passed, without
    holding a worker.
    """

    def __init__(self, machine: Machine, fork: ir.Fork, todo: list, policy: RetryPolicy, width: int,
                 done: dict[int, Record]) -> None:
        self.machine = machine
        self.env = machine.env
        self.fork = fork
        self.policy = policy
        self.width = width
        self.done = done
        self.pending = deque((m, 1) for m in todo)
        self.delayed: list = []      # heap of (ready time, seq, member, attempt)
        self.running = 0
        self.results: list[tuple[int, Record]] = []
        self.ready_at: list[float] = []
        self.seq = 0
        self.cond = threading.Condition()
        self.crash: BaseException | None = None   # a fault of the scheduling itself, raised in run()

    def run(self) -> list[tuple[int, Record]]:
        workers = [threading.Thread(target=self._worker, daemon=True, name=f"block-{self.fork.block}-{i}")
                   for i in range(self.width)]
        for worker in workers:
            worker.start()
        for worker in workers:
            while worker.is_alive():
                worker.join(0.5)   # short joins keep the main thread responsive to signals
        if self.crash is not None:
            raise self.crash
        self._wait_member_sleeps()
        return self.results

    def _worker(self) -> None:
        """A worker's life; a fault outside a member stops the others and goes to run()'s caller,
        instead of a thread's traceback on stderr and a block that waits for a dead worker."""
        try:
            self._work()
        except BaseException as exc:
            with self.cond:
                self.crash = self.crash or exc
                self.cond.notify_all()

    def _work(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            member, attempt = job
            try:
                record = run_member(self.machine, self.fork, member, attempt, self.policy)
            except Exception as exc:  # a member's crash is that member's failure, not the run's
                text = exc.message if isinstance(exc, Fatal) else f"{type(exc).__name__}: {exc}"
                record = Record(1, "", text, False)
            self._finish(member, attempt, record)

    def _next_job(self):
        clock, cancel = self.env.clock, self.env.cancel
        with self.cond:
            while True:
                if cancel.is_set or self.env.halt or self.crash is not None:
                    return None
                now = clock.monotonic()
                while self.delayed and self.delayed[0][0] <= now:
                    _t, _seq, member, attempt = heapq.heappop(self.delayed)
                    self.pending.append((member, attempt))
                if self.pending:
                    self.running += 1
                    return self.pending.popleft()
                if not self.delayed and not self.running:
                    self.cond.notify_all()
                    return None          # nothing left, and nothing running could add more
                wait = max(0.0, self.delayed[0][0] - now) if self.delayed else None
                clock.wait_on(self.cond, wait)

    def _finish(self, member, attempt: int, record: Record) -> None:
        with self.cond:
            self.running -= 1
            if self.env.cancel.is_set:
                pass                      # cut short by a signal: it runs again on a resume
            elif _needs_retry(record, attempt, self.policy):
                delay = 0.0 if self.env.dry_run else self.policy.delay
                self.machine.events.retry_scheduled(task=member.task, block=self.fork.block, attempt=attempt,
                                                    delay=delay, exit_code=record.exit_code)
                self.seq += 1
                heapq.heappush(self.delayed, (self.env.clock.monotonic() + delay, self.seq, member, attempt + 1))
            else:
                self.done[member.task] = record
                self.results.append((member.task, record))
                seconds = _sleep_seconds(self.machine, member)
                if seconds:
                    self.ready_at.append(self.env.clock.monotonic() + seconds)
                if self.env.checkpoint is not None:
                    self.machine.save_checkpoint(None)   # a failure sets env.halt: no new members
            self.cond.notify_all()

    def _wait_member_sleeps(self) -> None:
        """A member's sleep= keeps its result pending that long after it finished."""
        if self.ready_at and not self.env.cancel.is_set:
            wait = max(self.ready_at) - self.env.clock.monotonic()
            if wait > 0:
                self.env.clock.sleep(wait, self.env.cancel)
