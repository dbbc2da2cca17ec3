"""Exec types: the YAML configuration, exec-type resolution, argv building, timeouts.

(docs/exec-types.md.)  The configuration is read on first need only:
a workflow whose tasks all say ``exec=local`` and finish within 5 s never
loads YAML at all (the timeout chain ends in the config, but no timeout can be
shorter than 5 s, so it is only asked for after that).
"""

from __future__ import annotations

import os
import re
import shlex
import sys

from tasker.check.variables import expand_env
from tasker.numbers import clamped
from tasker.resources import shipped_config_path
from tasker.runners.errors import ExecTypeError
from tasker.runners.srun import step_argv
from tasker.runners.ssh import RemoteArgv, sets_control_path

TIMEOUT_MIN = 5
TIMEOUT_MAX = 1000
FALLBACK_TIMEOUT = 300


class ArgumentsError(Exception):
    """Arguments that cannot be split into words (an unbalanced quote: exit 1)."""


class ExecType:
    """One configured exec type."""

    def __init__(self, name: str, spec: dict) -> None:
        self.name = name
        self.binary = str(spec.get("binary") or "")
        template = spec.get("command_template") or ["{binary}", "{command}", "{arguments_split}"]
        self.template = [str(part) for part in template]
        self.timeout = spec.get("timeout")
        self.validation_test = spec.get("validation_test")
        self.runner = str(spec.get("runner") or "").strip().lower()   # "slurm": tasker/runners/slurm.py
        self.slurm = spec.get("slurm")
        # OpenSSH clients only (tasker.runners.ssh): a master connection per host used more
        # than once, and the remote command stopped when its task is stopped.
        self.reuse_connections = spec.get("reuse_connections") is True
        self.stop_remote = spec.get("stop_remote") is True


class ExecConfig:
    """The loaded configuration: exec types, aliases and platform defaults."""

    def __init__(self, path: str | None = None, data: dict | None = None, searched: tuple = ()) -> None:
        self.path = path
        self.searched = searched
        self.types: dict[str, ExecType] = {}
        self.aliases: dict[str, str] = {}
        self.default_exec_type: str | None = None
        self.default_timeout = None
        self.default_validation_timeout = None
        self.hooks: dict = {}
        if data:
            self._read(data)

    def _read(self, data: dict) -> None:
        platform = data.get("platforms", {}).get(platform_key()) or {}
        for name, spec in platform.items():
            if isinstance(spec, dict) and ("binary" in spec or "command_template" in spec):
                self.types[str(name).lower()] = ExecType(str(name).lower(), spec)
        self.default_exec_type = platform.get("default_exec_type")
        self.default_timeout = platform.get("default_timeout")
        self.default_validation_timeout = platform.get("default_validation_timeout")
        self.aliases = {str(k): str(v) for k, v in (data.get("aliases") or {}).items()}
        self.hooks = data.get("host_validation") or {}

    def names(self) -> list[str]:
        """``local`` plus the configured types, sorted (the choices of -t)."""
        return sorted({"local", *self.types})


def platform_key() -> str:
    if sys.platform.startswith("win"):
        return "windows"
    if sys.platform == "darwin":
        return "darwin"
    return "linux"


def find_config(explicit: str | None, environ: dict) -> tuple[str | None, tuple]:
    """The config file to use: --exec-config, $TASKER_EXEC_CONFIG, the shipped one, ./cfg/."""
    candidates = []
    if explicit:
        candidates.append(explicit)
    elif environ.get("TASKER_EXEC_CONFIG"):
        candidates.append(environ["TASKER_EXEC_CONFIG"])
    else:
        shipped = shipped_config_path()
        if shipped:
            candidates.append(shipped)
        candidates.append(os.path.join(os.getcwd(), "cfg", "execution_types.yaml"))
    for path in candidates:
        if os.path.isfile(path):
            return path, tuple(candidates)
    return None, tuple(candidates)


def load_config(path: str | None, searched: tuple = (), warn=None) -> ExecConfig:
    """Parse the YAML file; problems print a warning and leave only ``local``."""
    if path is None:
        return ExecConfig(None, None, searched)
    try:
        import yaml
    except ImportError:
        return ExecConfig(None, None, searched)
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        _warn(warn, f"Warning: Configuration loading issues detected: {path}: {exc}\n"
                    "Only 'local' execution type will be available.")
        return ExecConfig(None, None, searched)
    if not isinstance(data, dict) or "platforms" not in data:
        _warn(warn, f"Warning: Configuration loading issues detected: {path}: "
                    "Config file must contain 'platforms' key\nOnly 'local' execution type will be available.")
        return ExecConfig(None, None, searched)
    return ExecConfig(path, data, searched)


