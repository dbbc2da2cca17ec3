"""The program's phases (docs/flow.md), from merged settings to an exit code.

This is glue: it calls the stages in order (parse, check, lower, validate
hosts, run, report) and maps each ending to the exit code the spec gives.
Every ending passes through ``Run.conclude``, which writes the JSON summary,
the recovery state, the project row and the alert; ``Run.cleanup`` then
removes spill files and releases the lock and the signal handlers.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import signal
import sys
import time

from tasker import __version__
from tasker.check.checker import CheckOptions, compile_workflow
from tasker.check.dataflow import analyze
from tasker.check.model import Workflow
from tasker.cli.hostcheck import HostValidation
from tasker.cli.options import OUTPUT_JSON_AUTO, USAGE
from tasker.cli.recovery import Recovery, discard_state, lock_state
from tasker.cli.settings import Settings
from tasker.diagnostics import Diagnostics, render, summary
from tasker.exitcodes import Exit, TaskerExit
from tasker.history.recorder import Recorder, choose_target, close_wait
from tasker.ir.hosts import reused_hosts
from tasker.ir.instructions import Program
from tasker.ir.lower import DEFAULT_MAX_PARALLEL, LowerOptions, lower
from tasker.ir.plan import render_plan
from tasker.report import files
from tasker.report.alert import prepare, run_alert
from tasker.report.events import Events, JsonLinesSink, ListSink
from tasker.report.instance import InstanceBusy, InstanceLock, instance_hash, lock_info
from tasker.report.json_out import build, default_path, write_atomic
from tasker.report.log import Log
from tasker.report.masking import Masker
from tasker.report.otel import sink_from_environment
from tasker.report.private import probe_dir
from tasker.report.progress import Progress, wanted
from tasker.report.summary import append_row, summary_path
from tasker.runners.base import Cancel, SystemClock
from tasker.runners.exectypes import TIMEOUT_MAX, TIMEOUT_MIN, ExecTypes
from tasker.runners.guard import Guard, kill_journal
from tasker.runners.process import ProcessRunner, Session, ensure_open_files
from tasker.runners.slurm import SlurmSteps, uses_slurm
from tasker.runners.ssh import Connections
from tasker.syntax.taskfile import parse_taskfile
from tasker.vm.checkpoint import CheckpointError, CheckpointStore, final_checkpoint, state_path
from tasker.vm.machine import Ending, Env, Machine


class Interrupted(Exception):
    """A signal arrived before the VM started."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def print_diagnostics(diags: Diagnostics, settings: Settings, stream=None) -> None:
    """Render every diagnostic like a compiler, on stderr, in file order."""
    if not diags.items:
        return
    stream = stream or sys.stderr
    lines = settings.text.split("\n")
    for diag in diags.sorted():
        print(render(diag, lines, settings.task_file), file=stream)
    print(f"{settings.task_file}: {summary(diags)}", file=stream)


def warn_flags(settings: Settings) -> None:
    """Phase P1: one warning per active skip flag (before logging starts)."""
    for message in settings.file_warnings:
        print(message, file=sys.stderr)
    notes = (
        ("skip_validation", "Skipping ALL validation: task, host, command and security checks are off"),
        ("skip_task_validation", "Skipping task validation"),
        ("skip_host_validation", "Skipping host validation can lead to connection failures!"),
        ("skip_security_validation", "Skipping security validation of commands, arguments and host names"),
        ("skip_command_validation", "Skipping the check that exec-type programs exist"),
        ("fire_and_forget", "Fire-and-forget: failing tasks without routing will not stop the workflow"),
    )
    for name, text in notes:
        if getattr(settings, name):
            print(f"WARNING: {text}")
    if settings.force_instance and not settings.instance_check:
        print("WARNING: --force-instance has no effect without --instance-check")
    if (settings.plan_format or settings.plan_output) and not settings.show_plan:
        print("WARNING: --plan-format and --plan-output have no effect without --show-plan")
    timeout = settings.timeout
    if timeout is not None and not TIMEOUT_MIN <= timeout <= TIMEOUT_MAX:
        bounded = min(max(timeout, TIMEOUT_MIN), TIMEOUT_MAX)
        print(f"WARNING: -o/--timeout {timeout} is outside {TIMEOUT_MIN}..{TIMEOUT_MAX} s; "
              f"tasks without their own timeout= get {bounded} s")


