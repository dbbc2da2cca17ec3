"""The option table of ``tasker`` and a small GNU-style parser for it.

The parser follows argparse's conventions (``--opt=value`` and ``--opt value``,
unambiguous prefixes of long options, bundled short flags ``-ry``, ``-lDIR``,
``--`` ends the options, an optional-value option takes the next word unless it
looks like an option) and argparse's wording of errors.  It exists because
building an argparse parser for 40 options costs more than the rest of a short
run's start-up; the table below is the single source of the options and of
``--help``.
"""

from __future__ import annotations

from tasker import __version__

FLAG = "flag"
VALUE = "value"
OPTIONAL = "optional"     # --output-json [PATH]

LOG_LEVELS = ("ERROR", "WARN", "INFO", "DEBUG")
PLAN_FORMATS = ("text", "dot", "mermaid", "svg")
OUTPUT_JSON_AUTO = "\0auto"   # --output-json without a path


class UsageError(Exception):
    """A command-line problem: exit 2 with the usage line."""


class Option:
    """One option: its names, where the value goes, how it is read, and its help."""

    __slots__ = ("choices", "convert", "dest", "help", "kind", "long", "metavar", "short")

    def __init__(self, short: str | None, long: str, kind: str, help: str, *, metavar: str = "",
                 convert=None, choices: tuple = ()) -> None:
        self.short = short
        self.long = long
        self.kind = kind
        self.help = help
        self.metavar = metavar
        self.convert = convert
        self.choices = choices
        self.dest = long[2:].replace("-", "_")

    def label(self) -> str:
        names = "/".join(n for n in (self.short, self.long) if n)
        return f"argument {names}"

    def value(self, raw: str):
        if self.convert is not None:
            try:
                raw = self.convert(raw)
            except ValueError:
                kind = getattr(self.convert, "label", "value")
                raise UsageError(f"{self.label()}: invalid {kind} value: {raw!r}") from None
        if self.choices and raw not in self.choices:
            listed = ", ".join(repr(c) for c in self.choices)
            raise UsageError(f"{self.label()}: invalid choice: {raw!r} (choose from {listed})")
        return raw


def _log_level(value: str) -> str:
    level = value.strip().upper()
    level = "WARN" if level == "WARNING" else level
    if level not in LOG_LEVELS:
        raise ValueError(value)
    return level


_log_level.label = "log level"


def _int(value: str) -> int:
    return int(value)


_int.label = "int"

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
BY_LONG = {o.long: o for o in OPTIONS}
BY_SHORT = {o.short: o for o in OPTIONS if o.short}
FLAG_DESTS = tuple(o.dest for o in OPTIONS if o.kind == FLAG)
VALUE_DESTS = tuple(o.dest for o in OPTIONS if o.kind != FLAG)

USAGE = "usage: tasker [options] TASK_FILE"
DESCRIPTION = "Run a TASKER task file: validate it, then execute its tasks (a dry run unless -r is given)."
EPILOG = ("Exit codes: 0 success, 1 task failure, 2 usage, 10 condition not met, 12 start/resume refused, "
          "20 validation failed, 21/60/61 host validation, 24 no tasks, 25 instance running, 124 timeout, "
          "130/143 interrupted.\n"
          "Run history: tasker history [TASK_FILE] [--failed] [--project NAME] [--since 7d] [--last N] [--json]; "
          "tasker history show RUN; tasker history prune --older-than 30d; tasker report RUN.")


