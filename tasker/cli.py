"""Command line: TASKER 2.x's options, file-defined arguments, effective settings, main().

``main`` parses the command line, reads the task file's argument header
(language.md §2.1), merges both (cli.md §3) and hands the ``Settings`` to
``app.run``, which drives the stages.  Usage errors exit 2; a missing or
unreadable task file exits 1; a forbidden header flag exits 20.
"""

from __future__ import annotations

import os
import sys

from tasker import __version__
from tasker.exitcodes import Exit, TaskerExit

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

# Options that take a value; everything else in the table below is an on/off flag.
VALUE_OPTIONS = ("log_dir", "log_level", "type", "timeout", "project", "start_from",
                 "alert_on_failure", "output_json", "plan_format", "plan_output", "exec_config")
FLAG_OPTIONS = ("run", "debug", "auto_recovery", "show_recovery_info", "yes", "skip_task_validation",
                "skip_host_validation", "skip_unresolved_host_validation", "skip_command_validation",
                "skip_security_validation", "strict_env_validation", "skip_subtask_range_validation",
                "skip_validation", "validate_only", "fire_and_forget", "no_task_backup", "instance_check",
                "force_instance", "show_plan", "show_effective_args", "connection_test")
HEADER_FORBIDDEN = ("--help", "-h", "--version", "-V", "--force-instance")
HEADER_SENSITIVE = ("--skip-security-validation", "--skip-validation", "--fire-and-forget")
LOG_LEVELS = ("ERROR", "WARN", "INFO", "DEBUG")
OUTPUT_JSON_AUTO = "\0auto"   # --output-json without a path
PLAN_FORMATS = ("text", "dot", "mermaid", "svg")


class UsageError(Exception):
    """A command-line problem: exit 2 with argparse's usage line."""


