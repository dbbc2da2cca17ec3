"""The ``tasker`` command: command line and task-file arguments merged into ``Settings``.

``main`` parses the command line, reads the task file's argument lines (the
lines starting with ``-`` before its first ``key=value`` line), merges both
(on/off flags: either one switches them on; values: the command line wins) and
hands the ``Settings`` to ``tasker.cli.run``, which drives the stages.  Usage
errors exit 2; a missing or unreadable task file exits 1; an argument line that
only the command line may give (``--help``, ``--force-instance`` ...) exits 20.
"""

from __future__ import annotations

import importlib
import os
import sys

from tasker.cli.options import FLAG_DESTS, USAGE, VALUE_DESTS, HelpRequested, UsageError, parse, parse_header
from tasker.cli.run import run
from tasker.cli.settings import Settings
from tasker.exitcodes import Exit, TaskerExit
from tasker.report.log import quiet_stream

# Commands that are not a run of a task file (``tasker NAME ...``): dispatched on
# the first word before the option parser sees the command line.
# A task file named like one is run as ./report.
SUBCOMMANDS: dict[str, str] = {"report": "tasker.cli.report", "history": "tasker.history.cli"}

HEADER_FORBIDDEN = ("--help", "-h", "--version", "-V", "--force-instance", "--discard-recovery")
HEADER_SENSITIVE = ("--skip-security-validation", "--skip-validation", "--fire-and-forget")


def read_task_file(path: str) -> tuple[bytes, str]:
    """The task file's bytes and text; exit 1 with a clear message when it cannot be read."""
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
        text = data.decode("utf-8")
        return data, text[1:] if text.startswith("\ufeff") else text   # a byte-order mark is not text
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise TaskerExit(Exit.FAILURE, f"tasker: {path}:{line}: the task file is not UTF-8 text "
                                       f"(byte 0x{data[exc.start]:02x})") from None


def header_tokens(text: str) -> list[tuple[int, str]]:
    """File-defined argument lines ``(line number, token)``: the lines starting with ``-``
    (blank lines and ``#`` comments skipped) up to the first ``key=value`` line."""
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
    """Command line + file header -> Settings.  Raises UsageError / HelpRequested / TaskerExit."""
    cli, rest = parse(argv)
    settings = Settings()
    settings.environ = environ
    settings.task_file = rest[0]
    settings.cli_args = list(argv)
    content, text = read_task_file(settings.task_file)
    tokens, settings.file_warnings = check_header(settings.task_file, header_tokens(text))
    settings.file_args = tokens
    header = parse_header(tokens) if tokens else {}
    for name in FLAG_DESTS:   # on/off flags: the file or the command line switches them on
        setattr(settings, name, bool(cli.get(name) or header.get(name)))
    for name in VALUE_DESTS:  # values: the command line wins over the file
        if name in cli:
            setattr(settings, name, cli[name])
        elif name in header:
            setattr(settings, name, header[name])
    if settings.log_level is None:
        settings.log_level = "INFO"
    if settings.debug and settings.log_level == "INFO":
        settings.log_level = "DEBUG"
    settings.content = content   # hashed, backed up and compared as read
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
    code = Exit.FAILURE
    try:
        code = _main(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader of stdout or stderr went away (`tasker --help | head -1`): end
        # quietly; the streams go to /dev/null so the flush at exit cannot fail again.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                quiet_stream(stream)
    except Exception as exc:
        # A bug in tasker: one line that says so, exit 1, and no traceback in the user's output
        # (TASKER_DEBUG=1 lets it through, for the report).  The run's cleanup has already run.
        if os.environ.get("TASKER_DEBUG"):
            raise
        _say_internal_error(exc)
    return code


def _say_internal_error(exc: Exception) -> None:
    try:
        print(f"tasker: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("tasker: this is a bug in tasker; run again with TASKER_DEBUG=1 to see where it happened, "
              "and report it", file=sys.stderr)
        sys.stderr.flush()
    except (OSError, ValueError):
        quiet_stream(sys.stderr)


def _main(argv: list[str]) -> int:
    if argv and argv[0] in SUBCOMMANDS:
        # imported when asked for: the report and history paths (HTML, SQL) are not a run's
        # start-up cost
        command = importlib.import_module(SUBCOMMANDS[argv[0]])
        return command.main(argv[1:])
    try:
        settings = parse_settings(argv, dict(os.environ))
    except HelpRequested as exc:
        print(exc.text)
        return Exit.OK
    except UsageError as exc:
        print(USAGE, file=sys.stderr)
        print(f"tasker: error: {exc}", file=sys.stderr)
        return Exit.USAGE
    except TaskerExit as exc:
        if exc.message:
            print(exc.message, file=sys.stderr)
        return exc.code
    if settings.show_effective_args:
        print_effective(settings)
        return Exit.OK
    return run(settings)