class Run:
    """One invocation: the settings, the log, and what the phases produced so far."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.log = Log(settings.log_level)
        # The run's facts: the VM and the phases report here; sinks write the events file,
        # the timeline of --output-json, OpenTelemetry spans.  The log's masking applies to all.
        self.events = Events(mask=self.log.mask, warn=self.log.warn)
        self.timeline: ListSink | None = None
        self.events_finished = False
        self.cancel = Cancel()
        self.session = None
        self.workflow: Workflow | None = None
        self.program: Program | None = None
        self.machine: Machine | None = None
        self.exec_types = None
        self.started = time.time()
        self.vm_started: float | None = None
        self.log_base = ""
        self.json_path: str | None = None
        self.in_vm = False
        self._old_handlers: dict = {}
        self.alert_script: str | None = None
        self.recovery = None        # tasker.cli.recovery.Recovery
        self.progress = None        # tasker.report.progress.Progress (on a terminal)
        self.checkpoints = None     # tasker.vm.checkpoint.CheckpointStore
        self.instance_lock = None
        self.state_lock = None      # tasker.cli.recovery.StateLock while a run owns its recovery state
        self.guard = Guard()        # the commands' process groups die with tasker
        self.hosts: dict[str, str] = {}   # host validation's resolved names, for the VM
        self.steps = None           # tasker.runners.slurm.SlurmSteps
        self.connections = None     # tasker.runners.ssh.Connections: ssh masters, closed in cleanup

    # ------------------------------------------------------------ signals

    def install_signals(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread (embedded use)
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    def restore_signals(self) -> None:
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, _frame) -> None:
        self.cancel.set(signum)
        if not self.in_vm:
            raise Interrupted(signum)

    # ------------------------------------------------------------ phases

    def execute(self) -> int:
        s = self.settings
        warn_flags(s)
        self.prepare_files()                                     # P1-P2
        self.open_events()
        self.prepare_alert()
        if s.recovery and s.run and not s.validate_only and not s.show_recovery_info:
            self.state_lock = lock_state(state_path(self.log_base, s.task_file))   # before reading it
            self.adopt_journal()
        if s.discard_recovery:
            self.discard_recovery()
        if s.recovery or s.show_recovery_info:
            self.recovery = Recovery(s, self.log_base, self.log)
        if s.show_recovery_info:                                 # P3
            print(self.recovery.describe())
            return Exit.OK
        self.compile()                                           # P4-P5
        if s.show_plan or not s.validate_only or s.output_json:
            self.lower()
        if s.show_plan and not self.confirm_plan():              # P6
            return Exit.OK
        self.check_start_from()                                  # P7
        self.validate_hosts()                                    # P9
        if s.validate_only:                                      # P10
            self.log.info("Validation complete: the task file is valid")
            return Exit.OK
        self.take_instance_lock()                                # P11
        return self.run_vm()                                     # P12-P14

    def discard_recovery(self) -> None:
        """--discard-recovery: delete this task file's saved state (real runs only), then start afresh."""
        s = self.settings
        if not s.run or s.validate_only or s.show_recovery_info:
            self.log.warn("--discard-recovery has no effect without a real run (-r, no --validate-only)")
            return
        path = state_path(self.log_base, s.task_file)
        if discard_state(path, self.state_lock):
            self.log.info(f"--discard-recovery: deleted the recovery state {path}; starting from the beginning")
        else:
            self.log.info(f"--discard-recovery: there was no recovery state ({path})")

    def adopt_journal(self) -> None:
        """Kill what a killed earlier run of this state left running, then journal our own commands."""
        path = self.state_lock.journal_path
        hit = kill_journal(path)
        if hit:
            self.log.warn(f"Stopped {hit} process group(s) that a killed earlier run left running")
        try:
            self.guard.open_journal(path)
        except OSError as exc:
            self.log.warn(f"cannot write the process journal {path}: {exc.strerror}")

    def prepare_alert(self) -> None:
        if self.settings.alert_on_failure:
            self.alert_script = prepare(self.settings.alert_on_failure, self.log.warn)

    def prepare_files(self) -> None:
        """P1-P2: log directory, log file and task-file backup (real runs), exec types, JSON path."""
        s = self.settings
        self.log_base = files.log_base(s.log_dir, s.environ)
        if s.output_json:
            self.json_path = default_path(s.task_file, s.environ) if s.output_json == OUTPUT_JSON_AUTO \
                else os.path.abspath(s.output_json)
            if not s.auto_recovery:
                self.log.info(f"--output-json turns on --auto-recovery: state in "
                              f"{state_path(self.log_base, s.task_file)}")
            if s.output_json == OUTPUT_JSON_AUTO:
                self.log.info(f"--output-json writes the JSON summary to {self.json_path}")
        self.exec_types = ExecTypes(explicit_config=s.exec_config, cli_type=s.type, cli_timeout=s.timeout,
                                    environ=s.environ, warn=lambda m: print(m, file=sys.stderr))
        if s.type is not None:
            self.check_type_option()
        if not s.run or s.validate_only:
            return
        stamp = files.timestamp(self.started)
        try:
            files.make_dir(os.path.join(self.log_base, "log"))
        except OSError as exc:
            raise TaskerExit(Exit.FAILURE, f"tasker: cannot create log directory {self.log_base}/log: "
                                           f"{exc.strerror}", reason="usage") from None
        log_path = os.path.join(self.log_base, "log", f"{files.prefix_of(s.task_file)}_{stamp}.log")
        try:
            self.log.open(log_path)
        except OSError as exc:
            raise TaskerExit(Exit.FAILURE, f"tasker: cannot open log file {log_path}: {exc.strerror}",
                             reason="usage") from None
        self.log.info(f"=== Task Execution Start: {time.strftime('%d%b%y_%H%M%S')} ===")
        self.log.info(f"# Task file: {s.task_file}")
        if not s.no_task_backup:
            try:
                files.backup_task_file(self.log_base, s.task_file, s.content, stamp)
            except OSError as exc:
                self.log.warn(f"could not back up the task file: {exc}")

    def open_events(self) -> None:
        """Connect the event sinks the settings ask for, then report that the run started."""
        s = self.settings
        if self.json_path:
            self.timeline = ListSink(TIMELINE_EVENTS)
            self.events.add(self.timeline)
        if s.events:

            try:
                self.events.add(JsonLinesSink(os.path.abspath(s.events)))
            except OSError as exc:
                raise TaskerExit(Exit.FAILURE, f"tasker: cannot write the events file {s.events}: {exc.strerror}",
                                 reason="usage") from None
        self.add_history_sink()
        if any(name.startswith("OTEL_") for name in s.environ):

            otel = sink_from_environment(s.environ, self.log.warn)
            if otel is not None:
                self.events.add(otel)
        self.events.run_started(task_file=os.path.abspath(s.task_file),
                                execution_id=hashlib.sha256(s.content).hexdigest()[:8], dry_run=not s.run,
                                log_file=self.log.path, start=self.started)

    def add_history_sink(self) -> None:
        """Real runs are recorded in the run history (unless --no-history)."""
        s = self.settings
        if not s.run or s.no_history or s.validate_only:
            return

        self.events.add(Recorder(choose_target(s.history_db, s.environ), warn=self.log.warn, content=s.content,
                                 project=s.project, version=__version__, close_wait=close_wait(s.environ)))

    def check_type_option(self) -> None:
        names = self.exec_types.config.names()
        if self.settings.type.strip().lower() not in names and \
                self.exec_types.canonical(self.settings.type) not in names:
            choices = ", ".join(repr(n) for n in names)
            raise TaskerExit(Exit.USAGE, f"{USAGE}\ntasker: error: argument -t/--type: "
                                         f"invalid choice: {self.settings.type!r} (choose from {choices})",
                             reason="usage")

    def compile(self) -> None:
        """P4-P5: parse and check the task file; exit 20/24 on failure."""
        with _no_gc():
            self._compile()

    def _compile(self) -> None:
        s = self.settings
        tree = parse_taskfile(s.text, s.task_file)
        saved = self.recovery.saved_env_globals() if self.recovery is not None and s.recovery else {}
        options = CheckOptions(validate=s.validate_tasks, security=s.validate_security,
                               strict_env=s.strict_env_validation,
                               subtask_range=not s.skip_subtask_range_validation, environ=s.environ,
                               saved_globals=saved, exec_types=self.exec_types,
                               unresolved_hosts=s.validate_hosts and not s.skip_unresolved_host_validation)
        workflow, diags = compile_workflow(tree, options)
        if s.validate_tasks and not diags.has_errors() and workflow.reads_results():
            start = s.start_from if s.start_from in workflow.tasks else None
            diags.extend(analyze(workflow, tree, LowerOptions(fire_and_forget=s.fire_and_forget), start).items)
        print_diagnostics(diags, s)
        if diags.has_errors():
            count = len(diags.errors)
            self.log.error(f"Task file validation failed: {count} error{'s' if count != 1 else ''} "
                           f"in {s.task_file}")
            raise TaskerExit(Exit.VALIDATION, reason="validation")
        if not workflow.tasks:
            self.log.error(f"No tasks defined in {s.task_file}")
            raise TaskerExit(Exit.NO_TASKS, reason="no_tasks")
        self.workflow = workflow
        self.log.masker = Masker.for_globals(workflow.globals)
        if s.validate_tasks:
            self.log.info(f"Task validation passed: {_task_count(workflow)}")

    def lower(self) -> None:
        with _no_gc():
            self.program = lower(self.workflow, LowerOptions(fire_and_forget=self.settings.fire_and_forget))

    def confirm_plan(self) -> bool:
        """P6: print the plan; only y/yes proceeds (-y answers yes)."""
        text = render_plan(self.program, self.settings)
        if text is not None:
            print(text)
        if self.settings.yes:
            print("Proceed with execution? [y/N]: y (--yes)")
            return True
        while True:
            try:
                answer = input("Proceed with execution? [y/N]: ").strip().lower()
            except (EOFError, KeyboardInterrupt, Interrupted):
                print()
                self.log.info("Execution cancelled")
                return False
            if answer in ("y", "yes"):
                return True
            if answer in ("", "n", "no"):
                self.log.info("Execution cancelled")
                return False

    def check_start_from(self) -> None:
        s = self.settings
        main = [tid for tid, task in self.workflow.tasks.items() if task.parent is None]
        if s.start_from is not None and s.start_from not in main:
            raise TaskerExit(Exit.START_OR_RESUME,
                             f"tasker: --start-from={s.start_from}: the task file defines no task {s.start_from} "
                             f"(tasks: {_id_summary(main)})", reason="start_from")

    def validate_hosts(self) -> None:
        """P9: host validation (docs/command-line.md)."""
        s = self.settings
        if not s.validate_hosts:
            if s.skip_unresolved_host_validation:
                self.log.info("--skip-unresolved-host-validation has no effect: host validation is skipped")
            return
        if not self._remote_tasks():
            return
        self.hosts = HostValidation(self.workflow, s, self.exec_types, self.log, self.cancel,
                                    self.ssh_connections()).run()

    def ssh_connections(self) -> Connections:
        """The run's ssh connections, knowing which hosts the workflow uses more than once."""
        if self.connections is None:
            workflow = self.workflow
            self.connections = Connections(lambda: reused_hosts(workflow))
        return self.connections

    def _remote_tasks(self) -> bool:
        """Some task may run through a non-local exec type (then host validation has work)."""
        s = self.settings
        default_remote = bool((s.type and s.type.strip().lower() != "local")
                              or s.environ.get("TASK_EXECUTOR_TYPE", "local").strip().lower() != "local")
        for task in self.workflow.tasks.values():
            if task.command is None:
                continue
            if task.exec is None:
                if default_remote or self.exec_types.requested(None).lower() != "local":
                    return True
            elif task.exec.literal().strip().lower() != "local":
                return True
        return False

    def take_instance_lock(self) -> None:
        """P11: --instance-check (docs/command-line.md)."""
        s = self.settings
        if not s.instance_check:
            return
        if s.force_instance:
            self.log.warn("--force-instance: the instance check is skipped")
            return
        values = {name: var.value for name, var in self.workflow.globals.items()}
        digest = instance_hash(s.content, values)
        home = s.environ.get("HOME") or os.path.expanduser("~")
        lock = InstanceLock(home, digest)
        snapshot = {name: self.log.mask(value) for name, value in values.items()}
        try:
            lock.acquire(lock_info(s.task_file, digest, s.project, snapshot))
        except InstanceBusy as busy:
            h = busy.holder
            raise TaskerExit(Exit.INSTANCE_RUNNING,
                             f"tasker: this workflow instance is already running: {h.get('task_file')} "
                             f"(started {h.get('started_at')}, pid {h.get('pid')}, host {h.get('hostname')}, "
                             f"project {h.get('project')}); lock file {busy.path}\n"
                             " = help: wait for it to finish, or pass --force-instance to run anyway",
                             reason="instance") from None
        except OSError as exc:
            raise TaskerExit(Exit.VALIDATION, f"tasker: cannot take the instance lock in {lock.directory}: "
                                              f"{exc.strerror}", reason="instance") from None
        self.instance_lock = lock
        self.log.info(f"Instance lock acquired: {lock.path}")

    def run_vm(self) -> int:
        """P12-P14: restore a recovery state, run the machine, conclude."""
        s = self.settings
        if s.run:
            self.check_open_files()
        self.session = Session()
        if s.run:
            self.guard.start_watchdog()
        connections = self.ssh_connections()
        if self.hosts:      # names the resolve hook replaced: the VM connects to those
            connections.reused.update(self.hosts[h] for h in list(connections.reused) if h in self.hosts)
        runner = ProcessRunner(self.session, guard=self.guard, connections=connections)
        self.steps = SlurmSteps(runner, self.exec_types, self.log)
        env = Env(runner=runner, clock=SystemClock(), exec_types=self.exec_types, log=self.log,
                  cancel=self.cancel, dry_run=not s.run, hosts=self.hosts, events=self.events, steps=self.steps)
        if wanted(self.log.stream, s.environ):
            self.progress = Progress(self.log.stream)
            self.log.progress = env.progress = self.progress
        self.machine = Machine(self.program, env)
        self.machine.store.spill_file = self.session.spill_file
        start = self.start_address()
        if s.run and s.recovery:
            store = self.open_checkpoints()
            store.run_id = self.steps.run_id
            env.checkpoint = store.save
        self.vm_started = time.time()
        self.in_vm = True
        ending = self.machine.run(start)   # a signal that came before: it ends at once
        self.in_vm = False
        return self.conclude(ending)

    def check_open_files(self) -> None:
        """Room for the widest block's processes, checked before anything runs (never EMFILE mid-run)."""
        widest = max((min(task.max_parallel or DEFAULT_MAX_PARALLEL, len(task.members))
                      for task in self.workflow.tasks.values() if task.kind == "parallel" and task.members),
                     default=1)
        problem = ensure_open_files(widest)
        if problem:
            raise TaskerExit(Exit.FAILURE, f"tasker: cannot run: {problem}\n = help: lower max_parallel, or raise "
                                           "the limit (ulimit -n) before starting tasker", reason="error")

    def start_address(self) -> str:
        """The resume point of a recovery state, else --start-from, else the lowest task."""
        s = self.settings
        rec = self.recovery
        if s.recovery and rec is not None and rec.present and s.start_from is not None and \
                rec.unfit(self.workflow):
            self.log.warn(f"The recovery state {rec.path} does not fit this task file: it is not resumed; "
                          f"starting from task {s.start_from} (--start-from), this run's state replaces it")
            return self.program.entries[s.start_from]
        if s.recovery and rec is not None and rec.present:
            rec.check(self.workflow, self.workflow.unset_env or {})
            if s.start_from is not None:
                self.log.warn(f"--start-from={s.start_from} is ignored: resuming from the recovery state")
            pc = rec.restore(self.machine)
            self.adopt_run_id(rec.data.get("run_id"))
            return pc
        if s.start_from is not None:
            self.log.warn(f"Starting from task {s.start_from}: tasks before it do not run")
            return self.program.entries[s.start_from]
        if self.program.start != "end" and self.workflow.first_id() != 0:
            self.log.warn(f"No task 0: starting at task {self.workflow.first_id()}")
        return self.program.start

    def adopt_run_id(self, previous) -> None:
        """A resume keeps the run id of the attempt it resumes, and first cancels the Slurm
        jobs that attempt left behind (killed with -9, tasker could not cancel them)."""
        if not isinstance(previous, str) or not previous.isalnum():
            return
        self.steps.run_id = previous
        if self.settings.run and uses_slurm(self.workflow, self.exec_types):
            self.steps.cancel_leftovers(previous)

    def open_checkpoints(self):
        s = self.settings
        path = self.recovery.path if self.recovery else state_path(self.log_base, s.task_file)
        try:
            store = CheckpointStore(path, s.task_file, s.content, self.workflow, self.log.path, s.environ,
                                    masker=self.log.masker)
            probe_dir(os.path.dirname(path))   # refuse now, not at the first checkpoint
        except OSError as exc:
            raise TaskerExit(Exit.START_OR_RESUME,
                             f"tasker: cannot write the recovery state in {os.path.dirname(path)}: {exc.strerror}\n"
                             " = help: fix the directory's permissions (or pass -l DIR), or run without "
                             "--auto-recovery/--output-json", reason="recovery") from None
        self.checkpoints = store
        return store

    # ------------------------------------------------------------ endings

    def conclude(self, ending: Ending, shown: bool = False) -> int:
        """P14: every ending passes here: JSON, recovery file, project row, alert, last log lines."""
        s = self.settings
        if self.progress is not None:
            self.log.progress = None
            self.progress.close()
        code = ending.exit_code
        walked = not s.run and self.machine is not None and ending.reason in _WALK_ENDINGS
        if walked:
            code = Exit.OK     # a dry run of a valid file succeeds wherever its walk ends
        finished = time.time()
        self.finish_events(ending, finished, walked)
        if self.json_path and ending.reason != "instance":
            self.write_json(ending, finished, walked)
            if s.output_json == OUTPUT_JSON_AUTO:
                self.log.info(f"# JSON file: {self.json_path}")
        self.settle_recovery_file(ending)
        if s.project and s.run and ending.reason not in ("recovery", "instance", "usage", "error"):
            self.write_summary(ending)
        if code != 0 and self.alert_script and ending.reason not in ("missing_command", "instance", "usage"):
            self.alert(ending)
        if walked:
            self.log.info(_walk_summary(ending))
        elif code == 0:
            self.log.info("SUCCESS: workflow completed")
        else:
            failure = f"FAILURE: exit code {code}"
            # a message already printed on stderr is said once on the terminal; the log file keeps it
            self.log.error(failure + (f" ({ending.message})" if ending.message else ""),
                           console=failure if shown else None)
        if self.log.path:
            self.log.info(f"# Log file: {self.log.path}")
            if s.project:
                self.log.info(f"# Project file: {summary_path(self.log_base, s.project)}")
            self.log.info(f"=== Task Execution End: {time.strftime('%d%b%y_%H%M%S')} ===")
        return code

    def finish_events(self, ending: Ending, finished: float, walked: bool = False) -> None:
        """The last event: how the run ended (once, whichever way it ended).

        A dry run's walk ends with status dry_run and exit code 0, as its JSON does."""
        if self.events_finished:
            return
        self.events_finished = True
        state = self.machine.state if self.machine is not None else None
        ok = ending.success or (ending.reason == "not_run" and ending.exit_code == 0)
        status = "dry_run" if walked else "success" if ok else "failed"
        self.events.run_finished(status=status, exit_code=0 if walked else ending.exit_code,
                                 reason=ending.reason, message=ending.message or "",
                                 path=list(state.path) if state else [],
                                 final_task=state.final_task if state else None,
                                 start=self.started, end=finished)

    def settle_recovery_file(self, ending: Ending) -> None:
        """D17: delete at a defined end, keep (pointing at the task to retry) otherwise."""
        store = self.checkpoints
        if store is None or self.machine is None:
            return
        if ending.reason in ("end", "never", "return"):
            store.delete()
            return
        if ending.reason == "checkpoint":   # keep the last state written whole, as it is
            self.log.info(f"Recovery state kept in {store.path} (its last complete checkpoint): the next run "
                          "with --auto-recovery resumes there")
            return
        try:
            final_checkpoint(store, self.machine, ending)
            self.log.info(f"Recovery state kept in {store.path}: the next run with --auto-recovery resumes there")
        except CheckpointError as exc:
            self.log.error(f"{exc} (the last complete checkpoint is kept)")

    def write_summary(self, ending: Ending) -> None:
        s = self.settings
        state = self.machine.state if self.machine is not None else None
        early = {"validation": "task_validation", "no_tasks": "task_validation",
                 "host_validation": "host_validation", "start_from": "start_from_validation"}
        if ending.reason in early or state is None:
            task, host, command = -1, "localhost", early.get(ending.reason, ending.reason)
            exit_code: object = ending.exit_code
        else:
            task, host, command = state.final_task, state.final_host, state.final_command
            exit_code = "N/A" if ending.reason == "missing_command" else ending.exit_code
        path = summary_path(self.log_base, s.project)
        try:
            ok = append_row(path, success=ending.success, exit_code=exit_code, task_file=s.task_file,
                            task_id=task, hostname=self.log.mask(host or ""), command=self.log.mask(command),
                            log_file=self.log.path, environ=s.environ)
        except OSError as exc:   # the row is a report: the workflow's own result stands
            self.log.warn(f"could not write the project summary {path}: {exc.strerror or exc}")
            return
        if not ok:
            self.log.error("could not lock the project summary in time: no row written")

    def alert(self, ending: Ending) -> None:
        if not self.settings.run:
            self.log.info(f"[DRY RUN] Would run alert script {self.alert_script} (exit code {ending.exit_code})")
            return
        state = self.machine.state if self.machine is not None else None
        run_alert(self.alert_script, exit_code=ending.exit_code, error=_ALERT_ERRORS.get(ending.reason, ending.message
                                                                                          or "Workflow failed"),
                  task=state.final_task if state else None, task_file=self.settings.task_file,
                  log_file=self.log.path, state_file=self.checkpoints.path if self.checkpoints else "",
                  log=self.log, environ=self.settings.environ)

    def conclude_early(self, code: int, reason: str, message: str = "", shown: bool = False) -> int:
        """An ending before the VM ran (validation, host validation, instance, signals in a phase);
        ``shown``: the message is already on stderr."""
        return self.conclude(Ending(reason, code, message), shown)

    def write_json(self, ending: Ending, finished: float, dry_run: bool = False) -> None:
        s = self.settings
        variables = {name: var.value for name, var in (self.workflow.globals if self.workflow else {}).items()}
        data = build(task_file=s.task_file, content=s.content, machine=self.machine, ending=ending,
                     started=self.vm_started or self.started, finished=finished, log_file=self.log.path,
                     total_tasks=len(self.workflow.tasks) if self.workflow else 0, variables=variables,
                     dry_run=dry_run, timeline=self.timeline.events if self.timeline is not None else [])
        try:
            write_atomic(self.json_path, self.log.masker.data(data))
        except OSError as exc:
            self.log.error(f"could not write the JSON summary {self.json_path}: {exc.strerror}")

    def cleanup(self) -> None:
        if self.connections is not None:
            self.connections.close()       # no ssh master outlives the run, whatever its ending
        self.guard.close(self.state_lock.journal_path if self.state_lock is not None else None)
        if self.session is not None:
            self.session.cleanup()
        if self.instance_lock is not None:
            self.instance_lock.release()
        if self.state_lock is not None:
            self.state_lock.release()
        self.restore_signals()
        self.events.close()
        self.log.close()
        self.cancel.close()