def _warn(warn, message: str) -> None:
    if warn is not None:
        warn(message)
    else:
        print(message, file=sys.stderr)


_BLANKS = re.compile(r"[ \t\r\n]+")
_PIECE = re.compile(r"""
      ([^ \t\r\n'"\\]+)          # plain text
    | '([^']*)'                     # 'single quoted': literal
    | "((?:[^"\\]|\\.)*)"          # "double quoted": \" and \\ are escapes
    | \\([^\ufdd0])                 # \x outside quotes: x
    | ([ \t\r\n]+)                  # blanks between words
    | \\(?=\ufdd0)                  # \ before a value's place: dropped (the value is data already)
""", re.VERBOSE | re.DOTALL)
_DQ_ESCAPE = re.compile(r'\\([\\"])')


def split_arguments(text: str) -> list[str]:
    """Shell-like word splitting, exactly as ``shlex.split(text)`` (POSIX mode, no comments):
    blanks separate words, quotes group and are removed, backslash escapes; no globbing,
    no variables.  Written with one regular expression: shlex reads a character at a time,
    which made long substituted arguments the slowest part of a run."""
    if "'" not in text and '"' not in text and "\\" not in text:
        return [w for w in _BLANKS.split(text) if w]
    return ["".join(piece for piece, _quoted in word) for word in _split_pieces(text)]


# ---------------------------------------------------------------- result values in arguments

_MARK_OPEN, _MARK_CLOSE = "\ufdd0", "\ufdd1"   # Unicode noncharacters (a file's own are escaped)
_MARK = re.compile("\ufdd0(\\d+)\ufdd1")


class Arguments:
    """A task's ``arguments=`` as the file wrote it, with the values of its ``@N_…@`` references.

    The values are data: the file's text is ``$``-expanded and split into words
    first, then each value goes into its word.  Outside quotes a value splits on
    blanks (its first and last pieces join the text around it), inside quotes it
    stays in its word; nothing in a value is expanded, unquoted or unescaped.
    """

    __slots__ = ("pieces",)

    def __init__(self, pieces: list[str | Value]) -> None:
        self.pieces = pieces

    def marked(self) -> tuple[str, list[str]]:
        """The text with each value replaced by a marker, and the values."""
        values: list[str] = []
        out = []

        def place(value: str) -> None:
            out.append(f"{_MARK_OPEN}{len(values)}{_MARK_CLOSE}")
            values.append(value)

        for piece in self.pieces:
            if type(piece) is Value:
                place(piece.text)
            else:
                # a marker character written in the file is passed on as a value of itself, so
                # that it can never read as the place of a value
                for i, part in enumerate(piece.split(_MARK_OPEN)):
                    if i:
                        place(_MARK_OPEN)
                    out.append(part)
        return "".join(out), values


