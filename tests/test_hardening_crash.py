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


# ----------------------------------------------------------------- deep condition nesting


def nested(depth: int, atom: str = "exit_1") -> str:
    """``exit_1|(exit_1&(exit_1|(... exit_0)))``: ``depth`` levels of alternating parentheses."""
    text = "exit_0"
    for level in range(depth):
        text = f"{atom}{'|' if level % 2 == 0 else '&'}({text})"
    return text


def test_nesting_at_the_limit_runs_through_every_stage(tasker):
    from tasker.syntax.condlex import MAX_NESTING

    flow = tasker.write(local_task(0, "true", "", f"success={nested(MAX_NESTING, 'exit_0')}",
                                       f"next={nested(MAX_NESTING, 'exit_0')}")
                        + local_task(1, "true", "", f"condition={nested(MAX_NESTING, '@0_exit@=1')}"))
    out = tasker.tmp / "out.json"
    r = tasker.run(flow, "-r", "--auto-recovery", f"--output-json={out}")
    no_traceback(r)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    for fmt in ("text", "dot", "mermaid"):
        r = tasker.run(flow, "-y", "--show-plan", f"--plan-format={fmt}")
        no_traceback(r)
        assert r.returncode == 0


def test_nesting_beyond_the_limit_is_a_diagnostic(tasker):
    from tasker.syntax.condlex import MAX_NESTING

    flow = tasker.write(local_task(0, "true", "", f"success={nested(MAX_NESTING + 1)}"))
    r = tasker.run(flow, "--validate-only")
    no_traceback(r)
    assert r.returncode == 20
    assert "flow.txt:5:" in r.stderr + r.stdout and f"nested more than {MAX_NESTING} deep" in r.stdout + r.stderr


@pytest.mark.parametrize("depth", [350, 1000, 5000])
def test_deep_nesting_never_crashes_even_without_validation(tasker, depth):
    flow = tasker.write(local_task(0, "true", "", f"success={nested(depth)}", f"next={nested(depth)}"))
    for args in (("--validate-only",), ("-y", "--show-plan", "--skip-validation"), ("-r", "--skip-validation")):
        r = tasker.run(flow, *args)
        no_traceback(r)
        assert r.returncode in (1, 20), r.stdout[-2000:] + r.stderr[-2000:]


# ----------------------------------------------------------------- numbers too long to convert

HUGE = "9" * 5000     # Python refuses to convert more than 4,300 digits


@pytest.mark.parametrize("lines", [
    [f"task={HUGE}", "hostname=localhost", "command=true"],
    *(["task=0", "hostname=localhost", "command=true", f"{key}={HUGE}"]
      for key in ("timeout", "loop", "on_success", "on_failure", "return", "max_parallel", "retry_count",
                  "retry_delay", "sleep", "next", "stdout_split=space,", "stderr_split=comma,")),
    *(["task=0", "hostname=localhost", "command=true", f"success={cond}"]
      for cond in (f"exit_{HUGE}", f"stdout_count>{HUGE}", f"@{HUGE}_exit@=0", f"exit_0|exit_{HUGE}")),
    ["task=0", "type=parallel", f"tasks=1,{HUGE}", "next=min_success=" + HUGE, "task=1", "hostname=localhost",
     "command=true"],
    ["task=0", "hostname=localhost", "command=true", f"arguments=@{HUGE}_stdout@"],
    ["task=0", f"hostname={HUGE}.1.1.1", "command=true"],
    [f"N={HUGE}", "task=0", "hostname=localhost", "command=true", "timeout=@N@"],
], ids=lambda lines: next((line.split("=")[0] for line in reversed(lines) if HUGE in line), "?"))
def test_huge_numbers_in_a_task_file_are_diagnostics(tasker, lines):
    lines = [line + HUGE if line.endswith("split=space,") or line.endswith("split=comma,") else line
             for line in lines]
    flow = tasker.write("\n".join(lines) + "\n")
    r = tasker.run(flow, "--validate-only")
    no_traceback(r)
    assert r.returncode == 20, r.stdout[-2000:] + r.stderr[-2000:]
    assert len(r.stdout + r.stderr) < 200_000     # a diagnostic, not an echo of every digit


