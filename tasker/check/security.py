"""Security validation of command, arguments, hostname and global values (docs/command-line.md).

Each check returns a list of ``(severity, message, help)``; the checker attaches
spans.  The pattern sets are TASKER 2.2's.  Their purpose on a production host:
a task file that would splice shell syntax into a command started without a
shell (``exec=local``) is a mistake or an attack, and is refused before anything
runs.  ``exec=shell`` relaxes the rules, as the user asked for a shell.
"""

from __future__ import annotations

import re
from functools import lru_cache

from tasker.diagnostics import ERROR, WARNING

_INJECTION = re.compile(
    r";\s*(?:rm|curl|wget|cat)\s|\|\s*nc\s|\$\(.*?\)|`[^`]*`|&&\s*rm\s|\|\|\s*curl\s|>\s*/dev/|<\s*/dev/",
    re.IGNORECASE | re.DOTALL,
)
_TRAVERSAL = re.compile(
    r"\.\./|\.\.\\|%2e%2e%2f|%2e%2e%5c|\.\.%2f|\.\.%5c|%252e%252e%252f|/etc/passwd|/etc/shadow"
    r"|/proc/version|c:\\windows\\",
    re.IGNORECASE,
)
_METACHARS = re.compile(r"[;&|$`()<>\\\"'\n\r]")
_DANGEROUS = re.compile(
    r"rm\s+-rf\s+/(?:\s|$)|chmod\s+777|/etc/passwd|eval\(|exec\(|sudo\s+rm|mkfs\.|\bdd\b.*\bof=/dev/",
    re.IGNORECASE,
)
_FORMAT = re.compile(r"%[sxdn]")
_ESCAPES = re.compile(r"%[0-9a-f]{2}|\\x[0-9a-f]{2}|\\u[0-9a-f]{4}", re.IGNORECASE)
_PRIVILEGE = re.compile(
    r"/bin/(?:ba)?sh\b|\bpython[0-9.]*\s|\bperl\s|\bsudo\s|\bsu\s|\bchmod\s+\d|\bchown\s",
    re.IGNORECASE,
)
_HOST_CHARS = re.compile(r"[^A-Za-z0-9.\-]")
_PLACEHOLDER = re.compile(r"@[A-Za-z0-9_]+@")

# Every pattern above needs one of these characters or words: a value without any of
# them is clean, and finding that out is cheap.
_TRIGGER_CHARS = re.compile(r"[;|$`&<>%\\\x00\n\r]")
_TRIGGER_WORDS = ("..", "/etc/", "/proc/", "/bin/", "c:", "rm", "chmod", "chown", "eval(", "exec(", "sudo",
                  "su ", "su\t", "mkfs.", "dd", "python", "perl")


_TRIGGER_WORDS_RE = re.compile("|".join(re.escape(w) for w in _TRIGGER_WORDS))


def _clean(value: str) -> bool:
    return not _TRIGGER_CHARS.search(value) and not _TRIGGER_WORDS_RE.search(value.lower())

LIMITS = {"hostname": 253, "command": 4096, "arguments": 8192}
ARGUMENTS_MAX = 2000
GLOBAL_MAX = 1024
SHELL_NAMES = {"shell", "sh", "bash", "/bin/sh", "/bin/bash"}

Finding = tuple  # (severity, message, help)


def exec_context(exec_value: str | None) -> str:
    """``shell`` for shell-like exec types, else the lower-cased name (``local`` if absent)."""
    if not exec_value:
        return "local"
    name = exec_value.strip().lower()
    return "shell" if name in SHELL_NAMES else name


def _common(name: str, value: str, context: str) -> list[Finding]:
    found: list[Finding] = []
    if len(value) > LIMITS[name] and not _PLACEHOLDER.search(value):
        found.append((ERROR, f"{name} is {len(value)} characters long; the limit is {LIMITS[name]}", None))
    if "\x00" in value:
        found.append((ERROR, f"{name} contains a NUL byte", None))
    if context != "shell":
        m = _INJECTION.search(value)
        if m:
            found.append((ERROR, f"{name} contains shell command syntax `{m.group(0).strip()}`",
                          _literal_help(context)))
    found.extend(_warnings(name, value))
    return found


def _literal_help(context: str) -> str:
    how = "starts the program directly, without a shell" if context == "local" else "passes it on as literal words"
    return f"exec={context} {how}: no shell would interpret this text. Use exec=shell if one should"


