"""How much the operating system lets a command receive: checked before anything starts.

After substitution an argument can hold another task's whole output.  Linux
refuses a single argv string of more than 131,072 bytes (its terminating NUL
included) and all of argv plus the environment beyond ``ARG_MAX``; the
program would then fail with a bare ``Argument list too long``.  Checking
first lets tasker say which task, how big and what to do instead.
"""

from __future__ import annotations

import os
import struct
import sys

ARG_STRLEN = 131_072 if sys.platform.startswith("linux") else None   # one argv string, NUL included
_POINTER = struct.calcsize("P")
_environment_size: int | None = None


def arg_max() -> int | None:
    """The limit for argv and environment together (bytes), if the system says."""
    try:
        value = os.sysconf("SC_ARG_MAX")
    except (ValueError, OSError, AttributeError):
        return None
    return value if value > 0 else None


def environment_size() -> int:
    """Bytes the inherited environment takes on a new process's stack (taken once)."""
    global _environment_size
    if _environment_size is None:
        env = os.environb if hasattr(os, "environb") else {k.encode(): v.encode() for k, v in os.environ.items()}
        _environment_size = sum(len(k) + len(v) + 2 + _POINTER for k, v in env.items()) + _POINTER
    return _environment_size


def too_long(argv: list[str], total_limit: int | None = None) -> tuple[str, int, int] | None:
    """``(what, size, limit)`` when ``argv`` cannot be handed to a new process, else None."""
    chars = sum(map(len, argv))
    if chars * 4 < 65_536:
        return None        # far below every limit (one string's included), however the text encodes
    sizes = [len(word.encode("utf-8", "surrogateescape")) for word in argv]
    if ARG_STRLEN is not None:
        for index, size in enumerate(sizes):
            if size + 1 > ARG_STRLEN:
                what = "the command" if index == 0 else f"argument {index}"
                return what, size, ARG_STRLEN
    limit = total_limit if total_limit is not None else arg_max()
    if limit is not None:
        total = sum(sizes) + len(sizes) * (1 + _POINTER) + _POINTER + environment_size()
        if total > limit:
            return "the command line with the environment", total, limit
    return None
