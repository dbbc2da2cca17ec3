"""Semantic analysis: ``TaskFile`` AST -> typed ``Workflow`` plus diagnostics.

Two kinds of rules (docs/taskfile.md):

* rules that hold even with ``--skip-task-validation`` (integer and unique
  task ids, global names and values, ``--strict-env-validation``): their
  errors are always reported;
* static validation (every other rule of the spec, security patterns
  included unless ``--skip-security-validation``): only when enabled.

Every problem is collected (not just the first) with its span and a hint of
what to write instead.  The typed workflow is built either way: with
validation skipped, malformed values fall back to what TASKER does at run time
(a condition that does not parse evaluates false, and so on).
"""

from __future__ import annotations

import difflib
import re
from itertools import pairwise

import attrs

from tasker.check import model, security
from tasker.check.model import (
    BLOCK_KINDS,
    CONDITIONAL,
    DECISION,
    NORMAL,
    PARALLEL,
    RETURN,
    GlobalVar,
    Retry,
    Task,
    Workflow,
)
from tasker.check.variables import (
    CHAIN_DEPTH,
    GLOBAL_RE,
    MAX_EXPANSION,
    NAME_RE,
    TASKISH_RE,
    TASKREF_RE,
    ExpansionTooLarge,
    env_names,
    expand_env,
    expand_globals,
    global_refs,
    parse_template,
)
from tasker.diagnostics import ERROR, Diagnostics, Span, listing
from tasker.numbers import MAX_DIGITS, OutOfRange, abbreviate, clamped, too_long
from tasker.syntax.ast import (
    AllOf,
    AnyOf,
    Invalid,
    Multi,
    Next,
    Split,
    Template,
)
from tasker.syntax.condition import parse_condition
from tasker.syntax.errors import ConditionError

TASK_FIELDS = (
    "task", "hostname", "command", "arguments", "next", "stdout_split", "stderr_split",
    "stdout_count", "stderr_count", "sleep", "loop", "loop_break", "on_failure", "on_success",
    "success", "failure", "condition", "exec", "timeout", "return", "type", "max_parallel",
    "tasks", "hostnames", "retry_failed", "retry_count", "retry_delay", "if_true_tasks",
    "if_false_tasks",
)
FIELD_SET = frozenset(TASK_FIELDS)
# Names a global may not have (docs/taskfile.md; 'hostnames' is allowed, as in 2.2).
RESERVED_GLOBALS = frozenset(TASK_FIELDS) - {"hostnames"}
KNOWN_EXEC = ("local", "shell", "pbrun", "p7s", "wwrs", "ssh", "sh", "bash", "/bin/sh", "/bin/bash")
CONDITION_FIELDS = ("condition", "success", "failure", "loop_break")
# Fields whose task-result placeholders are read when the task runs (for the data-flow analysis).
_READ_FIELDS = ("hostname", "command", "arguments", "exec", "timeout", "sleep", "condition", "success", "failure",
                "loop_break", "next")
ROUTING_FIELDS = ("next", "on_success", "on_failure")
MAX_TASK_ID = 99_999           # 100000 and above are generated hostnames subtasks
MAX_HOSTS = 1000
_INT_RE = re.compile(r"\s*[+-]?\d+\s*\Z")
_FLOAT_RE = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*\Z")
# Fields that hold numbers or task ids (conditions are checked by their own parser).
_NUMERIC_FIELDS = ("task", "next", "stdout_split", "stderr_split", "sleep", "loop", "on_failure", "on_success",
                   "timeout", "return", "max_parallel", "tasks", "retry_count", "retry_delay", "if_true_tasks",
                   "if_false_tasks")
_LONG_NUMBER = re.compile(rf"(?<!\d)0*[1-9]\d{{{MAX_DIGITS},}}")   # leading zeros do not count
_TRAILING_COMMENT = re.compile(r"\s#\s*\S")
_IPV4_SHAPE = re.compile(r"\d+(\.\d+){3}\Z")
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
SPLIT_KEYWORDS = ("space", "whitespace", "tab", "newline", "comma", "semicolon", "semi", "colon", "pipe")


class CheckOptions:
    """Which rules run, and the environment globals are expanded from."""

    def __init__(self, *, validate: bool = True, security: bool = True, strict_env: bool = False,
                 subtask_range: bool = True, environ: dict | None = None,
                 saved_globals: dict | None = None, exec_types: object | None = None,
                 unresolved_hosts: bool = False) -> None:
        self.validate = validate
        self.security = security
        self.strict_env = strict_env
        self.subtask_range = subtask_range
        self.environ = environ if environ is not None else {}
        # Values a recovery file saved for globals read from the environment: used when
        # their variables are unset now (docs/command-line.md).
        self.saved_globals = saved_globals or {}
        # The run's exec-type resolver (``tasker.runners.exectypes.ExecTypes``): when given, an
        # exec= name it does not configure is an error.  Its configuration file is read only
        # when a task names a type other than local.
        self.exec_types = exec_types
        # Host validation runs and must see every host name: one that still holds a reference
        # after global expansion is an error, whatever the exec type (local too).
        self.unresolved_hosts = unresolved_hosts


_UNRESOLVED_RE = re.compile(r"@[A-Za-z0-9_]+@")


def as_int(text: str) -> int | None:
    """The integer a field value spells (sign and blanks allowed), else None."""
    if text.isdigit() and text.isascii():
        return clamped(text)
    return clamped(text) if _INT_RE.match(text) else None


def as_number(text: str) -> float | None:
    return float(text) if _FLOAT_RE.match(text) else None


def compile_workflow(tf, options: CheckOptions) -> tuple[Workflow, Diagnostics]:
    """Check ``tf`` and build its workflow (see module docstring)."""
    compiler = _Compiler(tf, options)
    return compiler.run(), compiler.diags


