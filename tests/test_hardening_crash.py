"""Hostile or careless input never crashes tasker: each case ends with a clear message and its exit code."""

from __future__ import annotations

import pytest

from tasker.runners.base import Cancel
from tasker.runners.process import ProcessRunner


def no_traceback(result) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stdout[-3000:] + result.stderr[-3000:]


def local_task(tid: int, command: str, arguments: str = "", *extra: str) -> str:
    lines = [f"task={tid}", "hostname=localhost", "exec=local", f"command={command}"]
    if arguments:
        lines.append(f"arguments={arguments}")
    return "\n".join([*lines, *extra]) + "\n"


# ----------------------------------------------------------------- values the OS cannot take


def test_nul_byte_in_output_fails_the_next_task_like_a_spawn_error(tasker):
    data = tasker.tmp / "nul.bin"
    data.write_bytes(b"a\0b")
    flow = tasker.write(local_task(0, "cat", str(data)) + local_task(1, "echo", "@0_stdout@"))
    for args in (("-r",), ("-r", "--auto-recovery"), ("-r", "--auto-recovery")):   # then twice resumed
        r = tasker.run(flow, *args)
        no_traceback(r)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "Task 1: could not start" in r.stdout and "NUL byte" in r.stdout


@pytest.mark.parametrize("argv", [["echo", "a\0b"], ["ec\0ho"], ["echo", "\ud800"], [""]])
def test_runner_refuses_what_the_os_cannot_take(argv):
    cancel = Cancel()
    try:
        result = ProcessRunner().run(argv, 30, cancel)
    finally:
        cancel.close()
    assert result.exit_code == 1 and result.error.startswith("cannot start the command")


def test_runner_refuses_an_environment_with_a_nul_byte():
    cancel = Cancel()
    try:
        result = ProcessRunner(env={"A": "x\0y"}).run(["true"], 30, cancel)
    finally:
        cancel.close()
    assert result.exit_code == 1 and "environment variable 'A'" in result.error
