"""Running real processes: own process group, streamed capture, timeouts, cancel.

Each command starts in a new session (its own process group, no controlling
terminal), with stdout and stderr on pipes and stdin inherited (ssh exec types:
a pipe tasker holds open, see tasker.runners.ssh).  One ``poll``
loop waits on both pipes, on the child's exit (a pidfd where the kernel has
them) and on the cancel pipe; nothing sleeps on a timer, so a task that ends
in 2 ms is seen in 2 ms.  On timeout the whole group gets SIGKILL (a
grandchild holding the pipes cannot delay the result); on Ctrl-C/SIGTERM the
group gets SIGTERM, then SIGKILL after 0.5 s.  A client that runs the command
elsewhere (srun) can instead be given a stop hook that stops the remote side
first, and a grace period in which the client ends by itself.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import shutil
import signal
import sys
import tempfile
import threading
import time

from tasker.runners.base import Cancel, RunResult
from tasker.runners.output import Capture, Output
from tasker.runners.ssh import Connections

MIN_TIMEOUT = 5.0        # timeouts are clamped to 5..1000 s, so none is needed before 5 s
EXIT_GRACE = 5.0         # after the child exits, how long pipes held by its children are read
TERM_GRACE = 0.5         # SIGTERM -> SIGKILL on cancel
READ_SIZE = 65536
FDS_PER_CHILD = 6        # stdout/stderr pipes (both ends while spawning), pidfd, two spill files
FD_RESERVE = 64          # tasker's own files: log, JSON, lock, cancel pipe, ssh stdin pipe ...
_POLL_IN = select.POLLIN | select.POLLHUP | select.POLLERR


class Session:
    """The run's private directory for spill files, created on first use (mode 700)."""

    def __init__(self, base: str | None = None) -> None:
        self.base = base
        self.path: str | None = None
        self._lock = threading.Lock()

    def spill_file(self, name: str):
        """A new, exclusively created mode-600 file for one stream: ``(path, binary file)``."""
        with self._lock:
            if self.path is None:
                sweep_stale_sessions(self.base)   # first spill of this run: tidy up after killed runs
                self.path = tempfile.mkdtemp(prefix=f"tasker_session_{os.getpid()}_", dir=self.base)
        while True:
            path = os.path.join(self.path, f"tasker_{name}_{os.urandom(4).hex()}")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            return path, os.fdopen(fd, "wb")

    def cleanup(self) -> None:
        """Remove the directory and every spill file in it."""
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None


def sweep_stale_sessions(base: str | None = None) -> None:
    """Remove session directories left by tasker runs that were killed (their pid is gone)."""
    base = base or tempfile.gettempdir()
    try:
        names = os.listdir(base)
    except OSError:
        return
    uid = os.getuid()
    for name in names:
        if not name.startswith("tasker_session_"):
            continue
        parts = name.split("_")
        if len(parts) < 4 or not parts[2].isdigit():
            continue
        path = os.path.join(base, name)
        try:
            if os.stat(path).st_uid != uid or _alive(int(parts[2])):
                continue
        except OSError:
            continue

        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ensure_open_files(children: int) -> str | None:
    """Make room for ``children`` processes running at once; the problem as text when there is none.

    Each running child holds a few descriptors (FDS_PER_CHILD).  When the soft
    RLIMIT_NOFILE is too small for that, it is raised to the hard limit, so a wide
    block never fails with EMFILE half-way; when even the hard limit is too small,
    the run must not start.
    """
    try:
        import resource
    except ImportError:      # not POSIX: no such limit to manage
        return None
    needed = children * FDS_PER_CHILD + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    if hard != resource.RLIM_INFINITY and hard < needed:
        return (f"{children} tasks running at once need about {needed} open files, but the limit is "
                f"{soft} (hard limit {hard})")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        return f"{children} tasks running at once need about {needed} open files, but the limit is {soft} " \
               f"and cannot be raised: {exc}"
    return None


