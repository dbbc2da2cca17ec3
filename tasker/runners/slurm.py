"""Slurm job steps: the runner of exec types configured with ``runner: slurm``.

Such a task runs as one job step, ``srun [options] -- COMMAND WORD ...``, where
the words are the task's arguments split exactly as ``exec=local`` splits them
(no shell anywhere).  ``hostname=NODE`` pins the step to that node
(``--nodelist``); ``hostname=any`` (or no hostname) lets Slurm place it.

What the template mechanism of other exec types cannot express lives here:

* every step gets a job name unique to this run (``tasker-RUNID-TASK-N``) and
  the task's timeout as its Slurm time limit (``--time``, whole minutes,
  rounded up), so the cluster ends the job even when tasker is gone;
* the command's stderr reaches tasker on its own pipe (srun writes it to its
  fd 3, ``--error=/dev/fd/3``) and srun's own messages ("task 0: Exited with
  exit code 3") go to a private file: stdout, stderr and the exit code are the
  command's own.  srun's own failures (no such partition, no resources) exit
  255 (``SLURM_EXIT_ERROR``) and their message becomes the task's stderr;
* when tasker stops a step (timeout, Ctrl-C, SIGTERM) it cancels the job with
  ``scancel --name`` before it kills its local srun, and once more after srun
  is gone (a job srun asked for while being stopped);
* a resume cancels what the previous attempt left on the cluster (its run id
  is in the recovery state), and host validation asks ``sinfo`` whether the
  named nodes exist and are up instead of asking the name resolver.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import subprocess
import tempfile
import threading

from tasker.runners.base import Cancel, RunResult
from tasker.runners.errors import ExecTypeError
from tasker.runners.exectypes import ExecType, ExecTypes
from tasker.runners.output import Output
from tasker.runners.process import ProcessRunner
from tasker.runners.srun import ANY_HOST, SlurmSettings, is_slurm

SRUN_FAILED = 255         # srun's exit code for its own failures (SLURM_EXIT_ERROR)
TOOL_TIMEOUT = 15.0       # time limit of one scancel / squeue / sinfo call
STOP_GRACE = 10.0         # after scancel: how long srun gets to see its step end before it is killed
NAME_PREFIX = "tasker-"
# sinfo's short node states in which a node takes new job steps; a '*' suffix (not
# responding) rules a node out, the power-saving suffixes (~ # ! %) do not.
USABLE_STATES = frozenset({"idle", "mix", "alloc", "comp", "plnd", "resv"})
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")     # kept out of job names


def new_run_id() -> str:
    """A short id for one attempt of a run: it names the attempt's Slurm jobs."""
    return os.urandom(4).hex()


def time_limit(seconds: float) -> int:
    """Slurm's ``--time`` in whole minutes, rounded up."""
    return max(1, math.ceil(seconds / 60))


