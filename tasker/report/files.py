"""Files a run writes under the log directory (docs/files.md): names, log file, task-file backup."""

from __future__ import annotations

import hashlib
import os
import re
import time

from tasker.report.private import private_dir

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def prefix_of(path_or_name: str) -> str:
    """Base name without its last extension, unsafe characters as ``_``, at most 50 characters."""
    base = os.path.basename(path_or_name)
    stem = os.path.splitext(base)[0] if "." in base.lstrip(".") else base
    return _UNSAFE.sub("_", stem)[:50] or "task"


def short_name(name: str, limit: int = 120) -> str:
    """``name`` itself when short, else its first characters and a hash of the whole: file names
    derived from it (plus a time stamp or suffix) must stay under the usual 255-byte limit."""
    if len(name.encode("utf-8", "surrogateescape")) <= limit:
        return name

    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    head = name.encode("utf-8", "surrogateescape")[:limit - 9].decode("utf-8", "ignore")
    return f"{head}_{digest}"


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
    """Create a directory (and parents, each new one mode 700); raises OSError with a readable message."""
    private_dir(path)


def backup_task_file(base: str, task_file: str, content: bytes, stamp: str) -> str | None:
    """Save ``content`` (the bytes that were parsed) to ``backup/``, unless a backup has them already.

    Compared byte for byte, sizes first: no hashing, no shutil, which keeps
    their imports (~4 ms) off every run's start.
    """
    directory = os.path.join(base, "backup")
    make_dir(directory)
    name = short_name(os.path.basename(task_file))
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith(name + "_") and _same_content(entry, content):
                return None
    target = os.path.join(directory, f"{name}_{stamp}")
    n = 0
    while True:
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            break
        except FileExistsError:
            n += 1
            target = os.path.join(directory, f"{name}_{stamp}.{n}")
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
    _copy_times(task_file, target)
    return target


def _same_content(entry: os.DirEntry, content: bytes) -> bool:
    try:
        if entry.stat().st_size != len(content):
            return False
        with open(entry.path, "rb") as fh:
            return fh.read() == content
    except OSError:
        return False


def _copy_times(source: str, target: str) -> None:
    """Give the backup the task file's modification time, as ``cp -p`` would."""
    try:
        st = os.stat(source)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    except OSError:
        pass