class ProcessRunner:
    """Runs commands as real processes (see module docstring)."""

    def __init__(self, session: Session | None = None, env: dict | None = None, guard=None,
                 connections=None) -> None:
        self.session = session
        self.guard = guard      # runners.guard.Guard: running groups die with tasker
        self.connections = connections     # tasker.runners.ssh.Connections, for ssh exec types
        # None: the children inherit tasker's environment.  Taken once, as a plain
        # bytes dict: handing os.environ to every spawn decodes and re-encodes it
        # each time, ~50 us a member; tasker never changes its own environment.
        self.env = env if env is not None else _environment()
        self.env_problem = unpassable(["-"], self.env)   # checked once: the environment never changes

    def run(self, argv: list[str], timeout, cancel: Cancel, *, messages_fd: int | None = None,
            on_stop=None, stop_grace: float = 0.0) -> RunResult:
        """Run ``argv``; ``timeout`` is seconds or a function giving them (asked only after 5 s).

        For a client program that runs the command elsewhere (srun):  ``messages_fd``: the
        client's own stderr goes to this file descriptor, and the stderr capture is its fd 3
        instead.  ``on_stop(timed_out)``: called once when the timeout passes or a cancel
        comes, instead of signalling the client; the remote side is told to stop there, and
        the client, which then ends by itself, gets ``stop_grace`` seconds before its
        process group is killed.
        """
        start = time.time()
        problem = self.env_problem or unpassable(argv, None)
        if problem:
            return _refused(start, problem)
        stdin = None
        if hasattr(argv, "exec_type"):     # an ssh exec type (tasker.runners.ssh.RemoteArgv)
            if self.connections is None:
                self.connections = Connections()    # no shared masters; still stops remote commands
            argv, stdin = self.connections.prepare(argv, cancel)
        try:
            child = spawn(argv, self.env, messages_fd, stdin)
        except FileNotFoundError as exc:
            return _spawn_failure(start, exc, not_found=True)
        except OSError as exc:
            return _spawn_failure(start, exc, not_found=False)
        except (ValueError, UnicodeError) as exc:   # anything else the OS interface cannot take
            return _refused(start, str(exc))
        watch = _Watch(child, timeout, cancel, self.session, start)
        if on_stop is not None:
            watch.on_stop, watch.kill_grace = on_stop, stop_grace
        if self.guard is None:
            return watch.run()
        self.guard.started(child.pid)
        try:
            return watch.run()
        finally:
            self.guard.finished(child.pid)


def _environment() -> dict:
    return dict(os.environb) if os.supports_bytes_environ else dict(os.environ)


class Child:
    """A started process: its pid, the read ends of its stdout/stderr pipes, its exit code."""

    __slots__ = ("err_fd", "out_fd", "pid", "returncode")

    def __init__(self, pid: int, out_fd: int, err_fd: int) -> None:
        self.pid = pid
        self.out_fd = out_fd
        self.err_fd = err_fd
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -signal.SIGKILL
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        while self.returncode is None:
            try:
                _pid, status = os.waitpid(self.pid, 0)
            except ChildProcessError:
                self.returncode = -signal.SIGKILL
                break
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)


_USE_POSIX_SPAWN = hasattr(os, "posix_spawnp") and hasattr(os, "POSIX_SPAWN_DUP2") and sys.platform == "linux"


def spawn(argv: list[str], env: dict | None, messages_fd: int | None = None, stdin: int | None = None) -> Child:
    """Start ``argv`` in a new session with stdout/stderr on pipes and stdin inherited (or ``stdin``).

    posix_spawnp (vfork + exec in C, PATH searched in C) where the platform has it:
    it costs half the Python work of subprocess.Popen, which matters when 50 members
    of a parallel block restart at the same moment.  With ``messages_fd`` the stderr
    pipe is the child's fd 3 and its fd 2 is ``messages_fd`` (see ``ProcessRunner.run``).
    """
    if messages_fd is not None:
        return _spawn_relay(argv, env, messages_fd)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        if _USE_POSIX_SPAWN and out_w > 2 and err_w > 2 and (stdin is None or stdin > 2):
            actions = [(os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)]
            if stdin is not None:
                actions.append((os.POSIX_SPAWN_DUP2, stdin, 0))
            pid = os.posix_spawnp(argv[0], argv, os.environ if env is None else env, file_actions=actions,
                                  setsid=True)
        else:
            pid = _popen(argv, env, out_w, err_w, stdin)
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    return Child(pid, out_r, err_r)


