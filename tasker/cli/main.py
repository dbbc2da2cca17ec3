"""Command line: TASKER 2.x's options, file-defined arguments, effective settings, main().

``main`` parses the command line, reads the task file's argument header
(language.md §2.1), merges both (cli.md §3) and hands the ``Settings`` to
``app.run``, which drives the stages.  Usage errors exit 2; a missing or
unreadable task file exits 1; a forbidden header flag exits 20.
"""

from __future__ import annotations

import os
import sys

from tasker.cli.options import (
    FLAG_DESTS,
    OUTPUT_JSON_AUTO,
    USAGE,
    VALUE_DESTS,
    HelpRequested,
    UsageError,
    parse,
)
from tasker.exitcodes import Exit, TaskerExit

__all__ = ["OUTPUT_JSON_AUTO", "Settings", "UsageError", "main", "parse_settings"]

# Aliases kept for readers of this module: the option table lives in tasker/options.py.
FLAG_OPTIONS = FLAG_DESTS
VALUE_OPTIONS = VALUE_DESTS
HEADER_FORBIDDEN = ("--help", "-h", "--version", "-V", "--force-instance")
HEADER_SENSITIVE = ("--skip-security-validation", "--skip-validation", "--fire-and-forget")


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
        self.text = ""                     # the task file, decoded
        self.content = b""                 # the task file's bytes

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
        return data, data.decode("utf-8")
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
    """Command line + file header -> Settings.  Raises UsageError / HelpRequested / TaskerExit."""
    cli, rest = parse(argv)
    settings = Settings()
    settings.environ = environ
    settings.task_file = rest[0]
    settings.cli_args = list(argv)
    content, text = read_task_file(settings.task_file)
    tokens, settings.file_warnings = check_header(settings.task_file, header_tokens(text))
    settings.file_args = tokens
    header = parse(tokens, positional=False, ignore_unknown=True)[0] if tokens else {}
    for name in FLAG_OPTIONS:   # on/off flags: the file or the command line switches them on
        setattr(settings, name, bool(cli.get(name) or header.get(name)))
    for name in VALUE_OPTIONS:  # values: the command line wins over the file
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
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["report"]:   # a subcommand with its own parser (a task file named report: ./report)
        from tasker.cli.report import main as report

        return report(argv[1:])
    if argv[:1] == ["history"]:  # likewise (a task file named history: ./history)
        from tasker.history.cli import main as history

        return history(argv[1:])
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
    from tasker.cli.run import run

    return run(settings)
