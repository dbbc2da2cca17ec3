"""Children die with tasker: a watchdog process, and a journal of running process groups.

Every command runs in its own session, so when tasker is killed (kill -9, the
OOM killer) nothing reaches its children.  Two measures:

* The watchdog: a small process forked once per run, in its own session and
  deaf to SIGINT/SIGTERM, that holds the read end of a pipe.  Tasker writes
  ``+pgid start`` to it when a command starts and ``-pgid`` when it has
  finished; when tasker dies in any way the pipe reaches end of file and the
  watchdog SIGKILLs every process group still listed, then exits.  A write per
  spawn costs microseconds; an exec shim that sets PR_SET_PDEATHSIG (e.g.
  ``setpriv --pdeathsig``) costs a whole extra exec per task and would only
  reach the direct child, not the commands it started.
* The journal (runs with a recovery state): the same ``pgid start`` lines,
  appended to ``<state>.procs``.  A later run that takes over the state kills
  what is still alive of them before it runs anything, for the case where the
  watchdog itself was killed too (a kill of the whole process group).

``start`` is the process's start time in clock ticks since boot (``/proc``):
a group is only killed while its leader is gone or is still the same process,
never a later process that got the same pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

_LINUX = sys.platform == "linux"


def start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or None (gone, or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
        return int(data[data.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def kill_group(pgid: int, start: int | None) -> bool:
    """SIGKILL the group unless its leader pid now belongs to another process; True when sent."""
    if pgid <= 1:
        return False
    now = start_time(pgid)
    if now is not None and start is not None and now != start:
        return False     # the pid was reused: not ours
    try:
        os.killpg(pgid, signal.SIGKILL)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def group_alive(pgid: int) -> bool:
    """Some process of the group still runs (zombies waiting for their reaper do not count)."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return False
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


class Guard:
    """Tells the watchdog (and the journal) which process groups are running."""

    def __init__(self) -> None:
        self.pipe: int | None = None
        self.journal: int | None = None
        self.watchdog: int | None = None

    def start_watchdog(self) -> None:
        """Fork the watchdog (Linux; elsewhere nothing happens)."""
        if not _LINUX or self.pipe is not None:
            return
        r, w = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(r)
            os.close(w)
            return
        # Not mutated: a mutant of this test lets the forked copy return into the caller (under
        # mutation testing, a test run that forks itself again and again).
        if pid == 0:   # the watchdog  # pragma: no mutate
            try:
                _watch(r, w)
            finally:
                os._exit(0)
        os.close(r)
        self.pipe = w
        self.watchdog = pid

    def open_journal(self, path: str) -> None:
        """Start a fresh journal at ``path`` (mode 600); leftovers must be killed before."""
        self.journal = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_NOFOLLOW
                               | os.O_CLOEXEC, 0o600)

    def started(self, pid: int) -> None:
        if self.pipe is None and self.journal is None:
            return
        line = f"+{pid} {start_time(pid) or 0}\n".encode()
        for fd in (self.pipe, self.journal):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.write(fd, line)

    def finished(self, pid: int) -> None:
        if self.pipe is not None:
            with contextlib.suppress(OSError):
                os.write(self.pipe, f"-{pid}\n".encode())

    def close(self, journal_path: str | None = None) -> None:
        """A normal end: the watchdog exits (nothing is left running), the journal is removed."""
        if self.pipe is not None:
            os.close(self.pipe)
            self.pipe = None
        if self.watchdog is not None:
            deadline = time.monotonic() + 1.0   # it exits at once; never hold up the end of a run for it
            try:
                while os.waitpid(self.watchdog, os.WNOHANG)[0] == 0 and time.monotonic() < deadline:
                    time.sleep(0.005)
            except ChildProcessError:
                pass
            self.watchdog = None
        if self.journal is not None:
            os.close(self.journal)
            self.journal = None
            if journal_path:
                with contextlib.suppress(OSError):
                    os.unlink(journal_path)


def _watch(r: int, w: int) -> None:
    """The watchdog's life: read the list of running groups until end of file, then kill them."""
    os.close(w)
    try:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)   # hold no console pipe open: a reader waits for its end of file
        os.close(null)
    except OSError:
        pass
    try:
        os.closerange(3, r)
        os.closerange(r + 1, 65536)
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    with contextlib.suppress(OSError):
        os.setsid()
    _serve(r)


def _serve(r: int) -> None:
    """Keep the list of running groups from the lines read on ``r``; at its end of file, kill them."""
    live: dict[int, int] = {}
    rest = b""
    while True:
        try:
            data = os.read(r, 65536)
        except InterruptedError:
            continue
        except OSError:
            data = b""
        if not data:
            break
        lines = (rest + data).split(b"\n")
        rest = lines.pop()
        for line in lines:
            _apply(live, line)
    for pgid, start in live.items():
        kill_group(pgid, start)


def _apply(live: dict[int, int], line: bytes) -> None:
    try:
        if line.startswith(b"+"):
            pid, start = line[1:].split()
            live[int(pid)] = int(start)
        elif line.startswith(b"-"):
            live.pop(int(line[1:]), None)
    except ValueError:
        pass


def kill_journal(path: str, wait: float = 5.0) -> int:
    """Kill what still runs of the groups listed in the journal at ``path``; the number of groups hit.

    Waits (up to ``wait`` seconds) until they are gone, so that a task run again
    next does not meet its previous incarnation.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(1 << 22)
    except OSError:
        return 0
    live: dict[int, int] = {}
    for line in data.split(b"\n"):
        _apply(live, line)
    hit = [pgid for pgid, start in live.items() if kill_group(pgid, start or None)]
    deadline = time.monotonic() + wait
    for pgid in hit:
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.02)
    return len(hit)