def _spawn_relay(argv: list[str], env: dict | None, messages_fd: int) -> Child:
    """``spawn`` for a relaying client: stdout on a pipe, the stderr pipe on fd 3, fd 2 = ``messages_fd``."""
    if not _USE_POSIX_SPAWN:
        raise OSError(errno.ENOSYS, "starting a program with its stderr on fd 3 needs posix_spawn (Linux)")
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    sources = []
    try:
        # every source must sit above 3, or an earlier dup2 of the list would overwrite it
        sources = [_above(fd, 3) for fd in (out_w, err_w, messages_fd)]
        actions = [(os.POSIX_SPAWN_DUP2, sources[0], 1), (os.POSIX_SPAWN_DUP2, sources[1], 3),
                   (os.POSIX_SPAWN_DUP2, sources[2], 2)]
        pid = os.posix_spawnp(argv[0], argv, os.environ if env is None else env, file_actions=actions,
                              setsid=True)
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        for fd in {out_w, err_w, *sources} - {messages_fd}:
            os.close(fd)
    return Child(pid, out_r, err_r)


def _above(fd: int, floor: int) -> int:
    """``fd``, or a close-on-exec duplicate of it numbered above ``floor``."""
    if fd > floor:
        return fd

    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor + 1)


def _popen(argv: list[str], env: dict | None, out_w: int, err_w: int, stdin: int | None = None) -> int:
    import subprocess  # only where posix_spawn is missing: it costs start-up time

    proc = subprocess.Popen(argv, stdin=stdin, stdout=out_w, stderr=err_w, env=env, start_new_session=True,
                            close_fds=True)
    proc.returncode = 0   # the Child reaps it; keep Popen's finaliser from waiting
    return proc.pid


def unpassable(argv: list[str], env: dict | None) -> str:
    """Why the OS cannot take this command line or environment ("" when it can).

    Values come from task output at run time (a remote host controls them), so a
    NUL byte or a lone surrogate is a failure of the task, not of tasker.
    """
    if not argv or not argv[0]:
        return "the command is empty"
    for i, arg in enumerate(argv):
        why = _bad_text(arg)
        if why:
            return f"{'the command' if i == 0 else f'argument {i}'} {why}"
    for key, value in (env or {}).items():
        why = _bad_text(key) or _bad_text(value)
        if why:
            return f"environment variable {os.fsdecode(key)!r} {why}"
    return ""


def _bad_text(value: str | bytes) -> str:
    if isinstance(value, bytes):
        return "contains a NUL byte, which a process cannot receive" if b"\0" in value else ""
    if "\0" in value:
        return "contains a NUL byte, which a process cannot receive"
    try:
        os.fsencode(value)
    except UnicodeError:
        return "contains text that cannot be encoded for the operating system"
    return ""


def _refused(start: float, why: str) -> RunResult:
    text = f"cannot start the command: {why}"
    return RunResult(1, Output(""), Output(text), error=text, start=start, end=time.time())


def _spawn_failure(start: float, exc: OSError, not_found: bool) -> RunResult:
    text = str(exc)     # "[Errno N] reason: 'program'" when the error names the program
    return RunResult(1, Output(""), Output(text), error=text, not_found=not_found, start=start, end=time.time())


