"""``--alert-on-failure SCRIPT``: run a script when the workflow ends badly (docs/command-line.md).

The script gets no arguments and no shell; the environment carries what
happened (``TASKER_EXIT_CODE``, ``TASKER_ERROR``, ``TASKER_FAILED_TASK``,
``TASKER_TASK_FILE``, ``TASKER_LOG_FILE``, ``TASKER_STATE_FILE``,
``TASKER_TIMESTAMP``).  It runs in its own process group, at most 30 s, and
whatever it does never changes tasker's exit code.
"""

from __future__ import annotations

import os
import stat
import time

from tasker.runners.base import Cancel
from tasker.runners.process import ProcessRunner

ALERT_TIMEOUT = 30.0


def prepare(path: str | None, warn) -> str | None:
    """The usable script path, or None (with a warning) when it is missing or not a file."""
    if not path:
        return None
    full = os.path.abspath(os.path.expanduser(path))
    try:
        info = os.lstat(full)
    except OSError:
        warn(f"alert script {full} does not exist: alerting is off")
        return None
    if not stat.S_ISREG(info.st_mode):
        warn(f"alert script {full} is not a regular file (a link, a directory ...): alerting is off")
        return None
    try:
        os.chmod(full, 0o700)
    except OSError as exc:
        warn(f"cannot make the alert script {full} executable: {exc.strerror}")
    return full


def run_alert(script: str, *, exit_code: int, error: str, task: int | None, task_file: str, log_file: str,
              state_file: str, log, environ: dict) -> None:
    """Run the script and log what it said; never raises."""

    env = dict(environ)
    env.update({
        "TASKER_EXIT_CODE": str(exit_code),
        "TASKER_ERROR": error,
        "TASKER_FAILED_TASK": str(task if task is not None else 0),
        "TASKER_TASK_FILE": task_file,
        "TASKER_LOG_FILE": log_file or "",
        "TASKER_STATE_FILE": state_file or "",
        "TASKER_TIMESTAMP": time.strftime("%Y-%m-%d %H:%M:%S"),
    })
    log.info(f"Running alert script {script} (exit code {exit_code}: {error})")
    cancel = Cancel()
    try:
        result = ProcessRunner(env=env).run([script], ALERT_TIMEOUT, cancel)
    except Exception as exc:  # an alert must never change how the run ends
        log.warn(f"alert script failed to run: {exc}")
        return
    finally:
        cancel.close()
    if result.error:
        log.warn(f"alert script could not start: {result.error}")
    elif result.timed_out:
        log.warn(f"alert script killed after {ALERT_TIMEOUT:g} seconds")
    elif result.exit_code != 0:
        log.warn(f"alert script exited with {result.exit_code}")
    for name in ("stdout", "stderr"):
        text = getattr(result, name).head(2000).strip()
        if text:
            log.info(f"alert script {name}: {text}")