class _Parser:
    """argparse, built only when needed (importing argparse costs start-up time)."""

    def __init__(self, for_header: bool = False) -> None:
        import argparse

        class Raising(argparse.ArgumentParser):
            def error(self, message: str) -> None:  # type: ignore[override]
                raise UsageError(message)

        p = Raising(prog="tasker", add_help=not for_header, allow_abbrev=True,
                    description="Run a TASKER task file: validate it, then execute its tasks "
                                "(a dry run unless -r is given).",
                    epilog="Exit codes: 0 success, 1 task failure, 2 usage, 10 condition not met, "
                           "12 start/resume refused, 20 validation failed, 21/60/61 host validation, "
                           "24 no tasks, 25 instance running, 124 timeout, 130/143 interrupted.")
        S = argparse.SUPPRESS
        if not for_header:
            p.add_argument("task_file", help="the task file to run")
            p.add_argument("-V", "--version", action="version", version=f"TASKER v{__version__}")
        p.add_argument("-r", "--run", action="store_true", default=S, help="execute for real (default: dry run)")
        p.add_argument("-l", "--log-dir", default=S, metavar="DIR",
                       help="base directory for logs, backups, summaries, recovery (default $TASK_EXECUTOR_LOG "
                            "or ~/TASKER)")
        p.add_argument("--log-level", default=S, type=_log_level, metavar="{ERROR,WARN,INFO,DEBUG}",
                       help="minimum level on the console and in the log (default INFO)")
        p.add_argument("-d", "--debug", action="store_true", default=S, help="same as --log-level=DEBUG")
        p.add_argument("-t", "--type", default=S, metavar="TYPE",
                       help="default exec type for tasks without exec= (local or one of the config)")
        p.add_argument("-o", "--timeout", default=S, type=_timeout, metavar="SECONDS",
                       help="default task timeout, 5-1000 s (task timeout= still wins)")
        p.add_argument("-c", "--connection-test", action="store_true", default=S,
                       help="test connections of remote exec types (host validation always does)")
        p.add_argument("-p", "--project", default=S, metavar="NAME", help="append a row to the project summary")
        p.add_argument("--start-from", default=S, type=int, metavar="TASK_ID", help="start at this task")
        p.add_argument("--auto-recovery", action="store_true", default=S,
                       help="checkpoint after every step; resume from the checkpoint on the next run")
        p.add_argument("--show-recovery-info", action="store_true", default=S,
                       help="print what a resume would do, then exit")
        p.add_argument("-y", "--yes", action="store_true", default=S,
                       help="answer yes to the recovery prompt and to --show-plan")
        p.add_argument("--skip-task-validation", action="store_true", default=S,
                       help="skip static validation of the task file")
        p.add_argument("--skip-host-validation", action="store_true", default=S,
                       help="skip host validation; use host names as written")
        p.add_argument("--skip-unresolved-host-validation", action="store_true", default=S,
                       help="tolerate host names that are only known at run time")
        p.add_argument("--skip-command-validation", action="store_true", default=S,
                       help="do not check that exec-type programs exist")
        p.add_argument("--skip-security-validation", action="store_true", default=S,
                       help="skip the security checks of command, arguments and hostname")
        p.add_argument("--strict-env-validation", action="store_true", default=S,
                       help="globals may only use TASKER_* environment variables")
        p.add_argument("--skip-subtask-range-validation", action="store_true", default=S,
                       help="no warnings for subtask ids outside the block's range")
        p.add_argument("--skip-validation", action="store_true", default=S,
                       help="skip task, host, command and security validation")
        p.add_argument("--validate-only", action="store_true", default=S, help="validate, then exit")
        p.add_argument("--fire-and-forget", action="store_true", default=S,
                       help="a failing task without routing continues with the next task")
        p.add_argument("--no-task-backup", action="store_true", default=S,
                       help="do not copy the task file into backup/")
        p.add_argument("--instance-check", action="store_true", default=S,
                       help="refuse to run while the same workflow runs")
        p.add_argument("--force-instance", action="store_true", default=S,
                       help="with --instance-check: run anyway (command line only)")
        p.add_argument("--show-plan", action="store_true", default=S,
                       help="print the compiled plan and ask before running")
        p.add_argument("--plan-format", default=S, type=str.lower, choices=PLAN_FORMATS,
                       help="--show-plan as text (default), dot, mermaid or svg")
        p.add_argument("--plan-output", default=S, metavar="FILE", help="write the plan to FILE")
        p.add_argument("--alert-on-failure", default=S, metavar="SCRIPT",
                       help="run SCRIPT when the workflow fails")
        p.add_argument("--output-json", nargs="?", const=OUTPUT_JSON_AUTO, default=S, metavar="PATH",
                       help="write a JSON summary (default path under ~/TASKER/output); implies --auto-recovery")
        p.add_argument("--exec-config", default=S, metavar="YAML",
                       help="exec-type configuration to use instead of the shipped cfg/execution_types.yaml")
        p.add_argument("--show-effective-args", action="store_true", default=S,
                       help="print the merged settings, then exit")
        self.parser = p

    def parse(self, argv: list[str]) -> argparse.Namespace:
        return self.parser.parse_args(argv)

    def parse_known(self, argv: list[str]) -> argparse.Namespace:
        return self.parser.parse_known_args(argv)[0]


def _log_level(value: str) -> str:
    level = value.strip().upper()
    if level == "WARNING":
        level = "WARN"
    if level not in LOG_LEVELS:
        raise ValueError(value)
    return level


_log_level.__name__ = "log level"  # argparse names the type in its message


def _timeout(value: str) -> int:
    return int(value)


_timeout.__name__ = "timeout"


class Settings:
    """The merged settings of one run (command line over file header over defaults)."""

    def __init__(self) -> None:
        self.task_file = ""
        for name in FLAG_OPTIONS:
            setattr(self, name, False)
        for name in VALUE_OPTIONS:
            setattr(self, name, None)
        self.log_level = "INFO"
        self.file_args: list[str] = []
        self.file_warnings: list[str] = []
        self.cli_args: list[str] = []
        self.environ: dict[str, str] = {}

    def effective(self) -> dict[str, object]:
        """The settings that are on or set (for --show-effective-args)."""
        out: dict[str, object] = {}
        for name in (*FLAG_OPTIONS, *VALUE_OPTIONS):
            value = getattr(self, name)
            if value not in (False, None, ""):
                out[name] = "(auto)" if value == OUTPUT_JSON_AUTO else value
        return out

    # Derived switches
    @property
    def validate_tasks(self) -> bool:
        return not (self.skip_task_validation or self.skip_validation)

    @property
    def validate_hosts(self) -> bool:
        return not (self.skip_host_validation or self.skip_validation)

    @property
    def validate_security(self) -> bool:
        return not (self.skip_security_validation or self.skip_validation)

    @property
    def validate_commands(self) -> bool:
        return not (self.skip_command_validation or self.skip_validation)

    @property
    def recovery(self) -> bool:
        return bool(self.auto_recovery or self.output_json)


