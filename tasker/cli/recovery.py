"""Resuming a run from its recovery file (docs/command-line.md, D17): the app side.

``Recovery`` finds the state file of a task file, reads it before compiling
(so globals whose environment variables are gone can keep their saved values),
checks it belongs to this file and environment, restores it into the VM, and
describes it for ``--show-recovery-info``.  Every refusal is a clear message
and exit 12, never a traceback.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from tasker.check.model import Workflow
from tasker.cli.settings import Settings
from tasker.exitcodes import Exit, TaskerExit
from tasker.report.log import Log
from tasker.report.private import private_dir
from tasker.runners.guard import kill_journal
from tasker.vm import checkpoint
from tasker.vm.machine import Machine


class StateBusy(Exception):
    """Another live run holds the recovery state's lock; ``holder`` is what it wrote there."""

    def __init__(self, path: str, holder: str) -> None:
        super().__init__(path)
        self.path = path
        self.holder = holder


class StateLock:
    """An exclusive advisory lock on ``<state>.lock``, held for the life of a run.

    The kernel drops it when the process dies in any way, so a killed run never
    blocks the resume; while a run lives, a second run of the same task file
    cannot read or overwrite its state.
    """

    def __init__(self, state_path: str) -> None:
        self.path = state_path + ".lock"
        self.journal_path = state_path + ".procs"   # process groups of the run (runners.guard)
        self.fd: int | None = None

    def acquire(self) -> None:


        private_dir(os.path.dirname(self.path))
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise StateBusy(self.path, holder) from None
            # the holder before us may have removed the file between our open and our lock
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path, follow_symlinks=False))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        try:  # noqa: SIM105
            os.unlink(self.path)   # while still holding it: a waiter re-checks the inode
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def _read_holder(fd: int) -> str:
    try:
        return os.read(fd, 200).decode("utf-8", "replace").strip()
    except OSError:
        return ""


