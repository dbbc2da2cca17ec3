"""Files that may hold secrets: private modes, safe temporary files, atomic replacement.

Everything tasker writes under its log directory (log, recovery state,
summaries, backups) and the ``--output-json`` file can hold task outputs and
expanded globals, so every such file is created mode 600 and every directory
tasker creates for them mode 700, whatever the umask.  Files that are replaced
as a whole go through ``write_atomic``: a fresh temporary file in the target
directory, created with ``O_EXCL|O_NOFOLLOW`` (a planted file or symlink is
never opened), fsync, rename.  Temporary names carry the writer's pid, so
``sweep_temp`` can remove those of runs that died (kill -9, a full disk).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile

TEMP_PREFIX = ".tasker."
TEMP_SUFFIX = ".tmp"
# ours: .tasker.<pid>.<random>.tmp; earlier versions wrote <state>.recovery.json.<pid>.tmp|probe
# and .<name>.json.<pid>.tmp (--output-json)
_TEMP_NAME = re.compile(r"\.tasker\.(\d+)\.[A-Za-z0-9_]+\.tmp|.+\.recovery\.json\.(\d+)\.(?:tmp|probe)"
                        r"|\..+\.json\.(\d+)\.tmp")
FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: str) -> None:
    """Create ``path`` and any missing parents, each new one mode 700 (existing ones are left alone)."""
    path = os.path.abspath(path)
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise
            continue
        os.chmod(directory, DIR_MODE)   # the umask cannot widen it, but be explicit


def open_append(path: str):
    """A text file for appending, created mode 600; a symlink at ``path`` is refused (ELOOP)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        _tighten(fd)
        return os.fdopen(fd, "a", encoding="utf-8", errors="replace")
    except BaseException:
        os.close(fd)
        raise


def _tighten(fd: int) -> None:
    """An existing file we own keeps no group/other bits."""
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            os.fchmod(fd, st.st_mode & 0o700)
    except OSError:
        pass


def temp_file(directory: str) -> tuple[int, str]:
    """A new mode-600 temporary file in ``directory`` (exclusive create, no symlink followed)."""
    return tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}.", suffix=TEMP_SUFFIX, dir=directory)


def write_atomic(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` as one whole file, mode 600.

    The temporary file is removed again when any step fails (a full disk), so
    nothing is left behind and ``path`` keeps its previous content.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = temp_file(directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def probe_dir(directory: str) -> None:
    """Raise OSError now when no file can be created in ``directory`` (checked before a run starts)."""
    fd, tmp = temp_file(directory)
    os.close(fd)
    os.unlink(tmp)


def sweep_temp(directory: str) -> list[str]:
    """Remove temporary files in ``directory`` left by tasker processes that are gone; the removed paths."""
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    uid = os.getuid()
    me = os.getpid()
    for entry in entries:
        m = _TEMP_NAME.fullmatch(entry.name)
        if m is None:
            continue
        pid = int(next(g for g in m.groups() if g))
        try:
            if pid == me or pid_alive(pid) or not entry.is_file(follow_symlinks=False) \
                    or entry.stat(follow_symlinks=False).st_uid != uid:
                continue
            os.unlink(entry.path)
            removed.append(entry.path)
        except OSError:
            continue
    return removed


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