class SlurmSteps:
    """Runs the tasks of Slurm exec types as job steps and cancels them when tasker stops them."""

    def __init__(self, runner: ProcessRunner, exec_types: ExecTypes, log=None, run_id: str | None = None) -> None:
        env = dict(runner.env) if runner.env is not None else {}
        key, value = (b"SLURM_EXIT_ERROR", b"255") if env and isinstance(next(iter(env)), bytes) \
            else ("SLURM_EXIT_ERROR", str(SRUN_FAILED))
        env[key] = value
        self.runner = ProcessRunner(runner.session, env=env)
        self.exec_types = exec_types
        self.log = log
        self.run_id = run_id or new_run_id()
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def handles(self, canonical: str) -> bool:
        return canonical != "local" and is_slurm(self.exec_types.config.types.get(canonical))

    def job_name(self, label: str) -> str:
        """``tasker-RUNID-TASK-N``: TASK from the task's label ("5", "5.2", "1-110003 [node7]")."""
        with self._lock:
            n = next(self._counter)
        task = _UNSAFE.sub("", label.split(" ", 1)[0])[:40] or "task"
        return f"{NAME_PREFIX}{self.run_id}-{task}-{n}"

    def run(self, canonical: str, argv: list[str], timeout, cancel: Cancel, label: str) -> RunResult:
        """Run one step; ``argv`` is ``step_argv``'s, ``timeout`` seconds or a function giving them."""
        settings = SlurmSettings(self.exec_types.config.types[canonical])
        seconds = float(timeout() if callable(timeout) else timeout)
        name = self.job_name(label)
        minutes = time_limit(seconds)
        step = [argv[0], f"--job-name={name}", f"--time={minutes}", "--error=/dev/fd/3", *argv[1:]]
        if self.log is not None:
            self.log.debug(f"Task {label}: Slurm job {name}, time limit {minutes} min")

        with tempfile.TemporaryFile() as messages:
            def stop(timed_out: bool) -> None:
                if timed_out:     # a timeout kills at once, as for a local task
                    self.cancel_job(settings, name, label, signal="KILL")
                # ends the job (Slurm sends SIGTERM, SIGKILL after KillWait), a pending one too
                self.cancel_job(settings, name, label)

            result = self.runner.run(step, seconds, cancel, messages_fd=messages.fileno(), on_stop=stop,
                                     stop_grace=STOP_GRACE)
            if result.timed_out or cancel.is_set:
                # ends the job for good, also one that srun asked for while it was being stopped
                self.cancel_job(settings, name, label)
            messages.seek(0)
            text = messages.read().decode("utf-8", "replace")
        return self.settle(result, text, label, stopped=result.timed_out or cancel.is_set)

    def settle(self, result: RunResult, messages: str, label: str, stopped: bool) -> RunResult:
        """srun's own messages: into the log, and into stderr when srun itself failed."""
        if result.not_found:
            # srun is missing: a failure of this task, not the "missing command" of exec=local
            result.not_found = False
            result.exit_code = 127
            return result
        text = messages.strip()
        if not text:
            return result
        failed = result.exit_code == SRUN_FAILED and not stopped
        if failed and result.stderr.size == 0 and result.stdout.size == 0:
            result.stderr = Output(text + "\n")
        if self.log is not None:
            say = self.log.warn if failed else self.log.debug
            for line in text.splitlines():
                say(f"Task {label}: {line}")
        return result

    def cancel_job(self, settings: SlurmSettings, name: str, label: str, signal: str | None = None) -> None:
        """``scancel`` the job of one step (pending or running), or send its step ``signal``;
        problems are logged, not raised."""
        how = [f"--signal={signal}"] if signal else []
        problem = _tool(settings.tool("scancel"), "--quiet", *how, f"--name={name}", *_user_filter())
        if self.log is not None:
            if problem:
                self.log.warn(f"Task {label}: scancel --name={name} failed: {problem}")
            else:
                what = f"sent SIG{signal} to" if signal else "cancelled"
                self.log.debug(f"Task {label}: {what} Slurm job {name}")

    def cancel_leftovers(self, run_id: str) -> int:
        """Cancel the jobs an earlier attempt (``run_id``) left in the queue; how many there were."""
        ids: set[str] = set()
        tools = {SlurmSettings(spec).tool("squeue"): SlurmSettings(spec).tool("scancel")
                 for spec in self.exec_types.config.types.values() if is_slurm(spec)}
        prefix = f"{NAME_PREFIX}{run_id}-"
        for squeue, scancel in tools.items():
            out, problem = _query(squeue, "--noheader", "--format=%i|%j", *_user_filter())
            if problem:
                if self.log is not None:
                    self.log.warn(f"Cannot list the Slurm jobs of the previous attempt: {problem}")
                continue
            found = [line.split("|", 1)[0] for line in out.splitlines()
                     if "|" in line and line.split("|", 1)[1].startswith(prefix)]
            if found:
                problem = _tool(scancel, "--quiet", *found)
                if problem and self.log is not None:
                    self.log.warn(f"scancel of the previous attempt's jobs failed: {problem}")
                ids.update(found)
        if not ids and self.log is not None:
            self.log.info(f"No Slurm job of the previous attempt (run {run_id}) is queued or running")
        if ids and self.log is not None:
            self.log.warn(f"Cancelled {len(ids)} Slurm job(s) still queued or running from the previous attempt "
                          f"(run {run_id}): {', '.join(sorted(ids, key=_job_order))}")
        return len(ids)