def discard_state(state_path: str, lock: StateLock | None) -> bool:
    """--discard-recovery: delete the saved state and its process list; True when there was a state.

    Process groups a killed earlier run left running are stopped first (their list goes with the
    state).  ``lock`` is the run's own lock when it keeps one; else the state is locked meanwhile."""
    own = lock is None
    if own:
        lock = lock_state(state_path)
    try:
        if own:
            kill_journal(lock.journal_path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock.journal_path)
        try:
            os.unlink(state_path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise TaskerExit(Exit.START_OR_RESUME, f"tasker: cannot delete the recovery state {state_path}: "
                                                   f"{exc.strerror}", reason="recovery") from None
        return True
    finally:
        if own:
            lock.release()


def lock_state(state_path: str) -> StateLock:
    """Take the state's lock or end the run with exit 25 (as --instance-check does)."""
    lock = StateLock(state_path)
    try:
        lock.acquire()
    except StateBusy as busy:
        who = f" ({busy.holder})" if busy.holder else ""
        raise TaskerExit(Exit.INSTANCE_RUNNING,
                         f"tasker: another run of this task file is running{who} and holds its recovery "
                         f"state {state_path}\n = help: wait for it to finish; a resume while it runs would "
                         "run its tasks twice", reason="instance") from None
    except OSError as exc:
        raise TaskerExit(Exit.START_OR_RESUME,
                         f"tasker: cannot write the recovery state in {os.path.dirname(lock.path)}: {exc.strerror}\n"
                         " = help: fix the directory's permissions (or pass -l DIR), or run without "
                         "--auto-recovery/--output-json", reason="recovery") from None
    return lock


class Recovery:
    """The recovery state of one task file."""

    def __init__(self, settings: Settings, log_base: str, log: Log) -> None:
        self.settings = settings
        self.path = checkpoint.state_path(log_base, settings.task_file)
        self.log = log
        self.data: dict | None = None
        self.problem: str | None = None
        if os.path.exists(self.path):
            try:
                self.data = checkpoint.load(self.path)
            except checkpoint.RecoveryError as exc:
                self.problem = str(exc)

    @property
    def present(self) -> bool:
        return self.data is not None or self.problem is not None

    def saved_env_globals(self) -> dict[str, str]:
        """Saved values of globals that came from the environment (for names now unset)."""
        if not self.data:
            return {}
        meta = self.data.get("global_vars_metadata") or {}
        values = self.data.get("global_vars") or {}
        return {n: str(values[n]) for n, m in meta.items()
                if isinstance(m, dict) and m.get("source") == "env" and n in values}

    # ------------------------------------------------------------ checks before resuming

    def check(self, workflow: Workflow, unset_env: dict[str, list[str]]) -> None:
        """Refuse (exit 12) a state that does not parse, or that belongs to another version of the file."""
        problem = self.unfit(workflow)
        if problem:
            raise TaskerExit(Exit.START_OR_RESUME, f"tasker: cannot resume: {problem}\n = help: restore the "
                             f"task file to resume; or start at a task by hand with --start-from=N; or pass "
                             f"--discard-recovery to delete the saved state {self.path} and start from the "
                             "beginning", reason="recovery")
        self.confirm_environment(workflow, unset_env)

    def unfit(self, workflow: Workflow) -> str:
        """Why the state cannot be resumed with this file ("" when it can)."""
        if self.problem:
            return f"{self.problem} (in {self.path})"
        try:
            checkpoint.check_task_file(self.data, self.path, self.settings.task_file, self.settings.content,
                                       workflow)
        except checkpoint.RecoveryError as exc:
            return str(exc)
        return ""

    def confirm_environment(self, workflow: Workflow, unset_env: dict[str, list[str]]) -> None:
        """Globals read from the environment that changed or vanished: ask (``-y`` answers yes)."""
        saved = self.data.get("global_vars") or {}
        changes = []
        for name, var in workflow.globals.items():
            if not var.from_env or name not in saved:
                continue
            if name in unset_env:
                changes.append(f"{name}: {', '.join('$' + v for v in unset_env[name])} is not set now; "
                               f"the saved value is used")
            elif str(saved[name]) != var.value:
                changes.append(f"{name}: was {saved[name]!r}, now {var.value!r}; the new value is used")
        if not changes:
            return
        for line in changes:
            self.log.warn(f"Recovery: {line}")
        if self.settings.yes:
            self.log.info("Continue recovery? [y/N]: y (--yes)")
            return
        try:
            answer = input("The environment changed since the failed run. Continue recovery? [y/N]: ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            raise TaskerExit(Exit.START_OR_RESUME, "tasker: recovery declined: the environment changed",
                             reason="recovery")

    # ------------------------------------------------------------ resuming

    def restore(self, machine: Machine) -> str:
        """Load the state into the machine; the address to resume at."""
        try:
            pc = checkpoint.restore(self.data, machine)
        except (checkpoint.RecoveryError, ValueError, TypeError, KeyError) as exc:
            raise TaskerExit(Exit.START_OR_RESUME, f"tasker: cannot resume from {self.path}: {exc}",
                             reason="recovery") from None
        state = machine.state
        state.resumed_from = self.path
        instr = machine.program.instrs[pc]
        where = f"task {instr.task}" if instr.task is not None else pc
        if state.rerun is not None:
            why = f"task {state.rerun} was running when the previous run stopped: it runs again"
        elif self.data.get("ending") in ("failure", "condition", "signal", "fatal", "missing_command", "error",
                                         "invalid_return", "nothing"):
            why = f"the previous run ended at {where} ({self.data.get('ending')}): it runs again"
        elif instr.kind == "fork":
            done = len(state.fork_done.get(instr.task, {}))
            why = f"block {instr.task} had {done} member(s) done: the others run now"
        else:
            why = f"continuing at {where}"
        self.log.info(f"Resuming from {self.path} ({len(state.path)} task(s) ran before): {why}")
        return pc

    def describe(self) -> str:
        """--show-recovery-info: what the state file holds and what a resume would do."""
        if not self.present:
            return f"No recovery state for {self.settings.task_file} (looked for {self.path})"
        if self.problem:
            return f"Recovery file {self.path} cannot be used: {self.problem}"
        d = self.data
        lines = [f"Recovery file: {self.path}",
                 f"  task file:       {d.get('task_file_path')}",
                 f"  written:         {d.get('created')} (updated {d.get('updated')})",
                 f"  execution path:  {d.get('execution_path')}",
                 f"  last successful: {d.get('last_successful_task')}"]
        failure = d.get("failure_info")
        if failure:
            lines.append(f"  failure:         task {failure.get('task_id')}, exit {failure.get('exit_code')}: "
                         f"{failure.get('error')}")
        try:
            checkpoint.check_task_file(d, self.path, self.settings.task_file, self.settings.content)
            nxt = d.get("intended_next_task")
            lines.append(f"A run with --auto-recovery would resume at task {nxt}." if nxt is not None
                         else "A run with --auto-recovery would resume where the state left off.")
        except checkpoint.RecoveryError as exc:
            lines.append(f"A resume would be refused: {exc}")
        return "\n".join(lines)