# How a dry run's walk may end (anything else, such as an unknown exec type, is an error).
_WALK_ENDINGS = ("end", "never", "return", "failure", "condition", "invalid_return", "nothing")

# The events --output-json keeps as its "timeline": every command's run, retry and block.
TIMELINE_EVENTS = ("task_finished", "retry_scheduled", "block_finished")


def _walk_summary(ending: Ending) -> str:
    """The last line of a dry run: where the walk ended and what a real run would do there."""
    if ending.reason in ("end", "never") or ending.exit_code == 0:
        where = "the workflow would complete"
    else:
        where = f"a real run would end here with exit code {ending.exit_code}" + \
            (f" ({ending.message})" if ending.message else "")
    return f"DRY RUN complete, nothing was run: {where}"


_ALERT_ERRORS = {
    "failure": "Last task failed",
    "condition": "Next condition not met",
    "validation": "Task file validation failed",
    "no_tasks": "Task file validation failed",
    "host_validation": "Host validation failed",
    "start_from": "Start task not found",
    "recovery": "Recovery state refused",
    "signal": "Task execution interrupted by signal",
    "return": "Workflow returned a non-zero value",
    "invalid_return": "Invalid return value",
    "error": "Execution error",
    "fatal": "Unsupported construct reached",
}


class _no_gc:
    """Compiling and lowering allocate ~10 objects per line and free almost none, so the
    cyclic collector only costs time there (a third of a 20,000-task validation)."""

    def __enter__(self) -> None:
        gc.disable()

    def __exit__(self, *_exc) -> None:
        gc.enable()


