"""Variables: ``$ENV`` expansion, ``@GLOBAL@`` resolution and task-result templates.

Globals are constants of the file (docs/taskfile.md), so they are expanded when
the file is compiled (D2): ``expand_globals`` applies TASKER's
chaining rule (every defined ``@NAME@`` replaced, repeated up to 10 more times)
to the raw text of a field.  What remains are task-result placeholders
``@N_field@``, which ``parse_template`` turns into ``TaskRef`` parts that the
VM fills in when the field is used.
"""

from __future__ import annotations

import re
from functools import lru_cache

from tasker.numbers import clamped
from tasker.syntax.ast import EMPTY_TEMPLATE, TaskRef, Template

# Result fields a task reference may name (D7); exit_code is an alias of exit.
RESULT_FIELDS = ("stdout_file", "stderr_file", "stdout", "stderr", "exit_code", "exit",
                 "success_count", "failed_count", "total_count", "success", "hostname",
                 "duration", "start_time", "end_time")
ALIASES = {"exit_code": "exit"}
TASKREF_RE = re.compile(r"@(\d+)_(" + "|".join(RESULT_FIELDS) + r")@", re.IGNORECASE)
GLOBAL_RE = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)@")
# Shapes of a placeholder that names a task but no known result field, e.g. @3_output@.
TASKISH_RE = re.compile(r"@(\d+)_([A-Za-z_]+)@")
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# os.path.expandvars' syntax: $name or ${name}; unset variables stay as written.
ENV_RE = re.compile(r"\$(\w+|\{[^}]*\})", re.ASCII)

CHAIN_DEPTH = 10
# The most characters expanding the globals of one field may give.  Each chaining pass
# can multiply the text (``S=@S@@S@`` doubles it ten times over), so without a bound
# 28 bytes of task file would ask for gigabytes.
MAX_EXPANSION = 1_000_000


class ExpansionTooLarge(ValueError):
    """Expanding globals would give more than ``MAX_EXPANSION`` characters; ``chain`` names the steps."""

    def __init__(self, chain: list[str], size: int) -> None:
        self.chain = chain
        self.size = size
        shown = " -> ".join(f"@{n}@" for n in chain[:8]) + (" -> ..." if len(chain) > 8 else "")
        super().__init__(f"expanding globals gives {size:,} characters, more than the limit of "
                         f"{MAX_EXPANSION:,} (chain: {shown})")


def expand_env(text: str, environ: dict[str, str]) -> tuple[str, list[str]]:
    """Replace ``$NAME``/``${NAME}`` by environment values; return (text, unset names)."""
    if "$" not in text:
        return text, []
    missing: list[str] = []

    def repl(m: re.Match) -> str:
        name = m.group(1)
        if name.startswith("{"):
            name = name[1:-1]
        value = environ.get(name)
        if value is None:
            missing.append(name)
            return m.group(0)
        return value

    return ENV_RE.sub(repl, text), missing


def env_names(text: str) -> list[str]:
    """The environment variable names a text refers to."""
    return [m.group(1).strip("{}") for m in ENV_RE.finditer(text)]


def expand_globals(text: str, values: dict[str, str], passes: int = CHAIN_DEPTH + 1) -> str:
    """Replace defined ``@NAME@`` references, repeating up to ``CHAIN_DEPTH`` more times."""
    if "@" not in text:
        return text

    def repl(m: re.Match) -> str:
        return values.get(m.group(1), m.group(0))

    chain: list[str] = []
    for _ in range(passes):
        size = len(text)
        first = None
        for m in GLOBAL_RE.finditer(text):   # the size of the next pass, before building it
            value = values.get(m.group(1))
            if value is not None:
                size += len(value) - len(m.group(0))
                first = first or m.group(1)
        if first is None:
            break
        chain.append(first)
        if size > MAX_EXPANSION:
            raise ExpansionTooLarge(chain, size)
        new = GLOBAL_RE.sub(repl, text)
        if new == text:
            break
        text = new
    return text


def global_refs(text: str) -> list[re.Match]:
    """Every ``@NAME@`` in ``text`` (task references excluded: they start with a digit)."""
    return list(GLOBAL_RE.finditer(text)) if "@" in text else []


def make_ref(m: re.Match) -> TaskRef:
    name = m.group(2).lower()
    return TaskRef(clamped(m.group(1)), ALIASES.get(name, name), m.group(0))


def _parse_template(text: str) -> Template:
    """Split ``text`` into literal parts and ``TaskRef`` placeholders."""
    if not text:
        return EMPTY_TEMPLATE
    if "@" not in text:
        return Template((text,))
    parts: list = []
    pos = 0
    for m in TASKREF_RE.finditer(text):
        if m.start() > pos:
            parts.append(text[pos:m.start()])
        parts.append(make_ref(m))
        pos = m.end()
    if pos < len(text):
        parts.append(text[pos:])
    return Template(tuple(parts))


# Files repeat the same hosts, commands and arguments: parse each text once.  Wrapped by
# assignment, not with a decorator, because mutation testing skips decorated functions.
parse_template = lru_cache(maxsize=100_000)(_parse_template)