class HelpRequested(Exception):
    """-h/--help: print ``text`` and exit 0."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def help_text() -> str:
    rows = [("TASK_FILE", "the task file to run"), ("-h, --help", "show this help and exit"),
            ("-V, --version", "print the version and exit")]
    for o in OPTIONS:
        names = ", ".join(n for n in (o.short, o.long) if n)
        if o.kind == VALUE:
            names += f" {o.metavar}"
        elif o.kind == OPTIONAL:
            names += f" [{o.metavar}]"
        rows.append((names, o.help))
    width = min(34, max(len(r[0]) for r in rows) + 2)
    lines = [USAGE, "", DESCRIPTION, "", "options:"]
    for names, text in rows:
        if len(names) + 2 > width:
            lines.append(f"  {names}")
            lines.append(f"  {'':{width}}{text}")
        else:
            lines.append(f"  {names:{width}}{text}")
    return "\n".join([*lines, "", EPILOG])


def _long_option(name: str) -> Option | None:
    """Exact name, else a unique prefix (argparse's allow_abbrev)."""
    option = BY_LONG.get(name)
    if option is not None:
        return option
    if name in ("--help", "--version"):
        return None
    matches = [o for long, o in BY_LONG.items() if long.startswith(name)]
    if len(matches) > 1:
        listed = ", ".join(o.long for o in matches)
        raise UsageError(f"ambiguous option: {name} could match {listed}")
    return matches[0] if matches else None


def _looks_like_option(word: str) -> bool:
    if not word.startswith("-") or word == "-":
        return False
    return not word[1:].replace(".", "", 1).isdigit()   # -5 is a value, not an option


def parse(argv: list[str], *, positional: bool = True, ignore_unknown: bool = False) -> tuple[dict, list[str]]:
    """Parse ``argv``: returns ({dest: value} for the options given, positionals)."""
    given: dict = {}
    rest: list[str] = []
    unknown: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            rest.extend(argv[i:])
            break
        if not _looks_like_option(word):
            rest.append(word)
            continue
        if word.startswith("--"):
            name, eq, inline = word.partition("=")
            if name in ("--help", "--version") and not ignore_unknown:
                _special(name)
            option = _long_option(name)
            if option is None:
                unknown.append(word)
                continue
            i = _take(option, given, argv, i, inline if eq else None)
            continue
        i = _short_cluster(word, given, argv, i, unknown, ignore_unknown)
    if unknown and not ignore_unknown:
        raise UsageError(f"unrecognized arguments: {' '.join(unknown)}")
    if positional:
        if not rest:
            raise UsageError("the following arguments are required: task_file")
        if len(rest) > 1:
            raise UsageError(f"unrecognized arguments: {' '.join(rest[1:])}")
    return given, rest


def _special(name: str) -> None:
    if name in ("--help", "-h"):
        raise HelpRequested(help_text())
    raise HelpRequested(f"TASKER v{__version__}")


def _short_cluster(word: str, given: dict, argv: list[str], i: int, unknown: list[str], ignore: bool) -> int:
    """``-r``, ``-ry`` (bundled flags), ``-l DIR``, ``-lDIR``."""
    letters = word[1:]
    for pos, letter in enumerate(letters):
        flag = f"-{letter}"
        if flag in ("-h", "-V") and not ignore:
            _special("--help" if flag == "-h" else "--version")
        option = BY_SHORT.get(flag)
        if option is None:
            unknown.append(word if pos == 0 else flag)
            return i
        if option.kind == FLAG:
            if letters[pos + 1:pos + 2] == "=":
                raise UsageError(f"{option.label()}: ignored explicit argument {letters[pos + 2:]!r}")
            given[option.dest] = True
            continue
        inline = letters[pos + 1:]
        if inline.startswith("="):
            inline = inline[1:]
        return _take(option, given, argv, i, inline or None)
    return i


def _take(option: Option, given: dict, argv: list[str], i: int, inline: str | None) -> int:
    """Store the option's value; returns the index of the next word."""
    if option.kind == FLAG:
        if inline is not None:
            raise UsageError(f"{option.label()}: ignored explicit argument {inline!r}")
        given[option.dest] = True
        return i
    if inline is not None:
        given[option.dest] = option.value(inline)
        return i
    if i < len(argv) and not _looks_like_option(argv[i]):
        given[option.dest] = option.value(argv[i])
        return i + 1
    if option.kind == OPTIONAL:
        given[option.dest] = OUTPUT_JSON_AUTO
        return i
    raise UsageError(f"{option.label()}: expected one argument")
