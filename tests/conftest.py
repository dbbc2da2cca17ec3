"""Fixtures shared by the tests (helpers live in support.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import Tasker

# The benchmark harness runs on its own (python tests/benchmarks/run.py), never in the suite.
collect_ignore = ["benchmarks"]

# Under `mutmut run` (see README, "Mutation testing") the tests import the mutated copy of the
# package, and so do the `tasker` subprocesses they start.  While mutmut records which tests reach
# which function it sets MUTANT_UNDER_TEST=stats; a subprocess inheriting that would try to record
# too, outside mutmut's directory, and fail.  Subprocesses then run the original code instead (this
# process keeps its own copy of the setting); while a mutant is tested they inherit its name and
# run it.
if os.environ.get("MUTANT_UNDER_TEST") == "stats":
    del os.environ["MUTANT_UNDER_TEST"]


@pytest.fixture(autouse=True)
def _fresh_parse_caches():
    """Every test parses its conditions and templates, and checks its hosts and commands, afresh:
    a result cached by an earlier test would hide that code from this one (and from mutation
    testing, which runs each mutant in a process forked after the caches were filled)."""
    from tasker.check import security, variables
    from tasker.syntax import condition

    condition._cache.clear()
    condition._shown.clear()
    condition._operand_shown.clear()
    variables.parse_template.cache_clear()
    security.check_hostname.cache_clear()
    security.check_command.cache_clear()


class SignalRefused(BaseException):
    """A test's code tried to signal init, the test process or its group, or every process."""


@pytest.fixture(autouse=True)
def _never_signal_init_or_everyone(monkeypatch):
    """Refuse, and fail the test on, a signal to pid 1, to process group 0 or 1, to pid -1, or to
    the test process itself or its process group.

    The tests run as root in CI: a bug (or a mutant under mutation testing) that turns a pid
    into 0, 1 or -1 would kill the test run, the machine's other processes or its init; one that
    turns a harmless probe (signal 0) of the test's own pid into a real signal would end the test
    run with no failure to show.  The refusal is a BaseException so that no ``except Exception``
    in the code can swallow it.  The test process is the one that set the fixture up: a child
    forked by the code under test may still signal itself.
    """
    real_kill, real_killpg, refused = os.kill, os.killpg, []
    me, my_group = os.getpid(), os.getpgrp()

    def kill(pid: int, sig: int) -> None:
        if sig != 0 and (pid in (-1, 0, 1) or pid in (me, -my_group)):
            refused.append(("kill", pid, sig))
            raise SignalRefused(f"os.kill({pid}, {sig})")
        real_kill(pid, sig)

    def killpg(pgid: int, sig: int) -> None:
        if isinstance(pgid, int) and (pgid <= 1 or (pgid == my_group and sig != 0)):
            refused.append(("killpg", pgid, sig))
            raise SignalRefused(f"os.killpg({pgid}, {sig})")
        real_killpg(pgid, sig)

    monkeypatch.setattr(os, "kill", kill)
    monkeypatch.setattr(os, "killpg", killpg)
    yield
    assert not refused, f"the code under test tried to signal init, the test process, its group or everyone: {refused}"


@pytest.fixture
def tasker(tmp_path: Path) -> Tasker:
    return Tasker(tmp_path)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A real OpenSSH server on 127.0.0.1 ... 127.0.0.21 (see sshd.py); skipped where sshd cannot start."""
    from sshd import CannotStart, SSHServer

    server = SSHServer(tmp_path_factory.mktemp("sshd"))
    try:
        server.start()
    except CannotStart as exc:
        pytest.skip(f"no OpenSSH server for the ssh tests: {exc}")
    try:
        login = server.ssh("127.0.0.1", "echo ready")
        if login.stdout.strip() != "ready":
            problem = (f"sshd started but refuses the test key for {server.user}: {login.stderr.strip()} "
                       f"/ sshd: {server.log_tail()}")
            if os.geteuid() == 0:
                pytest.fail(problem)     # CI runs as root: there this must work
            # Not root: e.g. an account whose password is locked ('!'), which sshd without PAM refuses.
            pytest.skip(f"no OpenSSH login for the ssh tests: {problem}")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A real single-node Slurm cluster (see slurm.py); skipped where it cannot start."""
    from slurm import CannotStart, SlurmCluster

    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except CannotStart as exc:
        cluster.stop()
        pytest.skip(f"no Slurm cluster for the slurm tests: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL server on 127.0.0.1 (see pgserver.py); skipped where it cannot start."""
    try:
        import psycopg  # noqa: F401 - the history's PostgreSQL driver (the postgres extra)
    except ImportError:
        pytest.skip("psycopg is not installed: pip install 'tasker[postgres]' (the test extra includes it)")
    from pgserver import CannotStart, PostgresServer

    server = PostgresServer()
    try:
        server.start()
    except CannotStart as exc:
        server.stop()
        pytest.skip(f"no PostgreSQL server for the history tests: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server, request) -> str:
    """A fresh, empty database on the private server, named after the test."""
    import re

    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50]
    return postgres_server.create_database(name)