@pytest.mark.parametrize("flag", ["--timeout", "--start-from"])
def test_huge_numbers_on_the_command_line_are_usage_errors(tasker, flag):
    flow = tasker.write(local_task(0, "true"))
    r = tasker.run(flow, f"{flag}={HUGE}")
    no_traceback(r)
    assert r.returncode == 2 and "5000 digits" in r.stderr


def test_huge_numbers_in_task_output_are_values_not_crashes(tasker):
    digits = tasker.tmp / "digits"
    digits.write_text(HUGE + "\n")
    flow = tasker.write(local_task(0, "cat", str(digits))
                        + local_task(1, "true", "", "timeout=@0_stdout@", "sleep=0", "success=exit_0")
                        + "task=2\ntype=parallel\ntasks=10\nretry_failed=true\nretry_count=@0_stdout@\n"
                        + local_task(10, "true", "", "timeout=@0_stdout@")
                        + "task=3\nreturn=@0_stdout@\n")
    r = tasker.run(flow, "-r", "--skip-validation")
    no_traceback(r)
    assert r.returncode == 50, r.stdout[-3000:] + r.stderr[-3000:]   # an invalid return value


def test_an_infinite_sleep_waits_until_cancelled():
    import threading

    from tasker.runners.base import SystemClock

    cancel = Cancel()
    timer = threading.Timer(0.2, cancel.set, (15,))
    timer.start()
    try:
        assert SystemClock().sleep(float("inf"), cancel) is False
    finally:
        timer.cancel()
        cancel.close()


# ----------------------------------------------------------------- a reader that went away (EPIPE)


def run_with_closed_stdout(tasker, *args: str, stderr_too: bool = False) -> tuple[int, str]:
    """Run tasker with stdout (and maybe stderr) a pipe whose reader is already gone."""
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        err = write_end if stderr_too else subprocess.PIPE
        proc = subprocess.run([sys.executable, "-m", "tasker", *args], stdout=write_end, stderr=err,
                              env=tasker.env(), cwd=tasker.tmp, timeout=120)
    finally:
        os.close(write_end)
    return proc.returncode, (proc.stderr or b"").decode()


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["--show-effective-args", "flow.txt"],
                                  ["--validate-only", "flow.txt"], ["--show-recovery-info", "flow.txt"]])
def test_closed_stdout_is_not_a_traceback(tasker, args):
    tasker.write(local_task(0, "true"))
    _code, err = run_with_closed_stdout(tasker, *args)
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_closed_console_keeps_the_run_and_its_exit_code(tasker):
    flow = tasker.write(local_task(0, "echo", "one") + local_task(1, "false") + local_task(2, "echo", "two"))
    code, _err = run_with_closed_stdout(tasker, "-r", str(flow), stderr_too=True)
    assert code == 1
    logs = list((tasker.home / "TASKER" / "log").glob("flow_*.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    assert "Task 1: Exit code: 1" in text and "FAILURE: exit code 1" in text


# ----------------------------------------------------------------- reports that cannot be written


@pytest.mark.parametrize("failing", [False, True])
def test_unwritable_project_summary_warns_and_keeps_exit_code_and_alert(tasker, failing):
    (tasker.home / "TASKER").mkdir()
    (tasker.home / "TASKER" / "project").write_text("a file where the directory should be\n")
    marker = tasker.tmp / "alerted"
    script = tasker.tmp / "alert.sh"
    script.write_text(f"#!/bin/sh\necho \"$TASKER_EXIT_CODE\" > {marker}\n")
    flow = tasker.write(local_task(0, "false" if failing else "true"))
    r = tasker.run(flow, "-r", "-p", "proj", f"--alert-on-failure={script}")
    no_traceback(r)
    assert r.returncode == (1 if failing else 0), r.stdout + r.stderr
    assert "could not write the project summary" in r.stdout
    if failing:
        assert marker.read_text().strip() == "1"
    else:
        assert not marker.exists()
