"""``-p NAME``: one row per run in ``L/project/NAME.summary`` (docs/files.md).

Tab-separated, a header line when the file is created.  Concurrent runs of the
same project take an exclusive lock on the file, waiting with exponential
back-off up to 20 s (45 s with ``TASK_EXECUTOR_HIGH_LOAD``).
"""

from __future__ import annotations

import fcntl
import os
import random
import time

from tasker.report.files import prefix_of
from tasker.report.private import open_append, private_dir

HEADER = "#Timestamp\tStatus\tExit_Code\tTask_File\tTask_ID\tHostname\tCommand\tLog_File\n"


def summary_path(log_base: str, project: str) -> str:
    return os.path.join(log_base, "project", f"{prefix_of(project)}.summary")


def _clean(value: object) -> str:
    return str(value).replace("\r", "").replace("\t", " ").replace("\n", " ")


def append_row(path: str, *, success: bool, exit_code: object, task_file: str, task_id: object, hostname: str,
               command: str, log_file: str, environ: dict) -> bool:
    """Append one row under an exclusive lock; False when the lock could not be had in time."""


    private_dir(os.path.dirname(path))
    row = "\t".join(_clean(v) for v in (
        time.strftime("%Y-%m-%d %H:%M:%S"), "SUCCESS" if success else "FAILURE", exit_code,
        os.path.basename(task_file), task_id, hostname or "N/A", command, os.path.basename(log_file) if log_file
        else "unknown.log")) + "\n"
    limit = 45.0 if environ.get("TASK_EXECUTOR_HIGH_LOAD") else 20.0
    deadline = time.monotonic() + limit
    delay = 0.01
    with open_append(path) as fh:
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)
        try:
            if fh.tell() == 0 and os.path.getsize(path) == 0:
                fh.write(HEADER)
            fh.write(row)
            fh.flush()
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return True