class _Field:
    """A task field after global expansion, with its source position."""

    __slots__ = ("key", "pair", "raw", "value")

    def __init__(self, pair, value: str) -> None:
        self.pair = pair
        self.key = pair.key
        self.raw = pair.value
        self.value = value

    @property
    def span(self) -> Span:
        return self.pair.value_span

    @property
    def key_span(self) -> Span:
        return self.pair.span


class _Compiler:
    def __init__(self, tf, options: CheckOptions) -> None:
        self.tf = tf
        self.opts = options
        self.validate = options.validate
        self.diags = Diagnostics()
        self.globals: dict[str, GlobalVar] = {}
        self.values: dict[str, str] = {}
        self.unset_env: dict[str, list[str]] = {}
        self.recovered_unset: dict[str, list[str]] = {}   # unset now, saved value used
        self.used_globals: set[str] = set()
        self.global_uses: dict[str, Span] = {}
        self.blocks: dict[int, object] = {}       # id -> TaskBlock
        self.fields: dict[int, dict[str, _Field]] = {}

    # ------------------------------------------------------------ reporting

    def error(self, message: str, span: Span | None = None, help: str | None = None,
              related: tuple = ()) -> None:
        self.diags.error(message, span, help, related)

    def verror(self, message: str, span: Span | None = None, help: str | None = None,
               related: tuple = ()) -> None:
        """An error of static validation (dropped when validation is skipped)."""
        if self.validate:
            self.diags.error(message, span, help, related)

    def vwarn(self, message: str, span: Span) -> None:
        """A warning of static validation (dropped when validation is skipped)."""
        if self.validate:
            self.diags.warning(message, span)

    # ------------------------------------------------------------ driver

    def run(self) -> Workflow:
        self.compile_globals()
        self.collect_tasks()
        self.expand_fields()
        tasks: dict[int, Task] = {}
        for tid in sorted(self.fields):
            tasks[tid] = self.type_task(tid, self.fields[tid])
        if self.opts.unresolved_hosts:
            self.check_unresolved_hosts(tasks)
        tasks = self.generate_host_subtasks(tasks)
        if self.validate:
            _Rules(self, tasks).run()
            self.check_globals_use()
        return Workflow(self.tf.path, tasks, self.globals, self.tf.file_args, unset_env=self.recovered_unset)

    # ------------------------------------------------------------ globals

    def compile_globals(self) -> None:
        env = self.opts.environ
        for pair in self.tf.globals:
            name = pair.key
            if name in RESERVED_GLOBALS:
                self.verror(f"global variable `{name}` has the name of a task field", pair.span,
                            help=f"a line `{name}=` before the first task= defines nothing; name the "
                                 f"variable differently, e.g. {name.upper()} or MY_{name.upper()}")
                continue
            if not NAME_RE.match(name) or len(name) > 64:
                self.error(f"invalid global variable name `{name}`", pair.span,
                           help="names start with a letter or _, continue with letters, digits or _, "
                                "and are at most 64 characters (e.g. MY_VAR)")
                continue
            names = env_names(pair.value)
            if self.opts.strict_env:
                for var in names:
                    if not var.startswith("TASKER_"):
                        self.error(f"global {name} uses environment variable ${var}; with "
                                   "--strict-env-validation only TASKER_* variables may be used",
                                   pair.value_span, help=f"rename the variable to TASKER_{var}")
            value, missing = expand_env(pair.value, env)
            if missing and name in self.opts.saved_globals:
                value, missing = self.opts.saved_globals[name], []
                self.recovered_unset[name] = [m for m in env_names(pair.value) if m not in env]
            for severity, message, help in security.check_global_value(name, value):
                if severity == ERROR:
                    self.error(message, pair.value_span, help)
                else:
                    self.diags.warning(message, pair.value_span, help)
            if name in self.globals:
                self.vwarn(f"global {name} is defined again; the last definition wins", pair.span)
            self.globals[name] = GlobalVar(name, value, pair.value, bool(names), pair.span)
            self.values[name] = value
            if missing:
                self.unset_env[name] = missing

    def check_globals_use(self) -> None:
        used = self._used_transitively()
        for name, missing in self.unset_env.items():
            if name in used:
                var = self.globals[name]
                listed = ", ".join(f"${m}" for m in missing)
                self.verror(f"global {name} uses unset environment variable {listed}", var.span,
                            help=f"export {missing[0]} before running, or give {name} a literal value",
                            related=((self.global_uses.get(name), f"{name} is used here"),)
                            if self.global_uses.get(name) else ())
        for name, var in self.globals.items():
            if name not in used:
                self.vwarn(f"global variable {name} is never used", var.span)

    def _used_transitively(self) -> set[str]:
        used = set(self.used_globals)
        todo = list(used)
        while todo:
            name = todo.pop()
            var = self.globals.get(name)
            if var is None:
                continue
            for m in global_refs(var.value):
                ref = m.group(1)
                if ref in self.globals and ref not in used:
                    used.add(ref)
                    todo.append(ref)
        return used

    # ------------------------------------------------------------ task blocks

    def collect_tasks(self) -> None:
        for block in self.tf.tasks:
            text = block.id_text
            tid = as_int(text)
            if tid is None:
                self.error(f"task id `{text}` is not a whole number", block.id_span,
                           help="task ids are integers: task=0, task=1, ...")
                continue
            if self.validate:
                self.check_task_id(tid, text, block)
            if tid in self.blocks:
                first = self.blocks[tid]
                self.error(f"task {tid} is defined twice", block.id_span,
                           help="give every task its own id",
                           related=((first.id_span, f"task {tid} is first defined here"),))
                continue
            self.blocks[tid] = block
            self.fields[tid] = self.block_fields(tid, block)

    def check_task_id(self, tid: int, text: str, block) -> None:
        if too_long(text):
            self.error(f"task id {abbreviate(text)} is out of range", block.id_span,
                       help=f"task ids are whole numbers from 0 to {MAX_TASK_ID}")
        elif tid < 0:
            self.error(f"task id {tid} is negative", block.id_span, help="task ids start at 0")
        elif tid > MAX_TASK_ID:
            self.error(f"task id {tid} is too large: ids from 100000 up are reserved for the "
                       "subtasks that hostnames= blocks generate", block.id_span)
        elif len(text.strip()) > 10:
            self.error(f"task id `{text}` is longer than 10 characters", block.id_span)

    def block_fields(self, tid: int, block) -> dict[str, object]:
        fields: dict[str, object] = {}
        for pair in block.fields:
            key = pair.key
            if key not in FIELD_SET:
                if self.validate:
                    self.unknown_key(pair, tid)
                continue
            if key in fields and self.validate:
                self.diags.warning(f"task {tid}: `{key}` is set again; the last value wins", pair.span)
            fields[key] = pair
        for line in block.stray:
            self.vwarn(f"line is not a key=value pair and is ignored: {line.text!r}", line.span)
        return fields

    def unknown_key(self, pair, tid: int) -> None:
        close = difflib.get_close_matches(pair.key.lower(), TASK_FIELDS, n=1, cutoff=0.7)
        help = f"did you mean `{close[0]}`?" if close else None
        if NAME_RE.match(pair.key) and not close:
            help = ("global variables must be defined before the first task= line; "
                    "after it they define nothing")
        self.diags.warning(f"task {tid}: unknown field `{pair.key}` is ignored", pair.span, help)

    # ------------------------------------------------------------ global expansion

    def expand_fields(self) -> None:
        defined = self.values
        for tid, raw in self.fields.items():
            expanded: dict[str, _Field] = {}
            for key, pair in raw.items():
                value = pair.value
                if key not in ("task", "type") and "@" in value:
                    value = self.expand(tid, key, pair, defined)
                if key in _NUMERIC_FIELDS and key != "task":
                    self.number_range(tid, key, pair, value)
                comment = self.validate and "#" in value and key != "task" and _TRAILING_COMMENT.search(pair.value)
                if comment:
                    where = pair.value_span.at(comment.start() + 1, len(pair.value) - comment.start() - 1)
                    self.error(f"task {tid}: `{key}` contains ` #`: there are no trailing comments", where,
                               help="put the comment on a line of its own starting with #; a # without a "
                                    "blank before it (a#b) is part of the value")
                expanded[key] = _Field(pair, value)
            self.fields[tid] = expanded

    def number_range(self, tid: int, key: str, pair, value: str) -> None:
        """A number too long to be meant (and to convert) in a numeric field is a range error."""
        for m in _LONG_NUMBER.finditer(value):
            where = pair.value_span.at(m.start(), len(m.group())) if value == pair.value else pair.value_span
            self.error(f"task {tid}: {key}: {OutOfRange(m.group()).args[0]}", where,
                       help=f"write a number of at most {MAX_DIGITS} digits")

    def expand(self, tid: int, key: str, pair, defined: dict[str, str]) -> str:
        """The field's value with globals expanded; notes uses and reports undefined names."""
        seen: list[re.Match] = []

        def repl(m: re.Match) -> str:
            seen.append(m)
            return defined.get(m.group(1), m.group(0))

        size = len(pair.value) + sum(len(defined.get(m.group(1), "")) for m in GLOBAL_RE.finditer(pair.value))
        if size > MAX_EXPANSION:   # many uses of long globals on one line
            first = GLOBAL_RE.search(pair.value).group(1)
            self.error(f"task {tid}: {key}: {ExpansionTooLarge([first], size)}", pair.value_span,
                       help="use fewer or shorter globals in this field")
            return pair.value
        value = GLOBAL_RE.sub(repl, pair.value)
        for m in seen:
            name = m.group(1)
            if name in defined:
                if name not in self.used_globals:
                    self.used_globals.add(name)
                    self.global_uses[name] = pair.value_span.at(m.start(), len(m.group(0)))
            elif name != "task" and key != "return" and not (name == "host" and "hostnames" in self.fields[tid]):
                self.verror(f"task {tid}: undefined global variable @{name}@ in {key}",
                            pair.value_span.at(m.start(), len(m.group(0))),
                            help=self._undefined_global_help(name))
        if "@" in value and any(m.group(1) in defined for m in seen):
            try:
                value = expand_globals(value, defined, CHAIN_DEPTH)   # chains: a global's value names another
            except ExpansionTooLarge as exc:
                self.error(f"task {tid}: {key}: {exc}", pair.value_span,
                           help="a global that uses itself, or globals that each use another several times, "
                                "grow at every step of the chain; use each global once")
                return pair.value
        return value

    def closest_ids(self, tid: int) -> str:
        """A hint naming the defined task ids nearest to ``tid`` (the asking task is one of them)."""
        near = sorted(sorted(self.blocks, key=lambda i: abs(i - tid))[:3])
        return "defined tasks nearby: " + ", ".join(map(str, near))

    def _undefined_global_help(self, name: str) -> str:
        if name == "host":
            return "@host@ is defined only inside a hostnames= block, where it is each member's host name"

        close = difflib.get_close_matches(name, list(self.globals), n=1)
        if close:
            return f"did you mean @{close[0]}@?"
        return f"define it before the first task= line, e.g. {name}=value"

    # ------------------------------------------------------------ typing

    def type_task(self, tid: int, f: dict[str, _Field]) -> Task:
        block = self.blocks[tid]
        kind = self.kind_of(f)
        t: dict[str, object] = {"id": tid, "kind": kind, "span": block.id_span}
        for key in ("hostname", "command", "exec", "timeout", "sleep", "arguments"):
            if key in f:
                t[key] = parse_template(f[key].value)
        for key in CONDITION_FIELDS:
            if key in f:
                t[key] = self.condition(tid, f[key])
        if "next" in f:
            t["next"] = self.next_value(tid, f["next"], kind)
        for key in ("on_success", "on_failure"):
            if key in f:
                t[key] = self.target(tid, f[key])
        if "loop" in f:
            t["loop"] = self.loop_count(tid, f["loop"])
        if "return" in f:
            t["return_value"] = f["return"].value.strip()
        for key, name in (("tasks", "members"), ("if_true_tasks", "if_true"), ("if_false_tasks", "if_false")):
            if key in f:
                t[name] = self.id_list(tid, f[key])
        if "hostnames" in f:
            t["hosts"] = tuple(h.strip() for h in f["hostnames"].value.split(",") if h.strip())
        if "max_parallel" in f:
            t["max_parallel"] = self.max_parallel(tid, f["max_parallel"])
        t["retry"] = self.retry(tid, f, kind)
        reads = [(key, clamped(m.group(1)), m.group(0)) for key in _READ_FIELDS if key in f and "@" in f[key].value
                 for m in TASKREF_RE.finditer(f[key].value)]
        if reads:
            t["reads"] = tuple(reads)
        for key in ("stdout_split", "stderr_split"):
            if key in f:
                t[key] = self.split(tid, f[key], kind)
        return Task(**t)

    @staticmethod
    def kind_of(f: dict[str, _Field]) -> str:
        kind = f["type"].value.strip().lower() if "type" in f else ""
        if kind in (CONDITIONAL, PARALLEL, DECISION):
            return kind
        if "return" in f and "command" not in f:
            return RETURN
        return NORMAL

    def condition(self, tid: int, fld: _Field) -> object:
        try:
            return parse_condition(fld.value)
        except ConditionError as exc:
            self.condition_error(tid, fld, exc)
            return Invalid(fld.value, exc.message, fld.span)

    def condition_error(self, tid: int, fld: _Field, exc: ConditionError) -> None:
        span = fld.span
        if fld.value == fld.raw:  # offsets are exact when no global was expanded
            span = span.at(exc.offset, exc.length)
        self.verror(f"task {tid}: invalid {fld.key} condition: {exc.message}", span, exc.help)

    def next_value(self, tid: int, fld: _Field, kind: str) -> Next:
        text = fld.value.strip()
        low = text.lower()
        if low in ("never", "always", "loop"):
            return Next(low, None, fld.span)
        if low.startswith("loop") and low[4:].lstrip().startswith("&"):

            rest = text[4:].lstrip()[1:]
            try:
                return Next("loop", parse_condition(rest), fld.span)
            except ConditionError as exc:
                self.verror(f"task {tid}: invalid condition after next=loop&: {exc.message}", fld.span, exc.help)
                return Next("loop", Invalid(rest, exc.message), fld.span)
        if text.isdigit():
            self.verror(f"task {tid}: next={text} is not allowed", fld.span,
                        help=f"to jump to task {text}, write on_success={text} (or on_failure={text})")
            return Next("jump", clamped(text), fld.span)
        if low == "success" and kind in BLOCK_KINDS:
            return Next("condition", Multi("all_success"), fld.span)
        return Next("condition", self.condition(tid, fld), fld.span)

    def target(self, tid: int, fld: _Field) -> int | None:
        value = as_int(fld.value)
        if value is None:
            self.verror(f"task {tid}: {fld.key} must be a task id, got `{fld.value}`", fld.span,
                        help=f"write the id of a later task, e.g. {fld.key}={tid + 1}")
        return value

    def loop_count(self, tid: int, fld: _Field) -> int | None:
        value = as_int(fld.value)
        if value is None:
            self.verror(f"task {tid}: loop must be a whole number from 1 to 1000, got `{fld.value}`",
                        fld.span, help="for example loop=3 together with next=loop")
        return value

    def id_list(self, tid: int, fld: _Field) -> tuple:
        ids = []
        for offset, item in _split_commas(fld.value):
            if not item:
                continue
            value = as_int(item)
            if value is None:
                self.verror(f"task {tid}: {fld.key} lists `{item}`, which is not a task id",
                            fld.span.at(offset, len(item)), help="list task ids separated by commas, e.g. 10,11,12")
                continue
            ids.append(value)
        return tuple(ids)

    def max_parallel(self, tid: int, fld: _Field) -> int | None:
        value = as_int(fld.value)
        if value is None or value < 1:
            self.verror(f"task {tid}: max_parallel must be a whole number of at least 1, got `{fld.value}`",
                        fld.span, help="for example max_parallel=8")
            return None
        return value

    def retry(self, tid: int, f: dict[str, _Field], kind: str) -> Retry | None:
        if "retry_failed" not in f and "retry_count" not in f and "retry_delay" not in f:
            return None
        keys = [k for k in ("retry_failed", "retry_count", "retry_delay") if k in f]
        if kind not in BLOCK_KINDS:
            self.vwarn(f"task {tid}: {', '.join(keys)} only apply to parallel and conditional blocks "
                       "and are ignored here", f[keys[0]].key_span)
            return None
        enabled = "retry_count" in f
        if "retry_failed" in f:
            flag = f["retry_failed"].value.strip().lower()
            if flag not in ("true", "false"):
                self.verror(f"task {tid}: retry_failed must be true or false, got `{f['retry_failed'].value}`",
                            f["retry_failed"].span)
            enabled = enabled or flag == "true"
        count: object = 1
        delay: object = 1
        if "retry_count" in f:
            count = self.retry_number(tid, f["retry_count"], 1, 1000, 100)
        if "retry_delay" in f:
            delay = self.retry_number(tid, f["retry_delay"], 0, None, 300)
        if not enabled:
            return None
        return Retry(count, delay)

    def retry_number(self, tid: int, fld: _Field, low: int, high: int | None, warn_above: int) -> object:
        template = parse_template(fld.value)
        if not template.is_literal:
            return template
        value = as_int(fld.value)
        if value is None or value < low or (high is not None and value > high):
            limit = f"from {low} to {high}" if high is not None else f"of at least {low}"
            self.verror(f"task {tid}: {fld.key} must be a whole number {limit}, got `{fld.value}`", fld.span)
            return template
        if value > warn_above:
            self.vwarn(f"task {tid}: {fld.key}={value} is unusually large", fld.span)
        return value

    def split(self, tid: int, fld: _Field, kind: str) -> Split | None:
        parts = fld.value.split(",")
        if len(parts) != 2 or as_int(parts[1]) is None:
            self.verror(f"task {tid}: {fld.key} must be DELIMITER,INDEX, got `{fld.value}`", fld.span,
                        help=f"for example {fld.key}=space,0 (delimiters: {', '.join(SPLIT_KEYWORDS)}, "
                             "or any text)")
            return None
        index = as_int(parts[1])
        if index < 0:
            self.vwarn(f"task {tid}: {fld.key} index {index} is negative; the output is left unchanged", fld.span)
        return Split(parts[0].strip(), index, fld.span)

    # ------------------------------------------------------------ host names known only at run time

    def check_unresolved_hosts(self, tasks: dict[int, Task]) -> None:
        for tid, task in tasks.items():   # the tasks of the file: hostnames= members come later
            f = self.fields[tid]
            if task.command is not None and "hostname" in f and task.hostname is not None:
                self.unresolved_host(tid, f["hostname"], [task.hostname.literal().strip()])
            if "hostnames" in f:
                self.unresolved_host(tid, f["hostnames"], list(task.hosts))

    def unresolved_host(self, tid: int, fld: _Field, hosts: list[str]) -> None:
        for host in hosts:
            found = _UNRESOLVED_RE.search(host)
            if found is None:
                continue
            ref = found.group(0)
            what = f"hostname `{fld.raw.strip()}`" if fld.key == "hostname" else f"hostnames entry `{host}`"
            if TASKREF_RE.fullmatch(ref):
                why = f"{ref} is a task result, known only at run time"
            else:
                why = f"{ref} is not a defined global variable"
            self.error(f"task {tid}: {what} has an unresolved reference: {why}", fld.span,
                       help="host names are checked before anything runs; pass "
                            "--skip-unresolved-host-validation to leave such hosts unchecked")

    # ------------------------------------------------------------ hostnames= blocks

    def generate_host_subtasks(self, tasks: dict[int, Task]) -> dict[int, Task]:
        generated: dict[int, Task] = {}
        for tid, task in list(tasks.items()):
            if task.kind != PARALLEL or not task.hosts or task.members:
                continue
            subs = []
            per_host_success = task.success if task.success is not None and not _has_multi(task.success) else None
            for i, host in enumerate(task.hosts[:MAX_HOSTS]):
                sid = model.hostname_subtask_id(tid, i)
                args = _member_template(task.arguments, sid, host)
                command = _member_template(task.command, sid, host)
                generated[sid] = Task(sid, NORMAL, task.span, hostname=Template((host,)), command=command,
                                      arguments=args, exec=task.exec, timeout=task.timeout,
                                      success=per_host_success, parent=tid)
                subs.append(sid)
            block_success = None if per_host_success is not None else task.success
            tasks[tid] = attrs.evolve(task, members=tuple(subs), success=block_success)
        if generated:
            tasks.update(generated)
        return tasks


