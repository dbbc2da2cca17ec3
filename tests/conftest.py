"""Fixtures shared by the tests (helpers live in support.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import Tasker


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
        assert login.stdout.strip() == "ready", (
            f"sshd started but the test key cannot log in: {login.stderr.strip()} / sshd: {server.log_tail()}")
        yield server
    finally:
        server.stop()
