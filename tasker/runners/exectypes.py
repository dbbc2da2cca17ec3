"""Exec types: the YAML configuration, exec-type resolution, argv building, timeouts.

(execution_types.md §1-§6.)  The configuration is read on first need only:
a workflow whose tasks all say ``exec=local`` and finish within 5 s never
loads YAML at all (the timeout chain ends in the config, but no timeout can be
shorter than 5 s, so it is only asked for after that).
"""

from __future__ import annotations

import os
import re
import sys

from tasker.resources import shipped_config_path

TIMEOUT_MIN = 5
TIMEOUT_MAX = 1000
FALLBACK_TIMEOUT = 300


class ExecTypeError(Exception):
    """An exec type that is not configured, or a broken template (exit 20)."""


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
        self.description = str(spec.get("description") or "")
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
    | \\(.)                         # \x outside quotes: x
    | ([ \t\r\n]+)                  # blanks between words
""", re.VERBOSE | re.DOTALL)
_DQ_ESCAPE = re.compile(r'\\([\\"])')


def split_arguments(text: str) -> list[str]:
    """Shell-like word splitting, exactly as ``shlex.split(text)`` (POSIX mode, no comments):
    blanks separate words, quotes group and are removed, backslash escapes; no globbing,
    no variables.  Written with one regular expression: shlex reads a character at a time,
    which made long substituted arguments the slowest part of a run."""
    if "'" not in text and '"' not in text and "\\" not in text:
        return [w for w in _BLANKS.split(text) if w]
    words: list[str] = []
    current: list[str] = []
    started = False
    pos = 0
    end = len(text)
    while pos < end:
        m = _PIECE.match(text, pos)
        if m is None:
            problem = "No escaped character" if text[pos] == "\\" else "No closing quotation"
            raise ArgumentsError(f"cannot split arguments {text!r}: {problem}")
        plain, single, double, escaped, blank = m.groups()
        if blank is not None:
            if started:
                words.append("".join(current))
                current, started = [], False
        else:
            started = True
            if plain is not None:
                current.append(plain)
            elif single is not None:
                current.append(single)
            elif double is not None:
                current.append(_DQ_ESCAPE.sub(r"\1", double) if "\\" in double else double)
            else:
                current.append(escaped)
        pos = m.end()
    if started:
        words.append("".join(current))
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

    def argv(self, canonical: str, hostname: str, command: str, arguments: str) -> list[str]:
        """The argv for one task (execution_types.md §5)."""
        expanded = expand_env_value(arguments, self.environ)
        if canonical == "local":
            return [command, *split_arguments(expanded)]
        spec = self.config.types.get(canonical)
        if spec is None:
            raise ExecTypeError(self.unknown_message(canonical))
        return render_template(spec, hostname, command, expanded)

    def unknown_message(self, name: str) -> str:
        cfg = self.config
        known = ", ".join(cfg.names())
        where = cfg.path or "no configuration file found (searched: " + ", ".join(cfg.searched) + ")"
        return f"exec type '{name}' is not configured (available: {known}; config: {where})"

    def timeout(self, task_value: str | None, canonical: str, warn=None) -> float:
        """Timeout chain of execution_types.md §6, clamped to 5..1000 s."""
        value = _int_or_none(task_value)
        if task_value and value is None and warn:
            warn(f"timeout '{task_value}' is not a whole number; using the default")
        if value is None and self.cli_timeout is not None:
            value = int(self.cli_timeout)
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
            clamped = min(max(value, TIMEOUT_MIN), TIMEOUT_MAX)
            if warn:
                warn(f"timeout {value} s is outside {TIMEOUT_MIN}..{TIMEOUT_MAX}; using {clamped} s")
            value = clamped
        return float(value)


def _int_or_none(value) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.lstrip("+-").isdigit():
        return int(text)
    return None


def expand_env_value(text: str, environ: dict) -> str:
    """``$NAME``/``${NAME}`` replaced by the environment; unset names stay as written."""
    if "$" not in text:
        return text
    from tasker.check.variables import expand_env

    return expand_env(text, environ)[0]


class _Fields(dict):
    """The values of a template's placeholders; ``{command_line}`` is built on first use."""

    def __init__(self, command: str, arguments: str, **values: str) -> None:
        super().__init__(command=command, arguments=arguments, **values)
        self._words = (command, arguments)

    def __missing__(self, key: str) -> str:
        if key == "command_line":
            command, arguments = self._words
            value = command_line(command, arguments)
            self[key] = value
            return value
        raise ExecTypeError(f"unknown placeholder {{{key}}} in command_template")


def command_line(command: str, arguments: str) -> str:
    """The command and its split arguments as one POSIX-shell-quoted string.

    For programs that hand one string to a remote shell (``ssh host STRING``):
    the remote shell parses it back into exactly ``[command, *words]``, the
    argv that ``exec=local`` would start, with no expansion, globbing,
    redirection or ``;`` on the remote side.
    """
    import shlex

    return shlex.join([command, *split_arguments(arguments)])


def render_template(spec: ExecType, hostname: str, command: str, arguments: str) -> list[str]:
    """Fill a command_template (execution_types.md §5.2, plus ``{command_line}``)."""
    fields = _Fields(command, arguments, binary=spec.binary, hostname=hostname)
    argv: list[str] = []
    for part in spec.template:
        if part == "{arguments_split}":
            argv.extend(split_arguments(arguments))
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
    from tasker.runners.ssh import RemoteArgv, sets_control_path

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