def _member_template(template: Template | None, sid: int, host: str) -> Template | None:
    """A field of a hostnames= member: ``@task@`` is its generated id, ``@host@`` its host."""
    if template is None or not any(type(p) is str and ("@task@" in p or "@host@" in p) for p in template.parts):
        return template
    return Template(tuple(p.replace("@task@", str(sid)).replace("@host@", host) if type(p) is str else p
                          for p in template.parts))


def _split_commas(text: str) -> list[tuple[int, str]]:
    """``(offset, stripped item)`` for each comma-separated item."""
    out = []
    pos = 0
    for item in text.split(","):
        lead = len(item) - len(item.lstrip())
        out.append((pos + lead, item.strip()))
        pos += len(item) + 1
    return out


def _atoms(cond: object) -> list:
    if type(cond) in (AnyOf, AllOf):
        out = []
        for item in cond.items:
            out.extend(_atoms(item))
        return out
    return [cond]


def _has_multi(cond: object) -> bool:
    return any(type(a) is Multi for a in _atoms(cond))


class _Rules:
    """Static validation rules over the typed tasks (docs/taskfile.md; docs/command-line.md)."""

    def __init__(self, compiler: _Compiler, tasks: dict[int, Task]) -> None:
        self.c = compiler
        self.tasks = tasks
        self.fields = compiler.fields
        self.error = compiler.error
        self.warn = compiler.diags.warning
        self.user_ids = sorted(t for t in tasks if tasks[t].parent is None)
        self.member_of: dict[int, int] = {}
        for tid in self.user_ids:
            task = tasks[tid]
            if task.kind in BLOCK_KINDS:
                for sid in (*task.members, *task.if_true, *task.if_false):
                    self.member_of.setdefault(sid, tid)

    def run(self) -> None:
        for tid in self.user_ids:
            task = self.tasks[tid]
            f = self.fields[tid]
            self.kind_rules(task, f)
            self.field_rules(task, f)
            self.routing_rules(task, f)
            self.reference_rules(task, f)
            if self.c.opts.security:
                self.security_rules(task, f)
        self.block_member_rules()
        self.sequence_rules()

    # -------------------------------------------------------- helpers

    def forbid(self, task: Task, f: dict, keys: tuple, what: str, help: str | None = None) -> None:
        for key in keys:
            if key in f:
                self.error(f"task {task.id}: {what} cannot have `{key}`", f[key].key_span, help)

    # -------------------------------------------------------- per task

    def kind_rules(self, task: Task, f: dict) -> None:
        tid = task.id
        if "type" in f and task.kind in (NORMAL, RETURN) and f["type"].value.strip():
            self.warn(f"task {tid}: unknown type `{f['type'].value}`; the task runs as a normal task",
                      f["type"].span, help="type is parallel, conditional or decision")
        if task.kind == NORMAL:
            for key, example in (("hostname", "localhost"), ("command", "echo")):
                if key not in f:
                    self.error(f"task {tid}: missing `{key}`", task.span,
                               help=f"every command task needs {key}=, e.g. {key}={example}")
        elif task.kind == RETURN:
            self.forbid(task, f, ("timeout",), "a return task", "timeout only applies to tasks with a command")
        elif task.kind == PARALLEL:
            self.parallel_rules(task, f)
        elif task.kind == CONDITIONAL:
            self.conditional_rules(task, f)
        elif task.kind == DECISION:
            self.decision_rules(task, f)
        if task.kind != NORMAL and "timeout" in f and task.kind != RETURN:
            self.error(f"task {tid}: a {task.kind} block cannot have `timeout`", f["timeout"].key_span,
                       help="set timeout= on the tasks the block runs")
        if task.return_value is not None and as_int(task.return_value) is None:
            self.error(f"task {tid}: return must be a whole number, got `{task.return_value}`",
                       f["return"].span, help="for example return=0 (success) or return=1")
        elif task.return_value is not None and as_int(task.return_value) < 0:
            self.warn(f"task {tid}: return={task.return_value} is negative; the exit status is taken "
                      "modulo 256", f["return"].span)

    def parallel_rules(self, task: Task, f: dict) -> None:
        tid = task.id
        has_tasks = "tasks" in f
        has_hosts = "hostnames" in f
        if has_tasks and has_hosts:
            self.error(f"task {tid}: a parallel block takes either tasks= or hostnames=, not both",
                       f["hostnames"].key_span)
        elif not has_tasks and not has_hosts:
            self.error(f"task {tid}: a parallel block needs tasks= or hostnames=", task.span,
                       help="for example tasks=10,11,12 or hostnames=web1,web2")
        if has_tasks and not task.members and not has_hosts:
            self.error(f"task {tid}: tasks= is empty", f["tasks"].span, help="list the task ids to run")
        if has_hosts:
            self.hostnames_rules(task, f)
        self.forbid(task, f, ("failure",), "a parallel block",
                    "a block succeeds by its subtasks: use success=min_success=N, all_success ...")
        if task.success is not None and "success" in f and not has_hosts:
            self.multi_only(task, f["success"])
        if isinstance(task.next, Next) and task.next.kind == "loop":
            self.error(f"task {tid}: a parallel block cannot loop (next=loop)", f["next"].span,
                       help="loop inside the subtasks' own commands, or repeat the block with a jump")
        if "max_parallel" in f and task.max_parallel is not None:
            count = len(task.members) or len(task.hosts)
            if task.max_parallel > count > 0:
                self.warn(f"task {tid}: max_parallel={task.max_parallel} is more than the {count} subtasks",
                          f["max_parallel"].span)

    def hostnames_rules(self, task: Task, f: dict) -> None:
        tid = task.id
        fld = f["hostnames"]
        hosts = [item for _, item in _split_commas(fld.value) if item]
        if len(hosts) < 2:
            self.error(f"task {tid}: hostnames= needs at least 2 hosts", fld.span,
                       help="for a single host write a normal task with hostname=")
        if len(hosts) > MAX_HOSTS:
            self.error(f"task {tid}: hostnames= lists {len(hosts)} hosts; the limit is {MAX_HOSTS}", fld.span,
                       help="split the hosts over several parallel blocks")
        for offset, host in _split_commas(fld.value):
            if host and not _valid_host(host):
                self.error(f"task {tid}: `{host}` is not a valid host name or IPv4 address",
                           fld.span.at(offset, len(host)))
        if "command" not in f:
            self.error(f"task {tid}: a hostnames= block needs command= (run on every host)", task.span,
                       help="for example command=uptime")

    def conditional_rules(self, task: Task, f: dict) -> None:
        tid = task.id
        if "condition" not in f:
            self.error(f"task {tid}: a conditional block needs condition=", task.span,
                       help="for example condition=@0_exit@=0")
        for key in ("if_true_tasks", "if_false_tasks"):
            if key not in f or not f[key].value.strip():
                self.error(f"task {tid}: a conditional block needs a non-empty {key}=",
                           f[key].span if key in f else task.span, help=f"for example {key}=10,11")
        self.forbid(task, f, ("failure",), "a conditional block",
                    "a block succeeds by its branch tasks: use success=all_success, min_success=N ...")
        if "success" in f:
            self.multi_only(task, f["success"])

    def decision_rules(self, task: Task, f: dict) -> None:
        tid = task.id
        has_s, has_f = "success" in f, "failure" in f
        if has_s == has_f:
            self.error(f"task {tid}: a decision block needs exactly one of success= or failure=",
                       f["failure"].key_span if has_s else task.span,
                       help="write the condition once, as success=COND (or failure=COND)")
        self.forbid(task, f, ("command", "hostname", "arguments"), "a decision block",
                    "a decision runs no command; put the command in a task before it")
        for key in ("exec", "stdout_split", "stderr_split", "stdout_count", "stderr_count"):
            if key in f:
                self.warn(f"task {tid}: `{key}` has no effect on a decision block", f[key].key_span)
        if not any(k in f for k in ROUTING_FIELDS):
            self.warn(f"task {tid}: decision block without on_success, on_failure or next", task.span,
                      help="without routing the flow continues at the next task either way")

    def multi_only(self, task: Task, fld: _Field) -> None:
        cond = task.success
        if type(cond) is Invalid:
            return
        if not all(type(a) is Multi for a in _atoms(cond)):
            self.error(f"task {task.id}: success= of a {task.kind} block must count its subtasks",
                       fld.span, help="use all_success, any_success, majority_success, min_success=N, "
                                      "max_success=N, min_failed=N or max_failed=N")

    def exec_rule(self, tid: int, fld: _Field) -> None:
        name = fld.value.strip().lower()
        if not name or "@" in name or name == "local":
            return
        exec_types = self.c.opts.exec_types
        if exec_types is None:
            if name not in KNOWN_EXEC:
                self.warn(f"task {tid}: exec type `{fld.value}` is not one of {', '.join(KNOWN_EXEC[:6])}",
                          fld.span, help="it must be defined in the exec-type configuration")
            return
        config = exec_types.config
        known = {*config.names(), *(alias.lower() for alias in config.aliases)}
        if name in known:
            return

        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        guess = f"did you mean `{close[0]}`? " if close else ""
        if config.path:
            where = f"the exec types configured in {config.path} are {', '.join(config.names())}"
        else:
            where = f"no exec-type configuration was found (searched: {', '.join(config.searched)}), so only " \
                    "local exists"
        self.error(f"task {tid}: unknown exec type `{fld.value.strip()}`", fld.span,
                   help=f"{guess}{where}; another configuration is chosen with --exec-config FILE")

    def field_rules(self, task: Task, f: dict) -> None:
        tid = task.id
        if "timeout" in f:
            self.numeric(task, f["timeout"], integer=True, warn_range=(5, 1000))
            if task.kind == NORMAL and "command" not in f:
                self.error(f"task {tid}: timeout needs a command", f["timeout"].key_span)
        if "sleep" in f:
            self.numeric(task, f["sleep"], integer=False, warn_range=(0, None))
        if "exec" in f:
            self.exec_rule(tid, f["exec"])
        if "success" in f and "failure" in f and task.kind != DECISION:
            self.error(f"task {tid}: success= and failure= cannot be used together", f["failure"].key_span,
                       help="failure=COND means success=NOT COND: keep one of them")
        if "loop" in f:
            self.loop_rules(task, f)
        elif "loop_break" in f:
            self.warn(f"task {tid}: loop_break without loop has no effect", f["loop_break"].key_span)
        for key in ("stdout_count", "stderr_count"):
            if key in f and task.kind != DECISION:
                self.warn(f"task {tid}: `{key}` has no effect", f[key].key_span,
                          help=f"count lines in a condition instead, e.g. success={key}>2")
        for key in ("condition", "success", "failure", "loop_break"):
            cond = getattr(task, key)
            if cond is not None and key in f and not (key == "success" and task.kind in BLOCK_KINDS):
                self.no_multi(task, f[key], cond)
        if isinstance(task.next, Next) and task.next.kind == "condition" and task.kind not in BLOCK_KINDS:
            self.no_multi(task, f["next"], task.next.condition)

    def no_multi(self, task: Task, fld: _Field, cond: object) -> None:
        if _has_multi(cond):
            self.error(f"task {task.id}: `{fld.value}` counts subtasks; it only applies to the success= or "
                       "next= of parallel and conditional blocks", fld.span)

    def numeric(self, task: Task, fld: _Field, *, integer: bool, warn_range: tuple) -> None:
        if "@" in fld.value:
            return  # a placeholder: resolved at run time (or already reported as undefined)
        value = as_int(fld.value) if integer else as_number(fld.value)
        if value is None:
            kind = "a whole number of seconds" if integer else "a number of seconds"
            self.error(f"task {task.id}: {fld.key} must be {kind}, got `{fld.value}`", fld.span,
                       help=f"for example {fld.key}={'30' if integer else '1.5'}")
            return
        low, high = warn_range
        if low is not None and value < low:
            self.warn(f"task {task.id}: {fld.key}={fld.value} is below {low}"
                      + (f"; it is raised to {low}" if fld.key == "timeout" else ""), fld.span)
        if high is not None and value > high:
            self.warn(f"task {task.id}: {fld.key}={fld.value} is above {high}; it is lowered to {high}", fld.span)

    def loop_rules(self, task: Task, f: dict) -> None:
        tid = task.id
        if task.loop is not None and not 1 <= task.loop <= 1000:
            self.error(f"task {tid}: loop must be from 1 to 1000, got {task.loop}", f["loop"].span)
        elif task.loop is not None and task.loop > 100:
            self.warn(f"task {tid}: loop={task.loop} is unusually large", f["loop"].span)
        if not (isinstance(task.next, Next) and task.next.kind == "loop"):
            self.error(f"task {tid}: loop= needs next=loop", f["loop"].key_span,
                       help="add next=loop (or next=loop&CONDITION to stop early)")

    def routing_rules(self, task: Task, f: dict) -> None:
        tid = task.id
        if "next" in f and ("on_success" in f or "on_failure" in f):
            other = "on_success" if "on_success" in f else "on_failure"
            self.error(f"task {tid}: next= cannot be combined with {other}=", f["next"].key_span,
                       help="use on_success=/on_failure= alone, or next= alone; for a block threshold "
                            "with jumps write success=min_success=N with on_success/on_failure")
        if isinstance(task.next, Next) and task.next.kind == "loop" and task.kind == NORMAL and "loop" not in f:
            self.error(f"task {tid}: next=loop needs loop=N", f["next"].span, help="for example loop=3")
        for key in ("on_success", "on_failure"):
            target = getattr(task, key)
            if key not in f or target is None:
                continue
            if target not in self.tasks or self.tasks[target].parent is not None:
                self.error(f"task {tid}: {key}={target} names a task that does not exist", f[key].span,
                           help=self.c.closest_ids(target))
            elif target <= tid:
                self.error(f"task {tid}: {key}={target} jumps backwards", f[key].span,
                           help=f"jumps go forward only: the target must be greater than {tid}; "
                                "use next=loop to repeat a task")

    def reference_rules(self, task: Task, f: dict) -> None:
        tid = task.id
        tasks = self.tasks
        for key, n, text in task.reads:
            if n not in tasks:
                fld = f[key]
                at = fld.value.find(text)
                span = fld.span.at(at, len(text)) if fld.value == fld.raw and at >= 0 else fld.span
                self.error(f"task {tid}: {text} refers to task {n}, which does not exist", span,
                           help=self.c.closest_ids(n))
        for key, fld in f.items():
            if "@" not in fld.value:
                continue
            if key not in _READ_FIELDS and key != "task":   # read fields: task.reads, above
                for m in TASKREF_RE.finditer(fld.value):
                    if clamped(m.group(1)) not in tasks:
                        self.error(f"task {tid}: {m.group(0)} refers to task {m.group(1)}, which does not exist",
                                   fld.span, help=self.c.closest_ids(clamped(m.group(1))))
            for m in TASKISH_RE.finditer(fld.value):
                if not TASKREF_RE.fullmatch(m.group(0)) and key not in CONDITION_FIELDS and key != "next":
                    self.warn(f"task {tid}: {m.group(0)} is not a task result and stays as text",
                              fld.span, help="results are _stdout, _stderr, _exit, _success, _stdout_file ...")

    def security_rules(self, task: Task, f: dict) -> None:
        exec_value = f["exec"].value if "exec" in f else None
        context = security.exec_context(exec_value)
        checks = (("hostname", security.check_hostname), ("command", security.check_command),
                  ("arguments", security.check_arguments))
        for key, check in checks:
            if key not in f:
                continue
            for severity, message, help in check(f[key].raw, context):
                text = f"task {task.id}: {message}"
                if severity == ERROR:
                    self.error(text, f[key].span, help)
                else:
                    self.warn(text, f[key].span, help)

    # -------------------------------------------------------- across tasks

    def block_member_rules(self) -> None:
        for tid in self.user_ids:
            task = self.tasks[tid]
            if task.kind not in BLOCK_KINDS:
                continue
            f = self.fields[tid]
            for key, ids in (("tasks", task.members), ("if_true_tasks", task.if_true),
                             ("if_false_tasks", task.if_false)):
                if key not in f:
                    continue
                for sid in ids:
                    self.member_rule(task, f[key], sid)
                self.range_rule(task, f[key], ids)

    def range_rule(self, block: Task, fld: _Field, ids: tuple) -> None:
        """Convention: block N runs subtasks N*100..N*100+99 (warning only)."""
        low, high = block.id * 100, block.id * 100 + 99
        if not self.c.opts.subtask_range or high > 999:
            return
        outside = [sid for sid in ids if not low <= sid <= high]
        if outside:
            listed = listing(outside)
            self.warn(f"task {block.id}: {fld.key} lists {listed}, outside the conventional range {low}-{high}",
                      fld.span, help="renumber the subtasks, or pass --skip-subtask-range-validation")

    def member_rule(self, block: Task, fld: _Field, sid: int) -> None:
        tid = block.id
        span = fld.span
        if sid == tid:
            self.error(f"task {tid}: {fld.key} lists the block itself", span)
            return
        sub = self.tasks.get(sid)
        if sub is None or sub.parent is not None:
            self.error(f"task {tid}: {fld.key} lists task {sid}, which does not exist", span,
                       help=self.c.closest_ids(sid))
            return
        if sub.kind in BLOCK_KINDS:
            self.error(f"task {tid}: {fld.key} lists task {sid}, which is a {sub.kind} block; blocks "
                       "do not nest", span)
        sf = self.fields[sid]
        for key in ("next", "on_success", "on_failure", "loop", "loop_break"):
            if key in sf:
                self.error(f"task {sid}: `{key}` is not allowed on a task that block {tid} runs",
                           sf[key].key_span, help="a block decides the flow after its subtasks: move the "
                                                  "routing to the block")

    def sequence_rules(self) -> None:
        referenced = self.referenced_ids()
        ids = self.user_ids
        for a, b in pairwise(ids):
            if b - a <= 1 or b in referenced or 90 <= b <= 999:
                continue
            fa = self.fields[a]
            if any(k in fa for k in ("on_success", "on_failure", "next", "return")):
                continue
            missing = f"task {a + 1} does not" if b - a == 2 else f"tasks {a + 1}..{b - 1} do not"
            self.error(f"Task sequence has gaps: task {a} is followed by task {b}; {missing} exist",
                       self.tasks[b].span,
                       help=f"after task {a} the flow continues at task {a + 1}, so task {b} would never "
                            f"run: renumber it to {a + 1}, or route to it with on_success={b}")
        self.reachability(referenced)

    def referenced_ids(self) -> set[int]:
        refs: set[int] = set()
        for tid in self.user_ids:
            task = self.tasks[tid]
            for target in (task.on_success, task.on_failure):
                if target is not None:
                    refs.add(target)
            refs.update(task.members, task.if_true, task.if_false)
            for fld in self.fields[tid].values():
                if "@" in fld.value:
                    refs.update(clamped(m.group(1)) for m in TASKREF_RE.finditer(fld.value))
        return refs

    def reachability(self, referenced: set[int]) -> None:
        if not self.user_ids:
            return
        seen: set[int] = set()
        todo = [self.user_ids[0]]
        while todo:
            tid = todo.pop()
            if tid in seen or tid not in self.tasks:
                continue
            seen.add(tid)
            task = self.tasks[tid]
            todo.extend(task.members)
            todo.extend(task.if_true)
            todo.extend(task.if_false)
            for target in (task.on_success, task.on_failure):
                if target is not None:
                    todo.append(target)
            ends = task.kind == RETURN or (isinstance(task.next, Next) and task.next.kind == "never")
            if not ends:
                todo.append(tid + 1)
        for tid in self.user_ids:
            if tid not in seen:
                self.warn(f"task {tid} is never reached", self.tasks[tid].span,
                          help="no task continues to it, jumps to it or runs it in a block")


def _valid_host(host: str) -> bool:
    if _IPV4_SHAPE.match(host):
        return all(clamped(p) <= 255 for p in host.split("."))
    if len(host) > 253 or "@" in host:
        return "@" in host  # placeholders are resolved at run time
    return all(_HOST_LABEL.match(label) for label in host.rstrip(".").split("."))
