"""The program's phases (semantics.md §1), from merged settings to an exit code.

This is glue: it calls the stages in order (parse, check, lower, validate
hosts, run, report) and maps each ending to the exit code the spec gives.
Every ending passes through ``Run.finish``, which writes the JSON summary,
the project row and the alert, then cleans up (spill files, lock, signals).
"""

from __future__ import annotations

import os
import signal
import sys
import time

from tasker.diagnostics import Diagnostics, render, summary
from tasker.exitcodes import Exit, TaskerExit
from tasker.report.log import Log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tasker.cli import Settings
    from tasker.ir import Program
    from tasker.model import Workflow
    from tasker.vm.machine import Ending, Machine


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


class Run:
    """One invocation: the settings, the log, and what the phases produced so far."""

    def __init__(self, settings: Settings) -> None:
        from tasker.runners.base import Cancel

        self.settings = settings
        self.log = Log(settings.log_level)
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

    # ------------------------------------------------------------ signals

    def install_signals(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread (embedded use)
                pass

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
        self.prepare_files()
        self.compile()
        if s.show_plan or not s.validate_only or s.output_json:
            self.lower()
        if s.show_plan and not self.confirm_plan():
            return Exit.OK
        self.check_start_from()
        self.validate_hosts()
        if s.validate_only:
            self.log.info("Validation complete: the task file is valid")
            return Exit.OK
        return self.run_vm()

    def prepare_files(self) -> None:
        """P1-P2: log directory, log file and task-file backup (real runs), exec types, JSON path."""
        from tasker.report import files
        from tasker.runners.exectypes import ExecTypes

        s = self.settings
        self.log_base = files.log_base(s.log_dir, s.environ)
        if s.output_json:
            from tasker.cli import OUTPUT_JSON_AUTO
            from tasker.report.json_out import default_path

            self.json_path = default_path(s.task_file, s.environ) if s.output_json == OUTPUT_JSON_AUTO \
                else os.path.abspath(s.output_json)
            if not s.auto_recovery:
                self.log.info("--output-json implies --auto-recovery")
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
                                           f"{exc.strerror}") from None
        log_path = os.path.join(self.log_base, "log", f"{files.prefix_of(s.task_file)}_{stamp}.log")
        try:
            self.log.open(log_path)
        except OSError as exc:
            raise TaskerExit(Exit.FAILURE, f"tasker: cannot open log file {log_path}: {exc.strerror}") from None
        self.log.info(f"=== Task Execution Start: {time.strftime('%d%b%y_%H%M%S')} ===")
        self.log.info(f"# Task file: {s.task_file}")
        if not s.no_task_backup:
            try:
                files.backup_task_file(self.log_base, s.task_file, s.text.encode(), stamp)
            except OSError as exc:
                self.log.warn(f"could not back up the task file: {exc}")

    def check_type_option(self) -> None:
        names = self.exec_types.config.names()
        if self.settings.type.strip().lower() not in names and \
                self.exec_types.canonical(self.settings.type) not in names:
            choices = ", ".join(repr(n) for n in names)
            raise TaskerExit(Exit.USAGE, "usage: tasker [options] TASK_FILE\ntasker: error: argument -t/--type: "
                                         f"invalid choice: {self.settings.type!r} (choose from {choices})")

    def compile(self) -> None:
        """P4-P5: parse and check the task file; exit 20/24 on failure."""
        from tasker.check import CheckOptions, compile_workflow
        from tasker.syntax.taskfile import parse_taskfile

        s = self.settings
        tree = parse_taskfile(s.text, s.task_file)
        options = CheckOptions(validate=s.validate_tasks, security=s.validate_security,
                               strict_env=s.strict_env_validation,
                               subtask_range=not s.skip_subtask_range_validation, environ=s.environ)
        workflow, diags = compile_workflow(tree, options)
        print_diagnostics(diags, s)
        if diags.has_errors():
            count = len(diags.errors)
            self.log.error(f"Task file validation failed: {count} error{'s' if count != 1 else ''} "
                           f"in {s.task_file}")
            raise TaskerExit(Exit.VALIDATION)
        if not workflow.tasks:
            self.log.error(f"No tasks defined in {s.task_file}")
            raise TaskerExit(Exit.NO_TASKS)
        self.workflow = workflow
        self.log.masks = _secret_masks(workflow)
        if s.validate_tasks:
            self.log.info(f"Task validation passed: {len(workflow.tasks)} tasks")

    def lower(self) -> None:
        from tasker.lower import LowerOptions, lower

        self.program = lower(self.workflow, LowerOptions(fire_and_forget=self.settings.fire_and_forget))

    def confirm_plan(self) -> bool:
        """P6: print the plan; only y/yes proceeds (-y answers yes)."""
        from tasker.plan import render_plan

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
                             f"(tasks: {_id_summary(main)})")

    def validate_hosts(self) -> None:
        """P9: host validation (cli.md §13)."""
        s = self.settings
        if not s.validate_hosts:
            if s.skip_unresolved_host_validation:
                self.log.info("--skip-unresolved-host-validation has no effect: host validation is skipped")
            return
        if not self._remote_tasks():
            return
        from tasker.hostcheck import HostValidation

        HostValidation(self.workflow, s, self.exec_types, self.log, self.cancel).run()

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

    def run_vm(self) -> int:
        from tasker.runners.base import SystemClock
        from tasker.runners.process import ProcessRunner, Session, sweep_stale_sessions
        from tasker.vm.machine import Env, Machine

        s = self.settings
        self.session = Session()
        if s.run:
            sweep_stale_sessions()
        runner = ProcessRunner(self.session)
        env = Env(runner=runner, clock=SystemClock(), exec_types=self.exec_types, log=self.log,
                  cancel=self.cancel, dry_run=not s.run)
        self.machine = Machine(self.program, env)
        start = self.program.start
        if s.start_from is not None:
            start = self.program.entries[s.start_from]
            self.log.warn(f"Starting from task {s.start_from}: tasks before it do not run")
        elif self.program.start != "end" and self.workflow.first_id() != 0:
            self.log.warn(f"No task 0: starting at task {self.workflow.first_id()}")
        self.vm_started = time.time()
        self.in_vm = True
        if self.cancel.is_set:
            ending = self.machine._signal_ending()
        else:
            ending = self.machine.run(start)
        self.in_vm = False
        return self.finish(ending)

    # ------------------------------------------------------------ endings

    def finish(self, ending: Ending) -> int:
        """P14: JSON, log lines; return the exit code."""
        if self.json_path:
            self.write_json(ending)
        if ending.exit_code == 0:
            self.log.info("SUCCESS: workflow completed")
        else:
            self.log.error(f"FAILURE: exit code {ending.exit_code}" + (f" ({ending.message})" if ending.message
                                                                        else ""))
        if self.log.path:
            self.log.info(f"# Log file: {self.log.path}")
            self.log.info(f"=== Task Execution End: {time.strftime('%d%b%y_%H%M%S')} ===")
        return ending.exit_code

    def finish_early(self, code: int, reason: str, message: str = "") -> int:
        """An ending before the VM ran (validation, host validation, signals in a phase)."""
        from tasker.vm.machine import Ending, Machine

        if self.json_path and self.program is not None and self.machine is None:
            from tasker.runners.base import SystemClock
            from tasker.vm.machine import Env

            env = Env(runner=None, clock=SystemClock(), exec_types=self.exec_types, log=self.log,
                      cancel=self.cancel)
            self.machine = Machine(self.program, env)
        if self.json_path and self.machine is not None:
            self.write_json(Ending(reason, code, message))
        elif self.json_path:
            self.write_json_minimal(code, reason, message)
        return code

    def write_json(self, ending: Ending) -> None:
        from tasker.report.json_out import build

        s = self.settings
        variables = {name: var.value for name, var in (self.workflow.globals if self.workflow else {}).items()}
        data = build(task_file=s.task_file, content=s.text.encode(), machine=self.machine, ending=ending,
                     started=self.vm_started or self.started, finished=time.time(), log_file=self.log.path,
                     total_tasks=len(self.workflow.tasks) if self.workflow else 0, variables=variables)
        self._write(data)

    def write_json_minimal(self, code: int, reason: str, message: str) -> None:
        import hashlib

        from tasker.report.json_out import iso

        s = self.settings
        data = {
            "workflow_metadata": {"task_file": os.path.abspath(s.task_file),
                                  "execution_id": hashlib.sha256(s.text.encode()).hexdigest()[:8],
                                  "status": "failed", "exit_code": code, "start_time": iso(self.started),
                                  "end_time": iso(time.time()), "duration_seconds": 0.0,
                                  "log_file": self.log.path},
            "execution_summary": {"total_tasks": 0, "executed": 0, "succeeded": 0, "failed": 0, "timeouts": 0,
                                  "execution_path": [], "final_task": None,
                                  "failure_info": {"task_id": None, "exit_code": code,
                                                   "error": message or reason, "reason": reason}},
            "task_results": {},
            "variables": {},
        }
        self._write(data)

    def _write(self, data: dict) -> None:
        from tasker.report.json_out import write_atomic

        try:
            write_atomic(self.json_path, data)
        except OSError as exc:
            self.log.error(f"could not write the JSON summary {self.json_path}: {exc.strerror}")

    def cleanup(self) -> None:
        if self.session is not None:
            self.session.cleanup()
        self.restore_signals()
        self.log.close()
        self.cancel.close()


def _secret_masks(workflow: Workflow) -> list[tuple[str, str]]:
    """Values of globals whose names mark them as secrets (cli.md §5)."""
    prefixes = ("SECRET_", "MASK_", "HIDE_", "PASSWORD_", "TOKEN_")
    suffixes = ("_PASSWORD", "_TOKEN", "_SECRET", "_KEY")
    masks = []
    for name, var in workflow.globals.items():
        upper = name.upper()
        if var.value and (upper.startswith(prefixes) or upper.endswith(suffixes)):
            masks.append((var.value, f"<masked len={len(var.value)}>"))
    return masks


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
            return app.execute()
        except TaskerExit as exc:
            if exc.message:
                print(exc.message, file=sys.stderr)
            reason = {Exit.VALIDATION: "validation", Exit.START_OR_RESUME: "start_from"}.get(exc.code, "error")
            return app.finish_early(exc.code, reason, exc.message)
        except Interrupted as exc:
            name = "SIGINT" if exc.signum == signal.SIGINT else "SIGTERM"
            app.log.warn(f"Received {name} before the workflow started")
            return app.finish_early(128 + exc.signum, "signal", f"interrupted by {name}")
    finally:
        app.cleanup()
