"""The option table of ``tasker`` and the argparse parsers built from it.

``OPTIONS`` is the single source of the options: each row is one option (its
names, its kind, its help and how its value is read) and becomes one
``add_argument`` call.  Adding a flag is adding a row.  ``parse`` reads a
command line, ``parse_header`` the argument lines of a task file; both return
only the options that were given, so that ``main`` can merge the two.

Errors are argparse's own (the parser of TASKER 2.2 was argparse, so its usage
and messages are the same), raised as ``UsageError`` instead of exiting, with
two additions: a "did you mean" for a mistyped option, and an explanation when
``--output-json`` took the task file's name as its path.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable
from itertools import pairwise

from tasker import __version__
from tasker.numbers import OutOfRange, abbreviate, whole

FLAG = "flag"
VALUE = "value"
OPTIONAL = "optional"     # --output-json [PATH]

LOG_LEVELS = ("ERROR", "WARN", "INFO", "DEBUG")
PLAN_FORMATS = ("text", "dot", "mermaid", "svg")
OUTPUT_JSON_AUTO = "\0auto"   # --output-json without a path

USAGE = "usage: tasker [options] TASK_FILE"
DESCRIPTION = "Run a TASKER task file: validate it, then execute its tasks (a dry run unless -r is given)."
EPILOG = ("Exit codes: 0 success, 1 task failure, 2 usage, 10 condition not met, 12 start/resume refused, "
          "20 validation failed, 21/60/61 host validation, 24 no tasks, 25 instance running, 124 timeout, "
          "130/143 interrupted.\n"
          "Run history: tasker history [TASK_FILE] [--failed] [--project NAME] [--since 7d] [--last N] [--json]; "
          "tasker history show RUN; tasker history prune --older-than 30d; tasker report RUN [-o FILE].")


class UsageError(Exception):
    """A command-line problem: exit 2 with the usage line."""


class HelpRequested(Exception):
    """-h/--help or -V/--version: print ``text`` and exit 0."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class Option:
    """One row of the table: the option's names, kind, help and how its value is read."""

    __slots__ = ("choices", "convert", "dest", "help", "kind", "long", "metavar", "short")

    def __init__(self, short: str | None, long: str, kind: str, help: str, *, metavar: str | None = None,
                 convert: Callable[[str], object] | None = None, choices: tuple = ()) -> None:
        self.short = short
        self.long = long
        self.kind = kind
        self.help = help
        self.metavar = metavar
        self.convert = convert
        self.choices = choices
        self.dest = long[2:].replace("-", "_")

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        names = [n for n in (self.short, self.long) if n]
        common = {"dest": self.dest, "help": self.help, "default": argparse.SUPPRESS}
        if self.kind == FLAG:
            parser.add_argument(*names, action="store_true", **common)
            return
        if self.kind == OPTIONAL:
            common.update(nargs="?", const=OUTPUT_JSON_AUTO)
        parser.add_argument(*names, type=self.convert, choices=self.choices or None, metavar=self.metavar,
                            **common)


def _log_level(value: str) -> str:
    level = value.strip().upper()
    level = "WARN" if level == "WARNING" else level
    if level not in LOG_LEVELS:
        listed = ", ".join(repr(n) for n in LOG_LEVELS)
        raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from {listed})")
    return level


def _int(value: str) -> int:
    """A whole number of at most 18 digits (a longer one would cost quadratic time to convert)."""
    try:
        return whole(value)
    except OutOfRange:
        # argparse would echo every digit; say how long it is instead
        raise argparse.ArgumentTypeError(f"invalid int value: {abbreviate(value)} is out of range") from None


_int.__name__ = "int"   # argparse names the type in its message: "invalid int value"