class Value:
    """A substituted result value inside ``Arguments``."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _insert(text: str, values: list[str]) -> str:
    return _MARK.sub(lambda m: values[int(m.group(1))], text) if _MARK_OPEN in text else text


def argument_words(marked: str, values: list[str]) -> list[str]:
    """The words of ``marked`` (already ``$``-expanded) with the values put in (see ``Arguments``)."""
    words: list[str] = []
    for word in _split_pieces(marked, values):
        current: list[str] = []
        has = False
        for piece, quoted in word:
            if quoted or _MARK_OPEN not in piece:
                current.append(_insert(piece, values) if quoted else piece)
                has = True
                continue
            for i, part in enumerate(_MARK.split(piece)):
                if i % 2 == 0:
                    if part:
                        current.append(part)
                        has = True
                    continue
                fields = _BLANKS.split(values[int(part)])
                for j, field in enumerate(fields):
                    if j:
                        if has:
                            words.append("".join(current))
                        current, has = [], False
                    if field:
                        current.append(field)
                        has = True
        if has:
            words.append("".join(current))
    return words


def _split_pieces(text: str, values: list[str] | tuple[str, ...] = ()) -> list[list[tuple[str, bool]]]:
    """Shell-like words as lists of (text, quoted) pieces (quotes removed, escapes applied).

    ``values`` are the result values behind the markers in ``text``: an error names the
    arguments with them put back, never the markers."""
    if "'" not in text and '"' not in text and "\\" not in text:
        return [[(w, False)] for w in _BLANKS.split(text) if w]
    words: list[list[tuple[str, bool]]] = []
    current: list[tuple[str, bool]] = []
    started = False
    pos = 0
    end = len(text)
    while pos < end:
        m = _PIECE.match(text, pos)
        if m is None:
            problem = "No escaped character" if text[pos] == "\\" else "No closing quotation"
            raise ArgumentsError(f"cannot split arguments {_insert(text, values)!r}: {problem}")
        plain, single, double, escaped, blank = m.groups()
        if m.lastindex is None:     # a backslash before a value's place: nothing to keep
            pos = m.end()
            continue
        if blank is not None:
            if started:
                words.append(current)
                current, started = [], False
        else:
            started = True
            if plain is not None:
                current.append((plain, False))
            elif single is not None:
                current.append((single, True))
            elif double is not None:
                current.append((_DQ_ESCAPE.sub(r"\1", double) if "\\" in double else double, True))
            else:
                current.append((escaped, True))
        pos = m.end()
    if started:
        words.append(current)
    return words


class ExecTypes:
    """Resolves exec types and builds argv for the VM (config loaded lazily)."""

    def __init__(self, *, explicit_config: str | None = None, cli_type: str | None = None,
                 cli_timeout: int | None = None, environ: dict | None = None, warn=None) -> None:
        self.explicit_config = explicit_config
        self.cli_type = cli_type
        self.cli_timeout = cli_timeout
        self.environ = environ if environ is not None else dict(os.environ)
        self.warn = warn
        self._config: ExecConfig | None = None

    @property
    def config(self) -> ExecConfig:
        if self._config is None:
            path, searched = find_config(self.explicit_config, self.environ)
            self._config = load_config(path, searched, self.warn)
        return self._config

    def use_config(self, config: ExecConfig) -> None:
        self._config = config

    def requested(self, task_exec: str | None) -> str:
        """The exec type name as requested: task exec=, -t, $TASK_EXECUTOR_TYPE, config default, local."""
        if task_exec == "local":
            return task_exec
        for value in (task_exec, self.cli_type, self.environ.get("TASK_EXECUTOR_TYPE")):
            if value and value.strip():
                return value.strip()
        default = self.config.default_exec_type
        return str(default).strip() if default else "local"

    def canonical(self, name: str) -> str:
        """Lower-cased and alias-mapped; ``local`` stays the built-in type."""
        low = name.strip().lower()
        if low == "local":
            return "local"
        mapped = self.config.aliases.get(low, self.config.aliases.get(name.strip(), low))
        return mapped.lower()

    def argv(self, canonical: str, hostname: str, command: str, arguments: str | Arguments) -> list[str]:
        """The argv for one task: ``$`` expanded in the file's text, never in result values."""
        if type(arguments) is Arguments:
            marked, values = arguments.marked()
            marked = expand_env_value(marked, self.environ)
            words = None if canonical != "local" and not values else argument_words(marked, values)
            text = _insert(marked, values)
        else:
            text = expand_env_value(arguments, self.environ)
            words = None
        if canonical == "local":
            return [command, *(words if words is not None else split_arguments(text))]
        spec = self.config.types.get(canonical)
        if spec is None:
            raise ExecTypeError(self.unknown_message(canonical))
        if spec.runner:
            return runner_argv(spec, hostname, command, words if words is not None else split_arguments(text))
        return render_template(spec, hostname, command, text, words)

    def unknown_message(self, name: str) -> str:
        cfg = self.config
        known = ", ".join(cfg.names())
        where = cfg.path or "no configuration file found (searched: " + ", ".join(cfg.searched) + ")"
        return f"exec type '{name}' is not configured (available: {known}; config: {where})"

    def timeout(self, task_value: str | None, canonical: str, warn=None) -> float:
        """Timeout chain of docs/exec-types.md, clamped to 5..1000 s."""
        value = _int_or_none(task_value)
        if task_value and value is None and warn:
            warn(f"timeout '{task_value}' is not a whole number; using the default")
        if value is None and self.cli_timeout is not None:
            # -o outside the range was reported once when the run started, not at every task
            return float(min(max(clamped(str(self.cli_timeout)), TIMEOUT_MIN), TIMEOUT_MAX))
        if value is None:
            spec = self.config.types.get(canonical)
            for candidate in (spec.timeout if spec else None, self.config.default_timeout,
                              self.environ.get("TASK_EXECUTOR_TIMEOUT")):
                value = _int_or_none(candidate)
                if value is not None:
                    break
        if value is None:
            value = FALLBACK_TIMEOUT
        if not TIMEOUT_MIN <= value <= TIMEOUT_MAX:
            bounded = min(max(value, TIMEOUT_MIN), TIMEOUT_MAX)
            if warn:
                warn(f"timeout {value} s is outside {TIMEOUT_MIN}..{TIMEOUT_MAX}; using {bounded} s")
            value = bounded
        return float(value)


