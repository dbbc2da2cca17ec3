"""Files a run writes under the log directory (cli.md §6-§7): names, log file, task-file backup."""

from __future__ import annotations

import os
import re
import time

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def prefix_of(path_or_name: str) -> str:
    """Base name without its last extension, unsafe characters as ``_``, at most 50 characters."""
    base = os.path.basename(path_or_name)
    stem = os.path.splitext(base)[0] if "." in base.lstrip(".") else base
    return _UNSAFE.sub("_", stem)[:50] or "task"


def timestamp(t: float | None = None) -> str:
    """``YYYYmmdd_HHMMSS_ffffff``."""
    t = time.time() if t is None else t
    return time.strftime("%Y%m%d_%H%M%S", time.localtime(t)) + f"_{int((t % 1) * 1e6):06d}"


def log_base(explicit: str | None, environ: dict) -> str:
    """``-l`` > ``$TASK_EXECUTOR_LOG`` > ``~/TASKER``."""
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    if environ.get("TASK_EXECUTOR_LOG"):
        return os.path.abspath(os.path.expanduser(environ["TASK_EXECUTOR_LOG"]))
    home = environ.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, "TASKER")


def make_dir(path: str) -> None:
    """Create a directory (and parents); raises OSError with a readable message."""
    os.makedirs(path, exist_ok=True)


def backup_task_file(base: str, task_file: str, content: bytes, stamp: str) -> str | None:
    """Copy the task file to ``backup/`` unless a backup with the same content exists."""
    import hashlib
    import shutil

    directory = os.path.join(base, "backup")
    os.makedirs(directory, exist_ok=True)
    name = os.path.basename(task_file)
    digest = hashlib.sha256(content).hexdigest()
    for existing in os.listdir(directory):
        if existing.startswith(name + "_"):
            try:
                with open(os.path.join(directory, existing), "rb") as fh:
                    if hashlib.sha256(fh.read()).hexdigest() == digest:
                        return None
            except OSError:
                continue
    target = os.path.join(directory, f"{name}_{stamp}")
    n = 0
    while os.path.exists(target):
        n += 1
        target = os.path.join(directory, f"{name}_{stamp}.{n}")
    shutil.copy2(task_file, target)
    return target