def _task_count(workflow: Workflow) -> str:
    """The tasks as the file defines them, and apart from them the members hostnames= blocks generate."""
    generated = sum(1 for task in workflow.tasks.values() if task.parent is not None)
    written = len(workflow.tasks) - generated
    text = f"{written} task{'s' if written != 1 else ''}"
    if generated:
        text += f" (+ {generated} generated member{'s' if generated != 1 else ''} of hostnames= blocks)"
    return text


def _id_summary(entries) -> str:
    ids = sorted(entries)
    if len(ids) <= 8:
        return ", ".join(map(str, ids))
    return ", ".join(map(str, ids[:4])) + ", ..., " + ", ".join(map(str, ids[-2:]))


def run(settings: Settings) -> int:
    """Run the phases; return the exit code."""
    app = Run(settings)
    app.install_signals()
    try:
        try:
            code = app.execute()
            if not app.events_finished:   # validate-only, recovery info, a declined plan: nothing ran

                app.finish_events(Ending("not_run", code), time.time())
            return code
        except TaskerExit as exc:
            if exc.message:
                print(exc.message, file=sys.stderr)
            return app.conclude_early(exc.code, exc.reason, exc.message, shown=bool(exc.message))
        except Interrupted as exc:
            name = "SIGINT" if exc.signum == signal.SIGINT else "SIGTERM"
            app.log.warn(f"Received {name} before the workflow started")
            return app.conclude_early(128 + exc.signum, "signal", f"interrupted by {name}")
    finally:
        app.cleanup()