def _int_or_none(value) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.lstrip("+-").isdigit():
        return clamped(text)
    return None


def expand_env_value(text: str, environ: dict) -> str:
    """``$NAME``/``${NAME}`` replaced by the environment; unset names stay as written."""
    if "$" not in text:
        return text

    return expand_env(text, environ)[0]


class _Fields(dict):
    """The values of a template's placeholders; ``{command_line}`` is built on first use."""

    def __init__(self, command: str, arguments: str, words: list[str] | None, **values: str) -> None:
        super().__init__(command=command, arguments=arguments, **values)
        self._words = (command, arguments, words)

    def __missing__(self, key: str) -> str:
        if key == "command_line":
            command, arguments, words = self._words
            value = command_line(command, arguments, words)
            self[key] = value
            return value
        raise ExecTypeError(f"unknown placeholder {{{key}}} in command_template")


def command_line(command: str, arguments: str, words: list[str] | None = None) -> str:
    """The command and its split arguments as one POSIX-shell-quoted string.

    For programs that hand one string to a remote shell (``ssh host STRING``):
    the remote shell parses it back into exactly ``[command, *words]``, the
    argv that ``exec=local`` would start, with no expansion, globbing,
    redirection or ``;`` on the remote side.
    """

    return shlex.join([command, *(words if words is not None else split_arguments(arguments))])


def runner_argv(spec: ExecType, hostname: str, command: str, words: list[str]) -> list[str]:
    """The argv of a type whose ``runner:`` is one of tasker's own (only ``slurm`` so far)."""
    if spec.runner == "slurm":
        return step_argv(spec, hostname, command, words)
    raise ExecTypeError(f"exec type '{spec.name}': unknown runner '{spec.runner}' (known: slurm)")


def render_template(spec: ExecType, hostname: str, command: str, arguments: str,
                    words: list[str] | None = None) -> list[str]:
    """Fill a command_template; ``words``: the arguments already split (with result values in)."""
    fields = _Fields(command, arguments, words, binary=spec.binary, hostname=hostname)
    argv: list[str] = []
    for part in spec.template:
        if part == "{arguments_split}":
            argv.extend(words if words is not None else split_arguments(arguments))
            continue
        try:
            argv.append(part.format_map(fields))
        except (ValueError, IndexError, AttributeError) as exc:
            raise ExecTypeError(f"exec type '{spec.name}': bad command_template part {part!r}: {exc}") from None
    if spec.reuse_connections or spec.stop_remote:
        return _remote_argv(spec, argv)
    return argv


def _remote_argv(spec: ExecType, argv: list[str]):
    """The argv marked for tasker.runners.ssh: where the host name and the command line are."""
    parts = spec.template
    if "{hostname}" not in parts or "{arguments_split}" in parts:
        return argv                  # not a shape the ssh services understand: run it as written
    host_at = parts.index("{hostname}")
    line_at = parts.index("{command_line}") if "{command_line}" in parts else -1
    if spec.stop_remote and "-n" in parts[:host_at]:
        raise ExecTypeError(f"exec type '{spec.name}': stop_remote needs ssh's standard input, "
                            "but command_template passes -n: remove -n (the remote command still "
                            "reads /dev/null)")
    reuse = spec.reuse_connections and not sets_control_path(parts[:host_at])
    return RemoteArgv(argv, exec_type=spec.name, host_at=host_at, line_at=line_at, reuse=reuse,
                      stop=spec.stop_remote)