def _warnings(name: str, value: str) -> list[Finding]:
    found: list[Finding] = []
    m = _DANGEROUS.search(value)
    if m:
        found.append((WARNING, f"{name} contains a dangerous operation `{m.group(0).strip()}`", None))
    if _FORMAT.search(value):
        found.append((WARNING, f"{name} contains a format-string sequence", None))
    if _ESCAPES.search(value):
        found.append((WARNING, f"{name} contains encoded characters (URL, hex or unicode escapes)", None))
    if len(value) > 100:
        top = max(value.count(c) for c in set(value))
        if top > 0.8 * len(value):
            found.append((WARNING, f"{name} is mostly one repeated character", None))
    return found


# The same host names and commands recur in every task: check each once.  The checks are
# wrapped by assignment, not with a decorator, because mutation testing skips decorated functions.
memoised = lru_cache(maxsize=50_000)


def _check_hostname(value: str, context: str) -> list[Finding]:
    if not value:
        return [(ERROR, "hostname is empty", "write the target host, e.g. hostname=localhost")]
    found = _common("hostname", value, context)
    if value.startswith("-"):
        found.append((ERROR, f"hostname {value!r} starts with '-': a remote tool would read it as an option",
                      "a host name starts with a letter or digit"))
    m = _METACHARS.search(value)
    if m:
        found.append((ERROR, f"hostname contains the shell character {m.group(0)!r}",
                      "a host name has letters, digits, dots and dashes only"))
    elif _HOST_CHARS.search(value) and not _PLACEHOLDER.search(value):
        found.append((WARNING, f"hostname {value!r} has characters outside A-Z a-z 0-9 . -", None))
    return found


def runtime_host_problem(value: str, context: str, dynamic: bool) -> str | None:
    """Why a host name must not be used for a remote exec type, or None.

    A name starting with ``-`` is refused in every case (even with validation
    skipped); a name that came from a task's output gets the checks a name
    written in the file gets before the run.
    """
    if value.startswith("-"):
        return f"hostname {value!r} starts with '-': a remote tool would read it as an option"
    if dynamic:
        errors = [message for severity, message, _help in check_hostname(value, context) if severity == ERROR]
        if errors:
            return "; ".join(errors)
    return None


def _check_command(value: str, context: str) -> list[Finding]:
    if not value:
        return [(ERROR, "command is empty", "write the program to run, e.g. command=echo")]
    found = _common("command", value, context)
    if context != "shell":
        m = _METACHARS.search(value)
        if m and not any(f[0] == ERROR and "shell command syntax" in f[1] for f in found):
            found.append((ERROR, f"command contains the shell character {m.group(0)!r}",
                          "command is the program only; put its arguments in arguments=, "
                          "or use exec=shell for shell syntax"))
        if " " in value.strip():
            found.append((WARNING, f"command {value!r} contains a space: the whole text is the program name",
                          "put the program in command= and the rest in arguments="))
    return found


check_hostname = memoised(_check_hostname)
check_command = memoised(_check_command)


def check_arguments(value: str, context: str) -> list[Finding]:
    found: list[Finding] = []
    if len(value) <= 100 and _clean(value):
        return found
    if len(value) > ARGUMENTS_MAX and not _PLACEHOLDER.search(value):
        found.append((ERROR, f"arguments are {len(value)} characters long; the limit is {ARGUMENTS_MAX}", None))
    m = _TRAVERSAL.search(value)
    if m:
        found.append((ERROR, f"arguments contain a path-traversal pattern `{m.group(0)}`",
                      "use an absolute path without `..`"))
    found.extend(_common("arguments", value, context))
    m = _PRIVILEGE.search(value)
    if m:
        found.append((WARNING, f"arguments contain `{m.group(0).strip()}` (scripting or privileges)", None))
    return found


def check_global_value(name: str, value: str) -> list[Finding]:
    """Global values are always checked, like arguments of an exec=local task."""
    found: list[Finding] = []
    if len(value) > GLOBAL_MAX:
        found.append((ERROR, f"global {name} is {len(value)} characters long; the limit is {GLOBAL_MAX}", None))
    if "\x00" in value:
        found.append((ERROR, f"global {name} contains a NUL byte", None))
    m = _INJECTION.search(value)
    if m:
        found.append((ERROR, f"global {name} contains shell command syntax `{m.group(0).strip()}`",
                      "global values are substituted into commands that run without a shell"))
    m = _TRAVERSAL.search(value)
    if m:
        found.append((ERROR, f"global {name} contains a path-traversal pattern `{m.group(0)}`",
                      "use an absolute path without `..`"))
    return found
