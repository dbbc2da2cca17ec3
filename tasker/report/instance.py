"""``--instance-check``: one run at a time per workflow instance (docs/command-line.md).

An instance is the task file's content plus its global variables' values, so
the same file with other environment values is another instance.  The lock is
an exclusive advisory lock on ``~/TASKER/locks/workflow_<hash16>.lock`` held for
the whole run: a crashed run releases it with its process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import time

from tasker.report.private import private_dir


def instance_hash(content: bytes, globals_: dict[str, str]) -> str:
    inner = hashlib.sha256(content).hexdigest()
    data = inner + ":" + json.dumps(globals_, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()[:16]


class InstanceBusy(Exception):
    """The same instance holds the lock; ``holder`` is what the lock file says about it."""

    def __init__(self, path: str, holder: dict) -> None:
        super().__init__(path)
        self.path = path
        self.holder = holder


class InstanceLock:
    """Takes and releases the lock."""

    def __init__(self, home: str, digest: str) -> None:
        self.directory = os.path.join(home, "TASKER", "locks")
        self.path = os.path.join(self.directory, f"workflow_{digest}.lock")
        self.digest = digest
        self.fd: int | None = None

    def acquire(self, info: dict) -> None:


        private_dir(self.directory)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise InstanceBusy(self.path, holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info, indent=2).encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return

        with contextlib.suppress(OSError):
            os.unlink(self.path)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def _read(fd: int) -> dict:
    try:
        os.lseek(fd, 0, 0)
        data = os.read(fd, 65536)
        value = json.loads(data.decode() or "{}")
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def lock_info(task_file: str, digest: str, project: str | None, snapshot: dict) -> dict:
    return {
        "pid": os.getpid(),
        "task_file": os.path.abspath(task_file),
        "workflow_hash": digest,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "hostname": socket.gethostname(),
        "project": project,
        "global_vars_snapshot": snapshot,
    }