class _Watch:
    """The poll loop around one child process."""

    def __init__(self, proc: Child, timeout, cancel: Cancel, session: Session | None,
                 start: float) -> None:
        self.proc = proc
        self.on_stop = None                # see ProcessRunner.run
        self.kill_grace = TERM_GRACE       # after SIGTERM (or on_stop): how long until SIGKILL
        self.timeout_source = timeout
        self.timeout: float | None = float(timeout) if not callable(timeout) else None
        self.cancel = cancel
        self.start = start
        self.t0 = time.monotonic()
        self.captures = {proc.out_fd: Capture("stdout", session), proc.err_fd: Capture("stderr", session)}
        self.poller = select.poll()
        self.exited = False
        self.exit_seen_at = 0.0
        self.timed_out = False
        self.term_sent_at: float | None = None
        self.killed = False

    def run(self) -> RunResult:
        pidfd = self._pidfd()
        for fd in self.captures:
            self.poller.register(fd, _POLL_IN)
        if pidfd is not None:
            self.poller.register(pidfd, select.POLLIN)
        if self.cancel is not None:
            self.poller.register(self.cancel.fd, select.POLLIN)
        try:
            self._loop(pidfd)
        finally:
            if pidfd is not None:
                os.close(pidfd)
            for fd in list(self.captures):
                self._close(fd)
            if self.proc.returncode is None:
                self._kill(signal.SIGKILL)
                self.proc.wait()
        return self._result()

    def _pidfd(self) -> int | None:
        try:
            return os.pidfd_open(self.proc.pid)
        except (AttributeError, OSError):
            return None

    def _loop(self, pidfd: int | None) -> None:
        open_fds = set(self.captures)
        while True:
            if not open_fds and (self.exited or self._reaped()):
                return
            wait = self._next_wait(pidfd)
            if wait is not None and wait <= 0:
                if self._on_deadline():
                    return
                continue
            for fd, _event in self.poller.poll(None if wait is None else max(1, int(wait * 1000) + 1)):
                if fd in open_fds:
                    data = _read(fd)
                    if data:
                        self.captures[fd].feed(data)
                    else:
                        open_fds.discard(fd)
                        self.poller.unregister(fd)
                elif fd == pidfd:
                    self.poller.unregister(pidfd)
                    self._note_exit()
                elif self.cancel is not None and fd == self.cancel.fd:
                    self.poller.unregister(fd)
                    self._on_cancel()
            if pidfd is None and not self.exited:
                self._reaped()

    def _next_wait(self, pidfd: int | None) -> float | None:
        """Seconds until the next deadline (timeout, kill after SIGTERM, exit grace), or None."""
        now = time.monotonic()
        deadlines = []
        if not self.timed_out and not self.killed and not self.exited:
            # the timeout is the command's: once it has ended, what it left running is not timed
            limit = self.timeout if self.timeout is not None else MIN_TIMEOUT
            deadlines.append(self.t0 + limit)
        if self.term_sent_at is not None and not self.killed:
            deadlines.append(self.term_sent_at + self.kill_grace)
        if self.exited:
            deadlines.append(self.exit_seen_at + self._grace())
        if pidfd is None and not self.exited:
            deadlines.append(now + 0.05)  # no pidfd: look for the child's exit now and then
        return min(deadlines) - now if deadlines else None

    def _on_deadline(self) -> bool:
        """Handle a passed deadline; True when the loop should end."""
        now = time.monotonic()
        if self.exited and now >= self.exit_seen_at + self._grace():
            return True   # the child is gone; its own children keep the pipes: stop reading
        if self.term_sent_at is not None and not self.killed and now >= self.term_sent_at + self.kill_grace:
            self._kill(signal.SIGKILL)
            return False
        if not self.timed_out and not self.killed:
            if self.timeout is None:
                self.timeout = max(MIN_TIMEOUT, float(self.timeout_source()))
                if now < self.t0 + self.timeout:
                    return False
            self.timed_out = True
            if self.on_stop is not None:
                self._stopping()
            else:
                self._kill(signal.SIGKILL)
        return False

    def _grace(self) -> float:
        """Reading time after the child's exit: short once we have killed its group."""
        return 1.0 if self.killed else EXIT_GRACE

    def _on_cancel(self) -> None:
        if self.term_sent_at is None and not self.killed:
            if self.on_stop is not None:
                self._stopping()
                return
            self._kill(signal.SIGTERM)
            self.term_sent_at = time.monotonic()

    def _stopping(self) -> None:
        """Run the on_stop hook once, then give the child kill_grace seconds to end by itself."""
        hook, self.on_stop = self.on_stop, None
        if not self.exited:
            hook(self.timed_out)
        self.term_sent_at = time.monotonic()

    def _note_exit(self) -> None:
        if not self.exited:
            self.exited = True
            self.exit_seen_at = time.monotonic()
            self.proc.wait()

    def _reaped(self) -> bool:
        if self.proc.poll() is not None:
            self._note_exit()
            return True
        return False

    def _kill(self, sig: int) -> None:
        if sig == signal.SIGKILL:
            self.killed = True
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(OSError):     # gone meanwhile, or not ours to signal either
                self.proc.send_signal(sig)

    def _close(self, fd: int) -> None:
        with contextlib.suppress(OSError):
            os.close(fd)

    def _result(self) -> RunResult:
        end = time.time()
        code = self.proc.returncode      # run() has reaped the child, killing it if need be
        out_fd, err_fd = list(self.captures)
        note = ""
        if self.timed_out:
            code = 124
            note = f"\nProcess killed after timeout of {self.timeout:g} seconds"
        return RunResult(code, self.captures[out_fd].finish(), self.captures[err_fd].finish(note),
                         timed_out=self.timed_out, timeout=self.timeout or 0.0, start=self.start, end=end)


def _read(fd: int) -> bytes:
    """Up to READ_SIZE bytes; b"" at end of file (or when the pipe is gone)."""
    try:
        return os.read(fd, READ_SIZE)
    except OSError:
        return b""