OPTIONS = (
    Option("-r", "--run", FLAG, "execute for real (default: a dry run that starts nothing)"),
    Option("-l", "--log-dir", VALUE, "base directory for logs, backups, summaries and recovery files "
           "(default $TASK_EXECUTOR_LOG or ~/TASKER)", metavar="DIR"),
    Option(None, "--log-level", VALUE, "minimum level on the console and in the log (default INFO)",
           metavar="{ERROR,WARN,INFO,DEBUG}", convert=_log_level),
    Option("-d", "--debug", FLAG, "same as --log-level=DEBUG"),
    Option("-t", "--type", VALUE, "exec type for tasks without exec= (local or one of the configuration)",
           metavar="TYPE"),
    Option("-o", "--timeout", VALUE, "default task timeout, 5-1000 s (a task's timeout= still wins)",
           metavar="SECONDS", convert=_int),
    Option("-c", "--connection-test", FLAG, "test connections of remote exec types (host validation always does)"),
    Option("-p", "--project", VALUE, "append a row to the project summary L/project/NAME.summary", metavar="NAME"),
    Option(None, "--start-from", VALUE, "start at this task", metavar="TASK_ID", convert=_int),
    Option(None, "--auto-recovery", FLAG, "checkpoint after every step; the next run resumes there"),
    Option(None, "--show-recovery-info", FLAG, "print what a resume would do, then exit"),
    Option(None, "--discard-recovery", FLAG, "delete the saved recovery state of this task file and start "
           "from the beginning (command line only)"),
    Option("-y", "--yes", FLAG, "answer yes to the recovery prompt and to --show-plan"),
    Option(None, "--skip-task-validation", FLAG, "skip static validation of the task file"),
    Option(None, "--skip-host-validation", FLAG, "skip host validation; use host names as written"),
    Option(None, "--skip-unresolved-host-validation", FLAG, "tolerate host names that are only known at run time"),
    Option(None, "--skip-command-validation", FLAG, "do not check that exec-type programs are installed"),
    Option(None, "--skip-security-validation", FLAG, "skip the security checks of command, arguments, hostname"),
    Option(None, "--strict-env-validation", FLAG, "globals may only use TASKER_* environment variables"),
    Option(None, "--skip-subtask-range-validation", FLAG, "no warnings for subtask ids outside a block's range"),
    Option(None, "--skip-validation", FLAG, "skip task, host, command and security validation"),
    Option(None, "--validate-only", FLAG, "validate everything, then exit without running"),
    Option(None, "--fire-and-forget", FLAG, "a failing task without routing continues with the next task"),
    Option(None, "--no-task-backup", FLAG, "do not copy the task file into L/backup/"),
    Option(None, "--instance-check", FLAG, "refuse to run while the same workflow instance runs"),
    Option(None, "--force-instance", FLAG, "with --instance-check: run anyway (command line only)"),
    Option(None, "--show-plan", FLAG, "print the compiled plan and ask before running"),
    Option(None, "--plan-format", VALUE, "the plan as text (default), dot, mermaid or svg",
           metavar="{text,dot,mermaid,svg}", convert=str.lower, choices=PLAN_FORMATS),
    Option(None, "--plan-output", VALUE, "write the plan to FILE", metavar="FILE"),
    Option(None, "--alert-on-failure", VALUE, "run SCRIPT when the workflow fails", metavar="SCRIPT"),
    Option(None, "--output-json", OPTIONAL, "write a JSON summary (default path ~/TASKER/output/...); "
           "implies --auto-recovery", metavar="PATH"),
    Option(None, "--events", VALUE, "write the run's events to FILE as JSON Lines (one event a line, "
           "flushed as it happens)", metavar="FILE"),
    Option(None, "--history-db", VALUE, "record the run in this history database: a SQLite file or "
           "postgresql://... (default $TASKER_HISTORY_DB or ~/TASKER/history.db)", metavar="DB"),
    Option(None, "--no-history", FLAG, "do not record the run in the history database"),
    Option(None, "--exec-config", VALUE, "exec-type configuration instead of the shipped "
           "cfg/execution_types.yaml (also $TASKER_EXEC_CONFIG)", metavar="YAML"),
    Option(None, "--show-effective-args", FLAG, "print the merged settings, then exit"),
)
FLAG_DESTS = tuple(o.dest for o in OPTIONS if o.kind == FLAG)
VALUE_DESTS = tuple(o.dest for o in OPTIONS if o.kind != FLAG)


class _Parser(argparse.ArgumentParser):
    """argparse, but a problem is raised as ``UsageError`` for ``main`` to print (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


class _Show(argparse.Action):
    """-h and -V: hand the text to ``main`` instead of printing and exiting here."""

    def __init__(self, option_strings: list[str], dest: str, text: Callable[[argparse.ArgumentParser], str],
                 help: str) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)
        self.text = text

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        raise HelpRequested(self.text(parser))


def build_parser(*, header: bool = False) -> argparse.ArgumentParser:
    """The command-line parser, or (``header``) the parser of a task file's argument lines:
    no task file, no -h/-V (a task file may not carry them)."""
    parser = _Parser(prog="tasker", usage=USAGE.removeprefix("usage: "), description=DESCRIPTION, epilog=EPILOG,
                     add_help=False)
    if not header:
        parser.add_argument("task_file", help="the task file to run")
        parser.add_argument("-h", "--help", action=_Show, text=argparse.ArgumentParser.format_help,
                            help="show this help and exit")
        parser.add_argument("-V", "--version", action=_Show, text=lambda _parser: f"TASKER v{__version__}",
                            help="print the version and exit")
    for option in OPTIONS:
        option.add_to(parser)
    return parser


def parse(argv: list[str]) -> tuple[dict, list[str]]:
    """A command line: ({dest: value} for the options given, [task file])."""
    parser = build_parser()
    try:
        namespace, unknown = parser.parse_known_args(argv)
    except UsageError as exc:
        took = _json_took_task_file(argv) if "required: task_file" in str(exc) else None
        if took is None:
            raise
        raise UsageError(f"{exc}\n = help: `--output-json` took `{took}` as the path of the JSON file; write "
                         f"`--output-json=PATH`, or put the task file first: tasker {took} --output-json") from None
    if unknown:
        raise UsageError(f"unrecognized arguments: {' '.join(unknown)}{_suggestion(unknown)}")
    given = vars(namespace)
    return given, [given.pop("task_file")]


def parse_header(tokens: list[str]) -> dict:
    """A task file's argument lines: {dest: value} for the options given; unknown ones are ignored."""
    namespace, _unknown = build_parser(header=True).parse_known_args(tokens)
    return vars(namespace)


def _suggestion(unknown: list[str]) -> str:
    """`` = help: did you mean `--validate-only`?`` for the first mistyped long option."""
    names = [o.long for o in OPTIONS] + ["--help", "--version"]
    for word in unknown:
        if not word.startswith("-") or len(word) < 3:
            continue
        name = word.split("=", 1)[0]
        name = name if name.startswith("--") else "-" + name    # -validate-only: one dash short
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
        if close:
            return f"\n = help: did you mean `{close[0]}`?"
    return ""


def _json_took_task_file(argv: list[str]) -> str | None:
    """The word that ``--output-json WORD`` took as its path, when it did."""
    for word, after in pairwise(argv):
        if word == "--":
            return None
        if len(word) > 3 and "--output-json".startswith(word) and not after.startswith("-"):
            return after
    return None
