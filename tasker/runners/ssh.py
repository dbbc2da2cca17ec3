"""OpenSSH connections of one run: shared master connections and stopping remote commands.

Two services for exec types whose program is the OpenSSH client, each switched
on by a key of the exec type (see cfg/execution_types.yaml):

* ``reuse_connections``: a host that the compiled workflow uses more than once
  (several tasks, loops, retries, backward jumps) gets one master connection
  (``ControlMaster``) for the life of the run, opened by its first use (host
  validation's connection test where that runs); every later task to that host
  is a multiplexed session over it: one handshake and one authentication per
  host instead of one per task.  Masters are tasker's own child processes, their
  sockets live in a private mode-700 directory, and ``Connections.close`` ends
  them all and removes the directory.  A host used once gets no master, so a
  pure fan-out pays nothing for this.  A master that cannot be opened is not
  retried: its host's tasks connect directly, as without reuse.
* ``stop_remote``: the remote login shell does not run the quoted command line
  directly but a small POSIX-shell wrapper around it.  The wrapper keeps the
  session's standard input (a pipe that tasker holds open and never writes) in a
  watcher that waits for end-of-file; the command itself gets ``/dev/null`` as
  standard input, as ``ssh -n`` gave it.  When tasker kills the local ssh client
  (timeout, Ctrl-C, SIGTERM) or dies, the channel closes, the watcher sees
  end-of-file and kills the session's process group (OpenSSH's sshd starts each
  session in a new session of its own): the remote command and everything it
  started stop too.  The command and its words are still exactly those of
  ``{command_line}`` and the remote exit code is still ssh's exit code.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import shutil
import signal
import tempfile
import threading
import time

# The command line is the only thing substituted; the rest is fixed text.  fd 3 keeps the
# session's stdin for the watcher; the watcher ignores SIGTERM so it lives to send SIGKILL.
WRAPPER = ('exec 3<&0 </dev/null; { trap "" TERM; read -r _ <&3; kill -TERM 0; sleep 1; kill -KILL 0; } '
           '>/dev/null 2>&1 & w=$!; exec 3<&-; %s; r=$?; kill -KILL $w; exit $r')

MASTER_WAIT = 30.0        # longest wait for a master's socket (ssh's own ConnectTimeout usually ends it first)
CLOSE_GRACE = 2.0         # SIGTERM -> SIGKILL for masters at the end of the run
# A master authenticates in tens of milliseconds on a near host: poll its socket often (a stat
# is microseconds), so that the first task does not wait out a long step after it is ready.
_POLL_STEP = 0.001
_POLL_MAX = 0.01


class RemoteArgv(list):
    """An exec type's argv for an OpenSSH client, with what ``Connections`` needs to adapt it.

    ``host_at`` is the index of the host name, ``line_at`` that of the command line
    (or -1); the list itself is what the log shows.
    """

    def __init__(self, argv: list[str], *, exec_type: str, host_at: int, line_at: int, reuse: bool,
                 stop: bool) -> None:
        super().__init__(argv)
        self.exec_type = exec_type
        self.host_at = host_at
        self.line_at = line_at
        self.reuse = reuse
        self.stop = stop and line_at >= 0

    @property
    def host(self) -> str:
        return self[self.host_at]

    def key(self) -> tuple:
        """What identifies a connection: program, every option and the host (user, port, key ...)."""
        return (self.exec_type, *self[:self.host_at + 1])


def sets_control_path(parts: list[str]) -> bool:
    """The template already chooses a control socket (``-S`` or ``-o ControlPath=``): leave it to the user."""
    return any(p == "-S" or "controlpath" in p.lower().replace(" ", "") for p in parts)


def wrap(command_line: str) -> str:
    return WRAPPER % command_line


class _Master:
    __slots__ = ("failed", "lock", "path", "pid")

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid: int | None = None
        self.failed = False
        self.lock = threading.Lock()


class Connections:
    """The run's ssh masters and the stdin pipe held open for remote commands."""

    def __init__(self, reused_hosts=(), base: str | None = None) -> None:
        # a set, or a function giving it: asked on the first ssh command only
        self._reused = reused_hosts if callable(reused_hosts) else set(reused_hosts)
        self.base = base
        self.directory: str | None = None
        self.masters: dict[tuple, _Master] = {}
        self._lock = threading.Lock()
        self._stdin: tuple[int, int] | None = None
        self.closed = False

    @property
    def reused(self) -> set[str]:
        """Host names that get a master connection (the compiler's answer, plus their resolved names)."""
        if callable(self._reused):
            with self._lock:
                if callable(self._reused):
                    self._reused = set(self._reused())
        return self._reused

    # ------------------------------------------------------------ adapting a task's argv

    def prepare(self, argv: RemoteArgv, cancel=None) -> tuple[list[str], int | None]:
        """The argv to start and the fd to give it as stdin (None: inherit)."""
        out = list(argv)
        stdin = None
        if argv.stop:
            out[argv.line_at] = wrap(out[argv.line_at])
            stdin = self.stdin()
        if argv.reuse and argv.host in self.reused and not self.closed:
            path = self.master(argv, cancel)
            if path is not None:
                out[1:1] = ["-o", f"ControlPath={path}", "-o", "ControlMaster=no"]
        return out, stdin

    def stdin(self) -> int:
        """The read end of a pipe that tasker never writes and closes only at the end (or by dying)."""
        with self._lock:
            if self._stdin is None:
                self._stdin = os.pipe()
            return self._stdin[0]

    # ------------------------------------------------------------ masters

    def master(self, argv: RemoteArgv, cancel=None) -> str | None:
        """The control socket of ``argv``'s connection, opening the master on first use; None if it failed."""
        key = argv.key()
        with self._lock:
            entry = self.masters.get(key)
            if entry is None:
                entry = self.masters[key] = _Master(os.path.join(self._dir(), _name(key)))
        with entry.lock:
            if entry.pid is None and not entry.failed:
                self._open(entry, argv, cancel)
            return None if entry.failed else entry.path

    def _dir(self) -> str:
        if self.directory is None:
            base = self.base or tempfile.gettempdir()
            if len(base) > 40:     # a Unix socket path has ~100 bytes; ssh adds a temporary suffix
                base = "/tmp"
            self.directory = tempfile.mkdtemp(prefix=f"tasker_ssh_{os.getpid()}_", dir=base)   # mode 700
        return self.directory

    def _open(self, entry: _Master, argv: RemoteArgv, cancel) -> None:
        options = [p for p in argv[1:argv.host_at + 1]]
        master_argv = [argv[0], "-o", f"ControlPath={entry.path}", "-o", "ControlMaster=yes",
                       "-o", "ControlPersist=no", "-N", *options]
        try:
            entry.pid = _spawn_quiet(master_argv)
        except OSError:
            entry.failed = True
            return
        if not self._wait_ready(entry, cancel):
            entry.failed = True
            self._stop(entry)

    def _wait_ready(self, entry: _Master, cancel) -> bool:
        """Wait for the socket (the master authenticated) or for the master's end."""
        deadline = time.monotonic() + MASTER_WAIT
        poller = select.poll()
        if cancel is not None:
            poller.register(cancel.fd, select.POLLIN)
        step = _POLL_STEP
        while time.monotonic() < deadline:
            if os.path.exists(entry.path):
                return True
            if _reap(entry.pid):
                entry.pid = None
                return False
            if cancel is not None and cancel.is_set:
                return False
            poller.poll(step * 1000)
            step = min(step * 1.5, _POLL_MAX)
        return False

    def _stop(self, entry: _Master) -> None:
        if entry.pid is not None:
            _signal_group(entry.pid, signal.SIGKILL)
            _wait(entry.pid, None)
            entry.pid = None

    # ------------------------------------------------------------ the end

    def close(self) -> None:
        """End every master (SIGTERM, then SIGKILL after a grace), remove the sockets, close the pipe."""
        with self._lock:
            self.closed = True
            masters = list(self.masters.values())
        live = [m for m in masters if m.pid is not None]
        for m in live:
            _signal_group(m.pid, signal.SIGTERM)
        deadline = time.monotonic() + CLOSE_GRACE
        for m in live:
            if not _wait(m.pid, deadline):
                _signal_group(m.pid, signal.SIGKILL)
                _wait(m.pid, None)
            m.pid = None
        if self._stdin is not None:
            for fd in self._stdin:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._stdin = None
        if self.directory is not None:

            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


def _name(key: tuple) -> str:
    return hashlib.sha1("\0".join(key).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _spawn_quiet(argv: list[str]) -> int:
    """Start a master in a session of its own, all three standard streams on /dev/null."""
    actions = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
    return os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions, setsid=True)


def _reap(pid: int) -> bool:
    """The process has ended (and is reaped now)."""
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done != 0


def _wait(pid: int, deadline: float | None) -> bool:
    """Wait for ``pid`` to end, until ``deadline`` (monotonic) or for ever; True when it ended."""
    step = _POLL_STEP
    while True:
        if _reap(pid):
            return True
        if deadline is None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
        step = min(step * 1.5, _POLL_MAX)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
