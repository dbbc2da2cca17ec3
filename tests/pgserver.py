"""A private PostgreSQL server in a temporary directory, for the history tests.

``PostgresServer.start`` finds Debian's server programs (``pg_config
--bindir``, else the newest /usr/lib/postgresql/*/bin), runs ``initdb`` into
a fresh directory (trust authentication, user ``tasker``, no fsync) and
starts it with ``pg_ctl`` on a free port of 127.0.0.1 with its unix socket
in the same directory.  PostgreSQL refuses to run as root, so as root the
directory belongs to the ``postgres`` account and the programs run through
``runuser``.  ``stop`` shuts it down and removes the directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile

START_TIMEOUT = 60


class CannotStart(Exception):
    """No PostgreSQL server here, or it does not start (the tests are skipped with this reason)."""


def bindir() -> str | None:
    config = shutil.which("pg_config")
    if config:
        try:
            out = subprocess.run([config, "--bindir"], capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out and os.path.exists(os.path.join(out, "initdb")):
            return out
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
                   if p.split("/")[4].isdigit() else 0)
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self) -> None:
        self.bin = ""
        self.dir = ""
        self.port = 0
        self.prefix: list[str] = []
        self.started = False

    @property
    def url(self) -> str:
        return f"postgresql://tasker@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess:
        return subprocess.run([*self.prefix, *argv], capture_output=True, text=True, timeout=timeout,
                              cwd=self.dir, stdin=subprocess.DEVNULL)

    def start(self) -> None:
        self.bin = bindir() or ""
        if not self.bin:
            raise CannotStart("PostgreSQL's initdb is not installed (Debian: apt-get install postgresql)")
        self.dir = tempfile.mkdtemp(prefix="tasker-pg-")
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                raise CannotStart("running as root and there is no postgres account to run the server") from None
            runuser = shutil.which("runuser") or "/usr/sbin/runuser"
            if not os.path.exists(runuser):
                raise CannotStart("running as root and there is no runuser to start the server as postgres")
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            self.prefix = [runuser, "-u", "postgres", "--"]
        data = os.path.join(self.dir, "data")
        init = self._run(os.path.join(self.bin, "initdb"), "-D", data, "-A", "trust", "-U", "tasker", "-E", "UTF8",
                         "--locale=C", "--no-sync")
        if init.returncode != 0:
            raise CannotStart(f"initdb failed: {init.stderr.strip()[-500:]}")
        self.port = free_port()
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        started = self._run(os.path.join(self.bin, "pg_ctl"), "-D", data, "-l", os.path.join(self.dir, "log"),
                            "-o", options, "-w", "-t", str(START_TIMEOUT), "start", timeout=START_TIMEOUT + 30)
        if started.returncode != 0:
            raise CannotStart(f"the server did not start: {started.stderr.strip()[-300:]} {self.log_tail()}")
        self.started = True

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.dir, "log")) as fh:
                return fh.read()[-500:]
        except OSError:
            return ""

    def create_database(self, name: str) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://tasker@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.started:
            self._run(os.path.join(self.bin, "pg_ctl"), "-D", os.path.join(self.dir, "data"), "-m", "immediate",
                      "-w", "stop")
            self.started = False
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