def uses_slurm(workflow, exec_types: ExecTypes) -> bool:
    """Some task of ``workflow`` may run through a Slurm exec type."""
    for task in workflow.tasks.values():
        if task.command is None:
            continue
        requested = task.exec.literal() if task.exec is not None else None
        if requested is not None and "@" in requested:
            if any(is_slurm(spec) for spec in exec_types.config.types.values()):
                return True     # the type is known only at run time
            continue
        canonical = exec_types.canonical(exec_types.requested(requested))
        if canonical != "local" and is_slurm(exec_types.config.types.get(canonical)):
            return True
    return False


# ----------------------------------------------------------------- host validation


class NodeTable:
    """What ``sinfo`` says about the cluster's nodes, asked once per exec type."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: dict[str, tuple[dict[str, tuple[str, set[str]]], str]] = {}

    def nodes(self, settings: SlurmSettings) -> tuple[dict[str, tuple[str, set[str]]], str]:
        """node -> (short state, partitions), or ({}, problem) when sinfo fails."""
        sinfo = settings.tool("sinfo")
        with self._lock:
            if sinfo not in self._tables:
                out, problem = _query(sinfo, "--noheader", "--Node", "--format=%N|%t|%R")
                table: dict[str, tuple[str, set[str]]] = {}
                for line in out.splitlines():
                    parts = line.strip().split("|")
                    if len(parts) == 3:
                        state, partitions = table.get(parts[0], (parts[1], set()))
                        partitions.add(parts[2])
                        table[parts[0]] = (state, partitions)
                self._tables[sinfo] = (table, problem)
            return self._tables[sinfo]

    def check(self, spec: ExecType, host: str) -> tuple[str, str] | None:
        """None when ``host`` can take steps of ``spec``; else ("dns"|"connection", why)."""
        try:
            settings = SlurmSettings(spec)
        except ExecTypeError as exc:
            return "connection", str(exc)
        table, problem = self.nodes(settings)
        if problem:
            return "connection", f"sinfo failed: {problem}"
        wanted = settings.partition
        if not host or host.lower() == ANY_HOST:
            states = [state for state, parts in table.values() if not wanted or wanted in parts]
            if not states:
                where = f"partition '{wanted}'" if wanted else "the cluster"
                return "connection", f"sinfo lists no node in {where}"
            if not any(_usable(state) for state in states):
                return "connection", f"no node is up ({', '.join(sorted(set(states)))})"
            return None
        if host not in table:
            return "dns", "not a node of the Slurm cluster (sinfo does not list it)"
        state, partitions = table[host]
        if wanted and wanted not in partitions:
            return "connection", f"node is not in partition '{wanted}' (it is in {', '.join(sorted(partitions))})"
        if not _usable(state):
            return "connection", f"node is not up (sinfo state: {state})"
        return None


def _usable(state: str) -> bool:
    base = state.rstrip("*~#!%$@^-")
    return base in USABLE_STATES and "*" not in state


# ----------------------------------------------------------------- the Slurm tools


def _user_filter() -> list[str]:
    """Only this user's jobs (root could otherwise cancel anybody's)."""
    try:
        import pwd

        return [f"--user={pwd.getpwuid(os.getuid()).pw_name}"]
    except (ImportError, KeyError):
        return []


def _query(*argv: str) -> tuple[str, str]:
    """(stdout, problem) of a Slurm client command; problem is "" when it worked."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL,
                              timeout=TOOL_TIMEOUT, start_new_session=True)
    except FileNotFoundError:
        return "", f"{argv[0]} is not installed (not on PATH)"
    except subprocess.TimeoutExpired:
        return "", f"{argv[0]} gave no answer within {TOOL_TIMEOUT:g} s"
    except OSError as exc:
        return "", f"cannot start {argv[0]}: {exc.strerror}"
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        return "", f"{argv[0]} exited {done.returncode}" + (f": {lines[-1]}" if lines else "")
    return done.stdout, ""


def _tool(*argv: str) -> str:
    return _query(*argv)[1]


def _job_order(job: str) -> tuple[int, str]:
    head = job.split("_", 1)[0]
    return (int(head), job) if head.isdigit() else (0, job)