def read_task_file(path: str) -> str:
    """The task file's text; exit 1 with a clear message when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise TaskerExit(Exit.FAILURE, f"tasker: task file not found: {path}") from None
    except IsADirectoryError:
        raise TaskerExit(Exit.FAILURE, f"tasker: {path} is a directory, not a task file") from None
    except OSError as exc:
        raise TaskerExit(Exit.FAILURE, f"tasker: cannot read task file {path}: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise TaskerExit(Exit.FAILURE, f"tasker: {path}:{line}: the task file is not UTF-8 text "
                                       f"(byte 0x{data[exc.start]:02x})") from None


def header_tokens(text: str) -> list[tuple[int, str]]:
    """File-defined argument lines ``(line number, token)`` (language.md §2.1)."""
    out = []
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            out.append((number, line))
        elif "=" in line:
            break
    return out


def check_header(path: str, tokens: list[tuple[int, str]]) -> tuple[list[str], list[str]]:
    """Apply the header rules: returns (tokens to parse, warnings); raises on forbidden ones."""
    keep: list[str] = []
    warnings: list[str] = []
    for number, token in tokens:
        name = token.split("=", 1)[0].strip()
        if len(name) > 2 and name[0] == "-" and name[1] != "-":
            raise TaskerExit(Exit.USAGE, f"{path}:{number}: error: file-defined argument `{token}` uses a single "
                                         f"dash with a long name\n = help: write -{name} (two dashes)")
        if name in HEADER_FORBIDDEN:
            raise TaskerExit(Exit.VALIDATION, f"{path}:{number}: error: file-defined argument `{name}` is not "
                                              "allowed in a task file (command line only)")
        if name in HEADER_SENSITIVE:
            warnings.append(f"{path}:{number}: warning: the task file sets the security-sensitive flag {name}; "
                            "it is applied: make sure this is intended")
        keep.append(token)
    return keep, warnings


def parse_settings(argv: list[str], environ: dict[str, str]) -> Settings:
    """Command line + file header -> Settings.  Raises UsageError / TaskerExit."""
    cli = _Parser().parse(argv)
    settings = Settings()
    settings.environ = environ
    settings.task_file = cli.task_file
    settings.cli_args = list(argv)
    text = read_task_file(cli.task_file)
    tokens, settings.file_warnings = check_header(cli.task_file, header_tokens(text))
    settings.file_args = tokens
    file_ns = _Parser(for_header=True).parse_known(tokens) if tokens else None
    for name in FLAG_OPTIONS:
        value = bool(getattr(cli, name, False)) or bool(getattr(file_ns, name, False))
        setattr(settings, name, value)
    for name in VALUE_OPTIONS:
        if hasattr(cli, name):
            setattr(settings, name, getattr(cli, name))
        elif file_ns is not None and hasattr(file_ns, name):
            setattr(settings, name, getattr(file_ns, name))
    if settings.log_level is None:
        settings.log_level = "INFO"
    if settings.debug and settings.log_level == "INFO":
        settings.log_level = "DEBUG"
    settings.text = text
    return settings


def print_effective(settings: Settings) -> None:
    """--show-effective-args: the header tokens and the merged settings."""
    print(f"Task file: {settings.task_file}")
    print("File-defined arguments:" if settings.file_args else "File-defined arguments: (none)")
    for token in settings.file_args:
        print(f"  {token}")
    print("Effective settings:")
    for name, value in settings.effective().items():
        shown = "" if value is True else f"={value}"
        print(f"  --{name.replace('_', '-')}{shown}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tasker`` command."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        settings = parse_settings(argv, dict(os.environ))
    except UsageError as exc:
        print("usage: tasker [options] TASK_FILE", file=sys.stderr)
        print(f"tasker: error: {exc}", file=sys.stderr)
        return Exit.USAGE
    except TaskerExit as exc:
        if exc.message:
            print(exc.message, file=sys.stderr)
        return exc.code
    if settings.show_effective_args:
        print_effective(settings)
        return Exit.OK
    from tasker.app import run

    return run(settings)
