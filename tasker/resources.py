"""Where the data files live: grammar/*.lark and cfg/*.yaml.

In a source checkout they sit next to the package (``<repo>/grammar``); in an
installed wheel they are inside it (``site-packages/tasker/grammar``).  Both
are looked up relative to this file, never to the current directory.
"""

from __future__ import annotations

import os
import zlib

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def data_dir(name: str) -> str:
    """The directory ``name`` (``grammar`` or ``cfg``) shipped with tasker."""
    for candidate in (os.path.join(_PACKAGE, name), os.path.join(os.path.dirname(_PACKAGE), name)):
        if os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(f"tasker installation is incomplete: no {name}/ directory near {_PACKAGE}")


def grammar_path(name: str) -> str:
    """Path of ``grammar/<name>.lark``."""
    return os.path.join(data_dir("grammar"), f"{name}.lark")


def grammar_text(name: str) -> str:
    """The text of ``grammar/<name>.lark``."""
    with open(grammar_path(name), encoding="utf-8") as fh:
        return fh.read()


def grammar_digest(name: str) -> str:
    """A cheap fingerprint of a grammar file (CRC-32 and size): detects edits."""
    with open(grammar_path(name), "rb") as fh:
        data = fh.read()
    return f"{zlib.crc32(data):08x}-{len(data)}"


def shipped_config_path() -> str | None:
    """Path of the shipped ``cfg/execution_types.yaml``, if present."""
    try:
        path = os.path.join(data_dir("cfg"), "execution_types.yaml")
    except FileNotFoundError:
        return None
    return path if os.path.isfile(path) else None
