"""The process runner with real processes: capture, timeouts, process groups, cancel, spilling."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tasker.report.private import pid_alive
from tasker.runners.base import Cancel
from tasker.runners.exectypes import ArgumentsError, ExecConfig, ExecTypeError, ExecTypes, split_arguments
from tasker.runners.process import ProcessRunner, Session


@pytest.fixture
def runner(tmp_path):
    session = Session(str(tmp_path))
    yield ProcessRunner(session)
    session.cleanup()


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_captures_exit_code_and_both_streams(runner):
    r = runner.run(py("import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"), 30, Cancel())
    assert (r.exit_code, r.stdout.text(), r.stderr.text()) == (3, "out\n", "err\n")


def test_crlf_is_read_as_newline(runner):
    r = runner.run(py("import sys; sys.stdout.buffer.write(b'a\\r\\nb\\rc')"), 30, Cancel())
    assert r.stdout.text() == "a\nb\nc"


def test_missing_program_is_reported_not_raised(runner):
    r = runner.run(["/no/such/program"], 30, Cancel())
    assert r.not_found and r.exit_code == 1 and "No such file" in r.stderr.text()


def test_signal_death_is_a_negative_exit_code(runner):
    r = runner.run(py("import os, signal; os.kill(os.getpid(), signal.SIGTERM)"), 30, Cancel())
    assert r.exit_code == -signal.SIGTERM


def test_timeout_kills_the_whole_process_group_d14(runner, tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    code = (
        "import os, signal, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    start = time.monotonic()
    r = runner.run(py(code), 1.0, Cancel())   # the runner honours any timeout it is given
    elapsed = time.monotonic() - start
    assert r.exit_code == 124 and r.timed_out
    assert "Process killed after timeout of 1 seconds" in r.stderr.text()
    assert elapsed < 1.0 + 1.0
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 2
    while pid_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(grandchild), "the grandchild survived the timeout"


def test_timeout_is_resolved_lazily_only_after_5_seconds(runner):
    asked = []

    def timeout():
        asked.append(True)
        return 300

    r = runner.run(py("print('quick')"), timeout, Cancel())
    assert (r.exit_code, asked, r.timeout) == (0, [], 0.0)     # never asked: no timeout to report


def test_a_lazy_timeout_is_asked_once_at_the_earliest_timeout_and_then_honoured(runner, monkeypatch):
    from tasker.runners import process

    monkeypatch.setattr(process, "MIN_TIMEOUT", 0.5)    # the earliest timeout, 5 s in a run
    asked = []

    def timeout():
        asked.append(time.monotonic())
        return 2

    start = time.monotonic()
    r = runner.run(["sleep", "60"], timeout, Cancel())
    elapsed = time.monotonic() - start
    assert (r.exit_code, r.timed_out, r.timeout) == (124, True, 2.0)
    assert "Process killed after timeout of 2 seconds" in r.stderr.text()
    assert len(asked) == 1 and asked[0] - start >= 0.5
    assert elapsed >= 2       # the function's answer, not the earliest timeout, ended the command


def test_cancel_terminates_the_child_group(runner):
    cancel = Cancel()
    threading.Timer(0.3, cancel.set, args=(signal.SIGINT,)).start()
    start = time.monotonic()
    r = runner.run(py("import time; time.sleep(30)"), 60, cancel)
    assert time.monotonic() - start < 5
    assert r.exit_code == -signal.SIGTERM


def test_a_child_that_exits_while_a_grandchild_holds_the_pipe_is_not_waited_for_forever(runner):
    code = "import subprocess, sys; subprocess.Popen(['sleep', '30']); print('parent done')"
    start = time.monotonic()
    r = runner.run(py(code), 60, Cancel())
    assert r.exit_code == 0 and r.stdout.text() == "parent done\n"
    assert time.monotonic() - start < 8   # 5 s of grace for the pipe, then it stops reading


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_large_output_spills_to_a_private_file_named_after_its_stream(runner, tmp_path, stream):
    r = runner.run(py(f"import sys; sys.{stream}.write('y' * 3_000_000 + 'END')"), 60, Cancel())
    out, other = (r.stdout, r.stderr) if stream == "stdout" else (r.stderr, r.stdout)
    assert out.spilled and out.size == 3_000_003 and not other.spilled and other.text() == ""
    assert os.path.basename(out.path).startswith(f"tasker_{stream}_")
    assert stat.S_IMODE(os.stat(out.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(out.path)).st_mode) == 0o700
    assert out.contains("yEND") and len(out.for_substitution()) == 102_400
    assert out.head(5) == "yyyyy"


def test_a_background_process_that_a_command_leaves_outlives_the_command(runner):
    r = runner.run(["sh", "-c", "sleep 120 >/dev/null 2>&1 & echo $!"], 60, Cancel())
    background = int(r.stdout.text())
    with left_running(background):
        assert r.exit_code == 0 and not r.timed_out
        assert pid_alive(background)          # only a timeout or a cancel ends the command's group


def test_when_spilling_the_output_fails_the_child_is_killed_and_reaped_before_the_error_is_raised(monkeypatch):
    from tasker.runners import process

    class FullDisk:
        def spill_file(self, name):
            raise OSError(errno.ENOSPC, "No space left on device")

    started = []

    def spawn(*args, **kwargs):
        started.append(real_spawn(*args, **kwargs))
        return started[-1]

    real_spawn = process.spawn
    monkeypatch.setattr(process, "spawn", spawn)
    code = "import sys, time; sys.stdout.write('y' * 3_000_000); sys.stdout.flush(); time.sleep(120)"
    with pytest.raises(OSError, match="No space left"):
        ProcessRunner(FullDisk()).run(py(code), 60, Cancel())
    [child] = started
    assert child.returncode == -signal.SIGKILL and not pid_alive(child.pid)


def test_waiting_for_pipes_held_open_after_the_exit_does_not_spin(runner):
    # The child exits at once; the background sleep keeps its pipes open for 3 s.
    cpu = time.process_time()
    r = runner.run(["sh", "-c", "sleep 3 & exit 0"], 60, Cancel())
    assert r.exit_code == 0
    assert time.process_time() - cpu < 1.0    # a loop that spins would use about the 3 s it waits


def test_small_output_stays_in_memory(runner):
    r = runner.run(py("print('x' * 1000)"), 60, Cancel())
    assert not r.stdout.spilled


def test_session_cleanup_removes_spill_files(tmp_path):
    session = Session(str(tmp_path))
    path, fh = session.spill_file("stdout")
    fh.close()
    assert os.path.exists(path)
    session.cleanup()
    assert not os.path.exists(path) and not os.listdir(tmp_path)


# ----------------------------------------------------------------- exec types (docs/exec-types.md)


def exec_types(data: dict | None = None, **kw) -> ExecTypes:
    types = ExecTypes(environ=kw.pop("environ", {"HOME": "/home/u"}), **kw)
    types.use_config(ExecConfig("cfg.yaml", data) if data else ExecConfig())
    return types


CONFIG = {
    "platforms": {"linux": {
        "default_exec_type": "pbrun", "default_timeout": 300,
        "pbrun": {"binary": "pbrun", "command_template": ["{binary}", "-n", "-h", "{hostname}", "{command}",
                                                          "{arguments_split}"], "timeout": 60},
        "shell": {"binary": "/bin/bash", "command_template": ["{binary}", "-c", "{command} {arguments}"]},
        "broken": {"binary": "x", "command_template": ["{binary}", "{nope}"]},
    }},
    "aliases": {"bash": "shell"},
}


def test_local_argv_is_command_plus_shell_like_words():
    t = exec_types()
    assert t.argv("local", "h", "echo", '$HOME "a  b" \'c\' d\\ e #f') == ["echo", "/home/u", "a  b", "c", "d e", "#f"]


def test_local_command_is_not_split():
    assert exec_types().argv("local", "h", "ls -d", "") == ["ls -d"]


def test_unbalanced_quote_is_an_arguments_error():
    with pytest.raises(ArgumentsError):
        split_arguments("it's")


def test_template_types_fill_placeholders():
    t = exec_types(CONFIG)
    assert t.argv("pbrun", "web1", "deploy", "--version 2.0") == ["pbrun", "-n", "-h", "web1", "deploy", "--version",
                                                                  "2.0"]
    assert t.argv(t.canonical("BASH"), "h", "echo", "$HOME | tr a b") == ["/bin/bash", "-c", "echo /home/u | tr a b"]


def test_unknown_placeholder_and_unknown_type_are_exec_type_errors():
    t = exec_types(CONFIG)
    with pytest.raises(ExecTypeError, match="unknown placeholder"):
        t.argv("broken", "h", "c", "")
    with pytest.raises(ExecTypeError, match="not configured"):
        t.argv("telnet", "h", "c", "")


def test_exec_type_resolution_order():
    t = exec_types(CONFIG, cli_type="shell", environ={"TASK_EXECUTOR_TYPE": "local"})
    assert t.requested("p7s") == "p7s"
    assert t.requested(None) == "shell"
    assert exec_types(CONFIG, environ={"TASK_EXECUTOR_TYPE": "local"}).requested(None) == "local"
    assert exec_types(CONFIG).requested(None) == "pbrun"
    assert exec_types().requested(None) == "local"


def test_timeout_chain_and_clamp():
    t = exec_types(CONFIG)
    assert t.timeout("30", "pbrun") == 30
    assert t.timeout(None, "pbrun") == 60
    assert t.timeout(None, "local") == 300
    assert t.timeout("2", "local") == 5
    assert t.timeout("5000", "local") == 1000
    assert exec_types(CONFIG, cli_timeout=45).timeout(None, "pbrun") == 45
    assert exec_types(environ={"TASK_EXECUTOR_TIMEOUT": "77"}).timeout(None, "local") == 77


# ----------------------------------------------------------------- {command_line}: one string for a remote shell

SSH_LIKE = {"platforms": {"linux": {
    "remote": {"binary": "ssh", "command_template": ["{binary}", "--", "{hostname}", "{command_line}"]},
    "pbrun": {"binary": "pbrun", "command_template": ["{binary}", "-h", "{hostname}", "{command} {arguments}"]},
}}}

TRICKY = """"a  b" "it's" 'say "hi"' $UNSET_FOR_TEST cost:$5 "x; y" a;b '*' ~ "a|b" 'a>b' "" {{x}} $HOME"""


def test_command_line_is_one_argv_element_that_a_posix_shell_parses_back_into_the_words():
    t = exec_types(SSH_LIKE)
    argv = t.argv("remote", "web1", "printf", '"<%s>\\n" ' + TRICKY)
    assert argv[:3] == ["ssh", "--", "web1"] and len(argv) == 4
    # /bin/sh stands in for the remote login shell: it must run what exec=local would run.
    out = subprocess.run(["/bin/sh", "-c", argv[3]], capture_output=True, text=True, check=True).stdout
    words = t.argv("local", "web1", "printf", TRICKY)[1:]
    assert words == ["a  b", "it's", 'say "hi"', "$UNSET_FOR_TEST", "cost:$5", "x; y", "a;b", "*", "~", "a|b",
                     "a>b", "", "{{x}}", "/home/u"]
    assert out.splitlines() == [f"<{w}>" for w in words]


def test_command_line_quotes_the_command_as_one_word():
    t = exec_types(SSH_LIKE)
    assert t.argv("remote", "h", "ls -d", "")[3] == "'ls -d'"
    assert t.argv("remote", "h", "uname", "")[3] == "uname"


def test_command_line_is_built_only_when_a_template_uses_it():
    t = exec_types(SSH_LIKE)
    assert t.argv("pbrun", "h", "echo", "it's") == ["pbrun", "-h", "h", "echo it's"]
    with pytest.raises(ArgumentsError):
        t.argv("remote", "h", "echo", "it's")


def test_shipped_ssh_type_is_non_interactive_and_passes_one_quoted_string():
    from tasker.resources import shipped_config_path
    from tasker.runners.exectypes import load_config

    t = exec_types()
    t.use_config(load_config(shipped_config_path()))
    argv = t.argv("ssh", "web1", "echo", "'a  b' $UNSET_FOR_TEST")
    assert argv[0] == "ssh" and "-T" in argv
    assert "-n" not in argv      # stdin is a pipe tasker holds open (stop_remote), never tasker's own
    assert "BatchMode=yes" in argv and any(a.startswith("ConnectTimeout=") for a in argv)
    assert argv[-3:] == ["--", "web1", "echo 'a  b' '$UNSET_FOR_TEST'"]
    assert t.config.types["ssh"].validation_test["expected_output"] == "OK"


# ----------------------------------------------------------------- argv size (D26)


def test_argv_within_the_limits_passes():
    from tasker.runners.limits import too_long

    assert too_long(["echo", "x" * 100_000]) is None
    assert too_long(["echo", "x" * 131_071], total_limit=10_000_000) is None


def test_one_argument_over_the_per_string_limit_is_named():
    from tasker.runners.limits import ARG_STRLEN, too_long

    if ARG_STRLEN is None:
        pytest.skip("the per-argument limit is Linux's")
    assert too_long(["echo", "a", "x" * 131_072], total_limit=10_000_000) == ("argument 2", 131_072, 131_072)
    assert too_long(["é" * 70_000]) == ("the command", 140_000, 131_072)        # bytes, not characters


def test_the_whole_argv_over_arg_max_is_named():
    from tasker.runners.limits import too_long

    what, size, limit = too_long(["echo"] + ["x" * 60_000] * 3, total_limit=150_000)
    assert what == "the command line with the environment" and size > 180_000 and limit == 150_000


# ----------------------------------------------------------------- results of commands that never start


def test_a_missing_program_result_names_it_and_keeps_stdout_empty(runner):
    before = time.time()
    r = runner.run(["/no/such/program"], 30, Cancel())
    text = "[Errno 2] No such file or directory: '/no/such/program'"
    assert (r.exit_code, r.not_found, r.error, r.stderr.text(), r.stdout.text()) == (1, True, text, text, "")
    assert before <= r.start <= r.end <= time.time()


def test_a_refused_command_line_result(runner):
    before = time.time()
    r = runner.run(["echo", "a\0b"], 30, Cancel())
    text = "cannot start the command: argument 1 contains a NUL byte, which a process cannot receive"
    assert (r.exit_code, r.not_found, r.error, r.stderr.text(), r.stdout.text()) == (1, False, text, text, "")
    assert before <= r.start <= r.end <= time.time()


def test_an_environment_the_os_refuses_past_the_nul_check_is_a_refused_command():
    before = time.time()
    # "=" in a name passes the NUL and encoding checks; posix_spawn then refuses it with a ValueError
    r = ProcessRunner(env={b"A=B": b"1", b"PATH": os.environb[b"PATH"]}).run(["true"], 30, Cancel())
    text = "cannot start the command: illegal environment variable name"
    assert (r.exit_code, r.not_found, r.error, r.stderr.text()) == (1, False, text, text)
    assert before <= r.start <= r.end <= time.time()


@pytest.mark.parametrize("argv,env,why", [
    ([], None, "the command is empty"),
    ([""], None, "the command is empty"),
    (["ec\0ho"], None, "the command contains a NUL byte, which a process cannot receive"),
    (["echo", "\ud800"], None, "argument 1 contains text that cannot be encoded for the operating system"),
    (["true"], {b"A": b"x\0y"}, "environment variable 'A' contains a NUL byte, which a process cannot receive"),
])
def test_what_the_os_cannot_take_is_named_before_anything_starts(argv, env, why):
    if env is not None:
        env = {**env, b"PATH": os.environb[b"PATH"]}
    r = ProcessRunner(env=env).run(argv, 30, Cancel())
    assert (r.exit_code, r.error) == (1, f"cannot start the command: {why}")


@pytest.mark.parametrize("relay", [False, True])
def test_the_runners_environment_is_the_childs_whichever_way_it_starts(relay):
    env = {b"ONLY_HERE": b"mine", b"PATH": os.environb[b"PATH"]}
    kw = {"messages_fd": 2} if relay else {}
    r = ProcessRunner(env=env).run(["sh", "-c", "echo ${ONLY_HERE-unset} ${HOME-unset}"], 30, Cancel(), **kw)
    assert (r.exit_code, r.stdout.text()) == (0, "mine unset\n")


def test_the_runner_tells_its_guard_when_each_command_starts_and_ends():
    class Guard:
        def __init__(self):
            self.calls = []

        def started(self, pid):
            self.calls.append(("started", pid))

        def finished(self, pid):
            self.calls.append(("finished", pid))

    guard = Guard()
    r = ProcessRunner(guard=guard).run(["sh", "-c", "echo $$"], 30, Cancel())
    pid = int(r.stdout.text())
    assert guard.calls == [("started", pid), ("finished", pid)]


def test_a_finished_command_reports_when_it_started_and_ended(runner):
    before = time.time()
    r = runner.run(["sleep", "0.2"], 30, Cancel())
    assert before <= r.start < r.end <= time.time() and r.duration >= 0.15


def test_a_spawn_error_without_a_file_name_is_its_plain_text(runner, monkeypatch):
    from tasker.runners import process

    def refuse(*_args, **_kw):
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(process, "spawn", refuse)
    r = runner.run(["true"], 30, Cancel())
    assert (r.exit_code, r.not_found, r.error) == (1, False, "[Errno 11] Resource temporarily unavailable")
    assert r.stderr.text() == r.error and r.stdout.text() == ""


# ----------------------------------------------------------------- a relaying client (srun): messages_fd


def test_a_relaying_client_has_its_messages_on_fd_2_and_the_captured_stderr_on_fd_3(runner):
    r_fd, w_fd = os.pipe()
    try:
        r = runner.run(py("import os; os.write(1, b'out'); os.write(2, b'msg'); os.write(3, b'err')"), 30, Cancel(),
                       messages_fd=w_fd)
        os.close(w_fd)
        w_fd = None
        messages = os.read(r_fd, 100)
    finally:
        os.close(r_fd)
        if w_fd is not None:
            os.close(w_fd)
    assert (r.exit_code, r.stdout.text(), r.stderr.text(), messages) == (0, "out", "err", b"msg")


def test_a_relaying_client_whose_messages_go_to_fd_1_keeps_them_apart_from_its_stdout(runner, capfd):
    # fd 1 is also a target of the child's file actions: it must be moved out of the way first
    code = "import os; os.write(1, b'out'); os.write(2, b'msg'); os.write(3, b'err')"
    r = runner.run(py(code), 30, Cancel(), messages_fd=1)
    assert (r.exit_code, r.stdout.text(), r.stderr.text()) == (0, "out", "err")
    assert capfd.readouterr().out == "msg"
    os.fstat(1)     # tasker's own stdout is still open


def test_without_posix_spawn_a_relaying_client_cannot_start_and_others_still_run(runner, monkeypatch):
    from tasker.runners import process

    monkeypatch.setattr(process, "_USE_POSIX_SPAWN", False)
    r = runner.run(["true"], 30, Cancel(), messages_fd=2)
    assert r.exit_code == 1 and not r.not_found
    assert r.error == f"[Errno {errno.ENOSYS}] starting a program with its stderr on fd 3 needs posix_spawn (Linux)"
    r = runner.run(py("import sys; print('out'); print('err', file=sys.stderr); sys.exit(4)"), 30, Cancel())
    assert (r.exit_code, r.stdout.text(), r.stderr.text()) == (4, "out\n", "err\n")
    assert runner.run(["/no/such/program"], 30, Cancel()).not_found


def test_spawn_gives_the_child_a_stdin_pipe_on_its_fd_0():
    from tasker.runners.process import spawn

    r_fd, w_fd = os.pipe()
    os.write(w_fd, b"piped")
    os.close(w_fd)
    try:
        child = spawn(["sh", "-c", "cat; exit 3"], None, stdin=r_fd)
    finally:
        os.close(r_fd)
    try:
        out = b"".join(iter(lambda: os.read(child.out_fd, 100), b""))
    finally:
        os.close(child.out_fd)
        os.close(child.err_fd)
    assert (child.wait(), out) == (3, b"piped")


def test_a_read_error_on_a_pipe_counts_as_its_end(monkeypatch):
    from tasker.runners import process

    def fail(fd: int, size: int) -> bytes:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(process, "os", _Overlay(os, read=fail))
    assert process._read(99) == b""


def test_spawn_with_stdin_on_a_low_descriptor_falls_back_to_popen():
    from tasker.runners.process import spawn

    r_fd, w_fd = os.pipe()
    saved = os.dup(0)
    try:
        os.write(w_fd, b"piped")
        os.close(w_fd)
        os.dup2(r_fd, 0)
        child = spawn(["sh", "-c", "cat; echo e >&2; exit 3"], None, stdin=0)
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(r_fd)
    try:
        out = b"".join(iter(lambda: os.read(child.out_fd, 100), b""))
        err = b"".join(iter(lambda: os.read(child.err_fd, 100), b""))
    finally:
        os.close(child.out_fd)
        os.close(child.err_fd)
    assert (child.wait(), out, err) == (3, b"piped", b"e\n")


def test_a_reaped_child_is_never_signalled_again():
    from tasker.runners.process import spawn

    child = spawn(["sleep", "30"], None)
    os.close(child.out_fd)
    os.close(child.err_fd)
    assert child.poll() is None
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL and child.poll() == -signal.SIGKILL
    child.send_signal(signal.SIGKILL)   # its pid may belong to another process by now: nothing is sent


# ----------------------------------------------------------------- stop hooks and cancel escalation

def cancel_when(path, cancel: Cancel) -> None:
    """Set ``cancel`` once ``path`` exists (the child has set itself up)."""
    def wait() -> None:
        deadline = time.monotonic() + 60
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.02)
        cancel.set(signal.SIGINT)

    threading.Thread(target=wait, daemon=True).start()


def trap_term(ready) -> list[str]:
    """A client that reports a SIGTERM on its stdout instead of ending."""
    return ["sh", "-c", f"trap 'echo TERM' TERM; echo ready; touch '{ready}'; sleep 60 & wait; sleep 60 & wait"]


def test_on_timeout_the_stop_hook_runs_once_and_the_client_is_killed_after_its_grace(runner, tmp_path):
    cancel = Cancel()
    calls = []

    def on_stop(timed_out):
        calls.append(timed_out)
        cancel.set(signal.SIGINT)    # a cancel after the hook neither calls it again nor SIGTERMs the client

    r = runner.run(trap_term(tmp_path / "ready"), 3.0, cancel, on_stop=on_stop, stop_grace=0.5)
    assert calls == [True]
    assert (r.exit_code, r.timed_out, r.stdout.text()) == (124, True, "ready\n")


def test_on_cancel_the_stop_hook_is_told_it_was_no_timeout(runner, tmp_path):
    cancel = Cancel()
    calls = []
    cancel_when(tmp_path / "ready", cancel)
    r = runner.run(trap_term(tmp_path / "ready"), 60, cancel, on_stop=calls.append, stop_grace=0.5)
    assert calls == [False]
    assert (r.exit_code, r.timed_out, r.stdout.text()) == (-signal.SIGKILL, False, "ready\n")


def test_a_timeout_passing_after_the_command_ended_while_a_background_process_holds_its_output_is_none(
        runner, monkeypatch):
    from tasker.runners import process

    monkeypatch.setattr(process, "MIN_TIMEOUT", 0.5)
    monkeypatch.setattr(process, "EXIT_GRACE", 2.0)
    # the command ends at 0.7 s; its background sleep keeps stdout open past the 1 s timeout
    r = runner.run(["sh", "-c", "sleep 30 & echo $!; sleep 0.7; echo done"], lambda: 1, Cancel())
    background = int(r.stdout.text().split()[0])
    with left_running(background):
        assert (r.exit_code, r.timed_out, r.stdout.text().split()[1:], r.stderr.text()) == (0, False, ["done"], "")
        assert pid_alive(background)          # not the command's timeout: nothing was killed


def test_a_stop_kills_a_process_left_holding_the_output_that_ignores_sigterm_though_the_command_ended(
        runner, tmp_path):
    cancel = Cancel()
    cancel_when(tmp_path / "ready", cancel)
    script = f"(trap '' TERM; exec sleep 30) & echo $!; touch '{tmp_path / 'ready'}'; wait"
    r = runner.run(["sh", "-c", script], 120, cancel)
    stubborn = int(r.stdout.text())
    with left_running(stubborn):
        assert r.exit_code == -signal.SIGTERM            # the command itself ended on the SIGTERM
        deadline = time.monotonic() + 30
        while pid_alive(stubborn) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(stubborn)                   # the SIGKILL after the grace reached it


def test_a_cancelled_child_gets_its_grace_after_sigterm_to_end_by_itself(runner, tmp_path):
    cancel = Cancel()
    cancel_when(tmp_path / "ready", cancel)
    r = runner.run(["sh", "-c", f"trap 'echo bye; exit 3' TERM; touch '{tmp_path / 'ready'}'; sleep 60 & wait"],
                   120, cancel)
    assert (r.exit_code, r.stdout.text(), r.timed_out) == (3, "bye\n", False)


def test_output_that_a_background_process_writes_soon_after_the_command_ends_is_kept(runner):
    r = runner.run(["sh", "-c", "(sleep 1.5; echo late) & echo early"], 60, Cancel())
    assert (r.exit_code, r.stdout.text()) == (0, "early\nlate\n")


def test_after_a_timeout_kill_a_pipe_held_outside_the_group_is_read_one_second_more_not_five(runner, monkeypatch):
    from tasker.runners import process

    monkeypatch.setattr(process, "MIN_TIMEOUT", 0.5)
    start = time.monotonic()
    r = runner.run(["sh", "-c", "setsid sleep 30 & echo $!; sleep 60"], lambda: 1, Cancel())
    elapsed = time.monotonic() - start
    outside = int(r.stdout.text())          # setsid ran sleep in a session of its own: the kill missed it
    with left_running(outside):
        assert (r.exit_code, r.timed_out) == (124, True)
        assert elapsed < 5                  # about 1 s to the timeout and 1 s of reading; 5 s of reading is wrong


def test_a_child_that_ignores_sigterm_on_cancel_gets_sigkill(runner, tmp_path):
    cancel = Cancel()
    cancel_when(tmp_path / "ready", cancel)
    start = time.monotonic()
    r = runner.run(["sh", "-c", f"trap '' TERM; touch '{tmp_path / 'ready'}'; sleep 60"], 120, cancel)
    assert r.exit_code == -signal.SIGKILL and not r.timed_out
    assert time.monotonic() - start < 60      # the escalation, not the 120 s timeout, ended it


# ----------------------------------------------------------------- the session directory


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_session_removed_behind_its_back_cleans_up_quietly_and_the_next_spill_makes_a_new_one(tmp_path):
    session = Session(str(tmp_path))
    first, fh = session.spill_file("stdout")
    fh.close()
    shutil.rmtree(os.path.dirname(first))
    session.cleanup()
    assert session.path is None
    second, fh = session.spill_file("stdout")
    fh.close()
    assert os.path.dirname(os.path.dirname(second)) == str(tmp_path) and os.path.exists(second)
    session.cleanup()
    assert not os.path.exists(os.path.dirname(second))


def test_alive_is_true_for_a_running_process_or_one_not_ours_to_signal_and_false_for_a_gone_one(monkeypatch):
    from tasker.runners import process

    assert process._alive(os.getpid()) and not process._alive(dead_pid())

    def refuse(pid: int, sig: int) -> None:
        assert sig == 0
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(process, "os", _Overlay(os, kill=refuse))
    assert process._alive(1)          # another user's process is alive too


def test_the_first_spill_sweeps_stale_sessions_of_dead_runs_only(tmp_path, monkeypatch):
    from tasker.runners import process

    dead = dead_pid()
    names = {
        "other_1": "not a session", f"tasker_session_{dead}": "too few parts", "tasker_session_x_1": "no pid",
        "tasker_session_999999999_gone": None, f"tasker_session_{os.getpid()}_live": "running",
        "tasker_session_1_init": "running", f"tasker_session_{dead}_abc": "stale",
    }
    for name, what in names.items():
        if what is not None:
            (tmp_path / name).mkdir()
            (tmp_path / name / "tasker_stdout_1").write_text("x")
    real_listdir = os.listdir
    # the stale one comes last: no earlier entry may end the sweep
    monkeypatch.setattr(process.os, "listdir",
                        lambda path: list(names) if path == str(tmp_path) else real_listdir(path))
    session = Session(str(tmp_path))
    path, fh = session.spill_file("stdout")
    fh.close()
    monkeypatch.undo()
    left = set(os.listdir(tmp_path))
    made = os.path.basename(os.path.dirname(path))
    assert left == {name for name, what in names.items() if what not in (None, "stale")} | {made}
    assert made.startswith(f"tasker_session_{os.getpid()}_") and os.path.dirname(os.path.dirname(path)) == str(tmp_path)
    session.cleanup()
    assert made not in os.listdir(tmp_path)


def test_sweep_without_a_base_looks_in_the_temporary_directory(tmp_path, monkeypatch):
    from tasker.runners.process import sweep_stale_sessions

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f"tasker_session_{dead_pid()}_abc"
    stale.mkdir()
    sweep_stale_sessions()
    assert not stale.exists()


def test_a_spill_file_name_that_is_taken_is_drawn_again(tmp_path, monkeypatch):
    from tasker.runners import process

    draws = iter([b"\0" * 4, b"\0" * 4, b"\1" * 4])
    session = Session(str(tmp_path))
    monkeypatch.setattr(process.os, "urandom", lambda n: next(draws))
    first, fh1 = session.spill_file("stdout")
    second, fh2 = session.spill_file("stdout")
    monkeypatch.undo()
    fh1.close()
    fh2.close()
    assert os.path.basename(first) == "tasker_stdout_00000000"
    assert os.path.basename(second) == "tasker_stdout_01010101"
    session.cleanup()


# ----------------------------------------------------------------- the cancel token and the system clock


def test_cancel_keeps_the_first_signal_and_wakes_pollers():
    import select

    cancel = Cancel()
    try:
        assert not cancel.is_set and cancel.signum == 0
        cancel.set(signal.SIGTERM)
        cancel.set(signal.SIGINT)
        assert cancel.is_set and cancel.signum == signal.SIGTERM
        assert select.select([cancel.fd], [], [], 10)[0] == [cancel.fd]
    finally:
        cancel.close()
    cancel.close()                      # closing twice is harmless


def test_a_signal_after_the_cancel_token_is_closed_is_harmless():
    cancel = Cancel()
    cancel.close()
    cancel.set(signal.SIGINT)
    assert cancel.is_set


@pytest.mark.parametrize("seconds", [0, -1, float("nan")])
def test_a_sleep_of_nothing_returns_at_once_even_when_cancelled(seconds):
    from tasker.runners.base import SystemClock

    cancel = Cancel()
    cancel.set(signal.SIGINT)
    try:
        assert SystemClock().sleep(seconds) is True
        assert SystemClock().sleep(seconds, cancel) is True
    finally:
        cancel.close()


@pytest.mark.parametrize("with_cancel", [False, True])
def test_a_sleep_lasts_at_least_its_time_and_reports_it_was_not_cut_short(with_cancel):
    from tasker.runners.base import SystemClock

    cancel = Cancel() if with_cancel else None
    start = time.monotonic()
    try:
        assert SystemClock().sleep(0.3, cancel) is True
    finally:
        if cancel is not None:
            cancel.close()
    assert time.monotonic() - start >= 0.3


def test_a_sleep_with_the_cancel_already_set_is_cut_short_at_once():
    from tasker.runners.base import SystemClock

    cancel = Cancel()
    cancel.set(signal.SIGINT)
    try:
        assert SystemClock().sleep(0.5, cancel) is False
    finally:
        cancel.close()


def test_wait_on_returns_after_its_timeout():
    from tasker.runners.base import SystemClock

    condition = threading.Condition()
    with condition:
        SystemClock().wait_on(condition, 0.05)


# ----------------------------------------------------------------- the system's argv limits


@pytest.mark.parametrize("reported,expected", [(2_097_152, 2_097_152), (1, 1), (0, None), (-1, None)])
def test_arg_max_is_the_systems_positive_value(monkeypatch, reported, expected):
    from tasker.runners import limits

    if sys.platform == "linux":
        assert limits.arg_max() == os.sysconf("SC_ARG_MAX") > 0
    monkeypatch.setattr(limits.os, "sysconf", lambda name: reported if name == "SC_ARG_MAX" else 1 / 0)
    assert limits.arg_max() == expected


def test_environment_size_counts_each_string_its_nul_and_pointer_plus_the_final_pointer(monkeypatch):
    from tasker.runners import limits

    pointer = limits._POINTER
    monkeypatch.setattr(limits, "_environment_size", None)
    monkeypatch.setattr(limits.os, "environb", {b"A": b"bc", b"LONGER": b""})
    assert limits.environment_size() == (1 + 2 + 2 + pointer) + (6 + 0 + 2 + pointer) + pointer
    monkeypatch.setattr(limits.os, "environb", {})
    assert limits.environment_size() == (1 + 2 + 2 + pointer) + (6 + 0 + 2 + pointer) + pointer   # taken once


# ----------------------------------------------------------------- guard: running groups die with tasker


def session_sleeper() -> subprocess.Popen:
    return subprocess.Popen(["sleep", "60"], start_new_session=True)


@contextlib.contextmanager
def left_running(pid: int):
    """A process a command left behind, SIGKILLed when the test is done with it."""
    try:
        yield pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def reap(*procs: subprocess.Popen) -> None:
    """Kill and wait for every process a test started (those already gone included)."""
    for proc in procs:
        proc.kill()
        proc.wait()


def wait_dead(proc: subprocess.Popen) -> int | None:
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        reap(proc)
        return None


@pytest.mark.skipif(sys.platform != "linux", reason="needs /proc")
def test_start_time_is_the_process_start_in_clock_ticks_since_boot():
    from tasker.runners.guard import start_time

    proc = session_sleeper()
    try:
        ticks = start_time(proc.pid)
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        assert isinstance(ticks, int) and abs(ticks / os.sysconf("SC_CLK_TCK") - uptime) < 10
        assert start_time(proc.pid) == ticks and start_time(1) <= ticks
    finally:
        reap(proc)
    assert start_time(proc.pid) is None and start_time(dead_pid()) is None


@pytest.mark.skipif(sys.platform != "linux", reason="needs /proc")
def test_kill_group_kills_only_a_group_whose_leader_is_still_the_same_process():
    from tasker.runners.guard import kill_group, start_time

    proc = session_sleeper()
    try:
        start = start_time(proc.pid)
        assert kill_group(proc.pid, start + 1) is False      # the pid now belongs to a later process
        assert kill_group(0, None) is False and kill_group(1, None) is False and kill_group(-5, None) is False
        assert proc.poll() is None
        assert kill_group(proc.pid, start) is True
        assert wait_dead(proc) == -signal.SIGKILL
        assert kill_group(proc.pid, start) is False           # gone
    finally:
        reap(proc)
    proc = session_sleeper()
    try:
        assert kill_group(proc.pid, None) is True             # start unknown: the journal said 0
        assert wait_dead(proc) == -signal.SIGKILL
    finally:
        reap(proc)


@pytest.mark.skipif(sys.platform != "linux", reason="needs /proc")
def test_group_alive_sees_members_after_the_leader_is_gone_and_not_zombies():
    from tasker.runners.guard import group_alive

    proc = subprocess.Popen(["sh", "-c", "sleep 60 & echo $!"], start_new_session=True, stdout=subprocess.PIPE)
    member = int(proc.stdout.readline())
    proc.stdout.close()
    try:
        assert proc.wait(timeout=30) == 0           # the leader is gone, its member still runs
        assert group_alive(proc.pid) and not group_alive(dead_pid())
        os.killpg(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not group_alive(proc.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
    zombie = session_sleeper()
    try:
        os.kill(zombie.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while group_alive(zombie.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not group_alive(zombie.pid)          # killed but not yet reaped: a zombie only
    finally:
        zombie.wait()


@pytest.mark.skipif(sys.platform != "linux", reason="needs /proc")
def test_the_journal_lists_started_groups_and_kill_journal_stops_what_still_runs(tmp_path):
    from tasker.runners.guard import Guard, kill_journal, start_time

    journal = tmp_path / "state.procs"
    guard = Guard()
    guard.open_journal(str(journal))
    assert stat.S_IMODE(os.stat(journal).st_mode) == 0o600
    running, finished = session_sleeper(), session_sleeper()
    try:
        guard.started(running.pid)
        guard.started(finished.pid)
        guard.finished(finished.pid)        # the journal keeps it: a later run checks whether it still runs
        lines = journal.read_text().splitlines()
        assert lines == [f"+{running.pid} {start_time(running.pid)}", f"+{finished.pid} {start_time(finished.pid)}"]
        reap(finished)
        with open(journal, "a") as fh:
            fh.write(f"+{dead_pid()} 0\nrubbish\n+x y\n-z\n+{os.getpid()} 1\n+12")
        assert kill_journal(str(journal)) == 1
        assert wait_dead(running) == -signal.SIGKILL
        assert os.getpid() > 0      # the line with our own pid but another start time was left alone
    finally:
        reap(running)
    guard.close(str(journal))
    assert not journal.exists() and guard.journal is None
    assert kill_journal(str(journal)) == 0


@pytest.mark.skipif(sys.platform != "linux", reason="needs /proc")
def test_kill_journal_honours_a_finished_line_and_waits_until_the_group_is_gone(tmp_path):
    from tasker.runners.guard import group_alive, kill_journal, start_time

    done, member_group = session_sleeper(), subprocess.Popen(
        ["sh", "-c", "trap '' TERM; sleep 60 & wait"], start_new_session=True)
    journal = tmp_path / "state.procs"
    try:
        journal.write_text(f"+{done.pid} {start_time(done.pid)}\n-{done.pid}\n"
                           f"+{member_group.pid} {start_time(member_group.pid)}\n")
        assert kill_journal(str(journal), wait=30) == 1
        assert not group_alive(member_group.pid)
        assert done.poll() is None
    finally:
        reap(done, member_group)


def test_the_watchdog_reader_kills_the_groups_still_listed_at_end_of_file():
    from tasker.runners.guard import _serve, start_time

    killed, reused, ended, partial = (session_sleeper() for _ in range(4))
    r, w = os.pipe()
    try:
        first = f"+{killed.pid} {start_time(killed.pid)}\n"
        os.write(w, first[:4].encode())                 # a line may arrive in pieces
        os.write(w, (first[4:] + f"+{reused.pid} {start_time(reused.pid) + 1}\n+{ended.pid} 0\nnonsense\n"
                     f"-{ended.pid}\n+{partial.pid} 0").encode())   # an unfinished last line counts for nothing
        os.close(w)
        w = None
        _serve(r)
        assert wait_dead(killed) == -signal.SIGKILL
        assert (reused.poll(), ended.poll(), partial.poll()) == (None, None, None)
    finally:
        os.close(r)
        if w is not None:
            os.close(w)
        reap(killed, reused, ended, partial)


@pytest.mark.skipif(sys.platform != "linux", reason="the watchdog is Linux's")
def test_the_watchdog_kills_started_groups_when_tasker_goes_away_and_not_after_a_normal_end():
    from tasker.runners.guard import Guard

    guard = Guard()
    guard.start_watchdog()
    orphan, done = session_sleeper(), session_sleeper()
    try:
        watchdog = guard.watchdog
        assert watchdog and guard.pipe is not None
        guard.start_watchdog()                          # once per run
        assert guard.watchdog == watchdog
        guard.started(orphan.pid)
        guard.started(done.pid)
        guard.finished(done.pid)
        guard.close()                                   # a normal end: the watchdog exits
        assert guard.pipe is None and guard.watchdog is None
        with pytest.raises(ChildProcessError):
            os.waitpid(watchdog, os.WNOHANG)            # and close() has reaped it: no zombie stays
        assert wait_dead(orphan) == -signal.SIGKILL     # still listed: as if tasker had died
        assert done.poll() is None
    finally:
        reap(orphan, done)


@pytest.mark.skipif(sys.platform != "linux", reason="the watchdog is Linux's")
def test_the_watchdog_holds_only_its_pipe_and_dev_null_in_a_session_of_its_own_deaf_to_int_and_term():
    from tasker.runners.guard import Guard

    guard = Guard()
    stdin, (r, w) = os.dup(0), os.pipe()
    os.dup2(r, 0)                       # a console pipe on stdin, as under a shell pipeline
    try:
        guard.start_watchdog()
    finally:
        os.dup2(stdin, 0)
        for fd in (stdin, r, w):
            os.close(fd)
    try:
        pid, proc = guard.watchdog, Path(f"/proc/{guard.watchdog}")
        deadline = time.monotonic() + 30
        # setsid is the watchdog's last step before it reads: once it leads a session, it is set up
        while int(Path(proc, "stat").read_bytes().rsplit(b")", 1)[1].split()[3]) != pid:
            assert time.monotonic() < deadline, "the watchdog never started a session of its own"
            time.sleep(0.01)
        fds = {int(fd): os.readlink(proc / "fd" / fd) for fd in os.listdir(proc / "fd")}
        pipe = os.readlink(f"/proc/self/fd/{guard.pipe}")
        # a console pipe or another file held open would keep a reader of tasker's output waiting
        assert sorted(fds.values()) == ["/dev/null"] * 3 + [pipe] and {0, 1, 2} <= set(fds)
        assert [fds[fd] for fd in (0, 1, 2)] == ["/dev/null"] * 3
        ignored = int(next(x for x in Path(proc, "status").read_text().splitlines()
                           if x.startswith("SigIgn:")).split()[1], 16)
        assert ignored >> (signal.SIGINT - 1) & 1 and ignored >> (signal.SIGTERM - 1) & 1
    finally:
        guard.close()


def test_close_goes_on_when_the_journal_was_removed_meanwhile(tmp_path):
    from tasker.runners.guard import Guard

    guard, journal = Guard(), tmp_path / "state.procs"
    guard.open_journal(str(journal))
    journal.unlink()
    guard.close(str(journal))
    assert guard.journal is None


def test_close_waits_about_a_second_for_a_watchdog_that_does_not_exit_then_goes_on():
    from tasker.runners.guard import Guard

    stuck = subprocess.Popen(["sleep", "60"])
    guard = Guard()
    guard.watchdog = stuck.pid
    try:
        began = time.monotonic()
        guard.close()
        # the bound is loose on purpose (a loaded machine); what it rules out is waiting for the child
        assert time.monotonic() - began < 20 and guard.watchdog is None and stuck.poll() is None
    finally:
        reap(stuck)


def test_argv_size_counts_each_string_its_nul_and_pointer_plus_the_environment():
    from tasker.runners.limits import _POINTER, environment_size, too_long

    argv = ["x" * 20_000, "y" * 30_000]
    total = 50_000 + 2 * (1 + _POINTER) + _POINTER + environment_size()
    assert too_long(argv, total_limit=total) is None
    assert too_long(argv, total_limit=total - 1) == ("the command line with the environment", total, total - 1)
    assert too_long(["x" * 16_384], total_limit=1) is not None      # the smallest one that is checked


@pytest.mark.skipif(sys.platform != "linux", reason="needs a known ARG_MAX")
def test_without_a_given_limit_the_systems_arg_max_applies():
    from tasker.runners.limits import arg_max, too_long

    limit = arg_max()
    what, size, reported = too_long(["echo"] + ["x" * 100_000] * (limit // 100_000 + 1))
    assert (what, reported) == ("the command line with the environment", limit) and size > limit


def test_a_run_result_defaults_to_a_started_command_that_did_not_time_out():
    from tasker.runners.base import RunResult
    from tasker.runners.output import Output

    r = RunResult(0, Output("o"), Output("e"))
    assert (r.timed_out, r.timeout, r.error, r.not_found, r.start, r.end, r.duration) == (False, 0.0, "", False, 0.0,
                                                                                          0.0, 0.0)
    assert RunResult(0, Output(""), Output(""), start=10.0, end=12.5).duration == 2.5
    assert RunResult(0, Output(""), Output(""), start=10.0, end=9.0).duration == 0.0   # clock stepped back


# --- the config file search, and the watchdog's pieces called in this process ---------------

@pytest.mark.parametrize("given", ["explicit", "environment", "default"])
def test_find_config_searches_the_flag_then_the_environment_then_the_shipped_file_and_cfg(
        given, tmp_path, monkeypatch):
    from tasker.resources import shipped_config_path
    from tasker.runners.exectypes import find_config

    monkeypatch.chdir(tmp_path)
    local = tmp_path / "cfg" / "execution_types.yaml"
    local.parent.mkdir()
    local.write_text("platforms: {}\n")
    mine = tmp_path / "mine.yaml"
    mine.write_text("platforms: {}\n")
    if given == "explicit":
        assert find_config(str(mine), {"TASKER_EXEC_CONFIG": str(local)}) == (str(mine), (str(mine),))
        missing = str(tmp_path / "nope.yaml")
        assert find_config(missing, {}) == (None, (missing,))
    elif given == "environment":
        assert find_config(None, {"TASKER_EXEC_CONFIG": str(mine)}) == (str(mine), (str(mine),))
        assert find_config(None, {"tasker_exec_config": str(mine)})[0] != str(mine)
    else:
        shipped = shipped_config_path()
        assert shipped and os.path.isfile(shipped)
        assert find_config(None, {}) == (shipped, (shipped, str(local)))
        monkeypatch.setattr("tasker.runners.exectypes.shipped_config_path", lambda: None)
        assert find_config(None, {}) == (str(local), (str(local),))
        local.unlink()
        assert find_config(None, {}) == (None, (str(local),))


def test_without_yaml_the_config_is_empty_but_remembers_where_it_was_looked_for(tmp_path, monkeypatch):
    from tasker.runners.exectypes import load_config

    path = tmp_path / "types.yaml"
    path.write_text("platforms: {linux: {sshx: {binary: ssh}}}\n")
    monkeypatch.setitem(sys.modules, "yaml", None)      # import yaml raises ImportError
    config = load_config(str(path), (str(path),))
    assert (config.path, config.searched, config.names()) == (None, (str(path),), ["local"])


class _Overlay:
    """A module with some of its functions replaced, for one module's eyes only."""

    def __init__(self, module, **replaced) -> None:
        self._module, self._replaced = module, replaced

    def __getattr__(self, name: str):
        return self._replaced[name] if name in self._replaced else getattr(self._module, name)


@pytest.mark.parametrize("refusal", [PermissionError(errno.EPERM, "not permitted"),
                                     ProcessLookupError(errno.ESRCH, "no such process")])
def test_a_signal_the_group_refuses_goes_to_the_child_and_its_refusal_too_is_ignored(monkeypatch, refusal):
    from tasker.runners import process

    calls = []

    def refuse(name):
        def call(pid: int, sig: int) -> None:
            calls.append((name, pid, sig))
            raise refusal
        return call

    monkeypatch.setattr(process, "os", _Overlay(os, killpg=refuse("killpg"), kill=refuse("kill")))
    r, w = os.pipe()
    try:
        watch = process._Watch(process.Child(4242, r, w), 30, None, None, 0.0)
        watch._kill(signal.SIGTERM)
        assert (calls, watch.killed) == ([("killpg", 4242, signal.SIGTERM), ("kill", 4242, signal.SIGTERM)], False)
        watch._kill(signal.SIGKILL)
        assert watch.killed and calls[2:] == [("killpg", 4242, signal.SIGKILL), ("kill", 4242, signal.SIGKILL)]
    finally:
        os.close(r)
        os.close(w)


def test_watch_detaches_from_the_console_and_signals_then_kills_what_is_listed_at_end_of_file(monkeypatch):
    import tasker.runners.guard as guard

    calls, closed, sleeper = [], set(), session_sleeper()
    devnull = os.stat(os.devnull)

    def dup2(fd: int, to: int) -> None:
        assert os.path.samestat(os.fstat(fd), devnull)
        calls.append(("dup2", to))

    def closerange(low: int, high: int) -> None:
        closed.update(range(low, min(high, 70000)))

    def setsid() -> None:
        calls.append(("setsid",))
        raise PermissionError(errno.EPERM, "already a group leader")    # must not stop it

    # Stand-ins seen by the guard module only (pytest's own output capture uses the real dup2).
    monkeypatch.setattr(guard, "os", _Overlay(os, dup2=dup2, closerange=closerange, setsid=setsid))
    monkeypatch.setattr(guard, "signal", _Overlay(signal, signal=lambda sig, how: calls.append(("signal", sig, how))))
    r, w = os.pipe()
    keep_w = os.dup(w)
    try:
        os.write(keep_w, f"+{sleeper.pid} {guard.start_time(sleeper.pid)}\n".encode())
        os.close(keep_w)
        keep_w = None
        guard._watch(r, w)
        with pytest.raises(OSError):
            os.fstat(w)                                  # its copy of the write end is closed
        assert calls == [("dup2", 0), ("dup2", 1), ("dup2", 2),
                         ("signal", signal.SIGINT, signal.SIG_IGN), ("signal", signal.SIGTERM, signal.SIG_IGN),
                         ("signal", signal.SIGPIPE, signal.SIG_DFL), ("setsid",)]
        assert set(range(3, 65536)) - {r} <= closed and not closed & {0, 1, 2, r}
        assert wait_dead(sleeper) == -signal.SIGKILL
    finally:
        os.close(r)
        if keep_w is not None:
            os.close(keep_w)
        with contextlib.suppress(OSError):
            os.close(w)
        reap(sleeper)


def test_serve_joins_pieces_retries_an_interrupted_read_and_ends_on_a_read_error(monkeypatch):
    import tasker.runners.guard as guard

    script = [b"+101 5\n+10", InterruptedError(), b"2 7\n-99\n-101\n+103 9\n", OSError(errno.EIO, "gone")]
    killed = []

    def read(fd: int, size: int) -> bytes:
        assert script, "read again after a read error"
        step = script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step

    monkeypatch.setattr(guard, "os", _Overlay(os, read=read))
    monkeypatch.setattr(guard, "kill_group", lambda pgid, start: killed.append((pgid, start)))
    guard._serve(-1)
    assert sorted(killed) == [(102, 7), (103, 9)]


def test_kill_group_spares_init_and_a_reused_pid_and_kills_every_other_group(monkeypatch):
    import tasker.runners.guard as guard

    sent = []
    monkeypatch.setattr(guard, "os", _Overlay(os, killpg=lambda pgid, sig: sent.append((pgid, sig))))
    monkeypatch.setattr(guard, "start_time", lambda pid: 50)
    assert [guard.kill_group(pgid, None) for pgid in (0, 1, 2)] == [False, False, True]
    assert (guard.kill_group(7, 50), guard.kill_group(8, 51)) == (True, False)
    assert sent == [(2, signal.SIGKILL), (7, signal.SIGKILL)]


def test_guard_writes_start_zero_when_unknown_and_survives_a_broken_watchdog_pipe(tmp_path, monkeypatch):
    import tasker.runners.guard as guard

    monkeypatch.setattr(guard, "start_time", lambda pid: None)
    g = guard.Guard()
    r, w = os.pipe()
    os.close(r)                        # the watchdog is gone: writes fail with EPIPE
    journal = tmp_path / "state.procs"
    g.pipe = w
    try:
        g.open_journal(str(journal))
        g.started(4242)
        g.finished(4242)
        assert journal.read_text() == "+4242 0\n"
    finally:
        g.close(str(journal))
    assert not journal.exists()


@pytest.mark.skipif(sys.platform != "linux", reason="needs /proc")
def test_group_alive_and_start_time_read_a_command_name_with_parentheses_and_a_group_of_its_own(
        tmp_path, monkeypatch):
    import tasker.runners.guard as guard

    odd = tmp_path / "x) S 1 2 3"          # /proc/PID/stat shows the name in parentheses
    odd.symlink_to(shutil.which("sleep"))
    proc = subprocess.Popen([str(odd), "60"], process_group=0)    # a group, not a session, of its own
    try:
        for _ in range(500):
            with open(f"/proc/{proc.pid}/stat", "rb") as fh:
                stat_line = fh.read()
            if b"x) S 1 2 3" in stat_line:
                break
            time.sleep(0.01)
        assert guard.start_time(proc.pid) == int(stat_line.rsplit(b")", 1)[1].split()[19])
        assert guard.group_alive(proc.pid)
        monkeypatch.setattr(guard, "os", _Overlay(os, listdir=lambda path: ["self", "4194305", str(proc.pid)]))
        assert guard.group_alive(proc.pid)           # a process gone meanwhile is skipped
        monkeypatch.setattr(guard, "os", _Overlay(os, listdir=lambda path: (_ for _ in ()).throw(OSError("no /proc"))))
        assert not guard.group_alive(proc.pid)
    finally:
        reap(proc)


def test_the_popen_fallback_gives_the_same_child_as_posix_spawn(monkeypatch):
    """stdin, environment, own session, no inherited descriptors; the exit status stays the Child's."""
    from tasker.runners import process

    monkeypatch.setattr(process, "_USE_POSIX_SPAWN", False)
    monkeypatch.setenv("MK_PARENT_ONLY", "parent")
    in_r, in_w = os.pipe()
    stray_r, stray_w = os.pipe()
    os.set_inheritable(stray_r, True)          # would reach the child unless descriptors are closed
    script = (f"cat; echo \"|$ONLY|${{MK_PARENT_ONLY-unset}}|\"; cut -d' ' -f6 /proc/$$/stat; "
              f"[ -e /proc/$$/fd/{stray_r} ] && echo leaked || echo closed; exit 3")
    try:
        os.write(in_w, b"piped\n")
        os.close(in_w)
        child = process.spawn(["/bin/sh", "-c", script], {"ONLY": "mine", "PATH": os.environ["PATH"]},
                              stdin=in_r)
    finally:
        os.close(in_r)
        os.close(stray_r)
        os.close(stray_w)
    try:
        out = b"".join(iter(lambda: os.read(child.out_fd, 100), b""))
    finally:
        os.close(child.out_fd)
        os.close(child.err_fd)
    subprocess.run(["true"], check=True)      # a later Popen must not reap our (now finished) child
    assert out.decode().split("\n") == ["piped", "|mine|unset|", str(child.pid), "closed", ""]
    assert child.wait() == 3


def _read_all(fd: int) -> bytes:
    try:
        return b"".join(iter(lambda: os.read(fd, 4096), b""))
    finally:
        os.close(fd)


def test_a_relaying_client_runs_in_its_own_session_with_the_callers_environment(monkeypatch):
    from tasker.runners.process import spawn

    monkeypatch.setenv("MK_PARENT_ONLY", "parent")
    r_fd, w_fd = os.pipe()
    try:
        child = spawn(["/bin/sh", "-c", "echo \"$MK_PARENT_ONLY\"; cut -d' ' -f6 /proc/$$/stat; echo m >&2"],
                      None, messages_fd=w_fd)
    finally:
        os.close(w_fd)
    out, err = _read_all(child.out_fd), _read_all(child.err_fd)
    assert (child.wait(), out.decode().split("\n"), err, _read_all(r_fd)) == (0, ["parent", str(child.pid), ""],
                                                                              b"", b"m\n")


def test_a_relaying_client_that_cannot_get_its_descriptors_reports_that_error(monkeypatch):
    from tasker.runners import process

    def no_fd(fd: int, floor: int) -> int:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(process, "_above", no_fd)
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError) as caught:
        process.spawn(["true"], None, messages_fd=2)
    assert caught.value.errno == errno.EMFILE
    assert set(os.listdir("/proc/self/fd")) == before            # both pipes closed again


def test_above_returns_a_close_on_exec_copy_numbered_above_the_floor_or_the_descriptor_itself():
    import fcntl

    from tasker.runners.process import _above

    r, w = os.pipe()
    free = max(int(name) for name in os.listdir("/proc/self/fd")) + 10     # nothing open from here on
    at_floor = os.dup2(r, free + 10)
    copies = []
    try:
        assert _above(w, w - 1) == w
        for fd, floor in ((r, free), (at_floor, free + 10)):
            copies.append(_above(fd, floor))
            assert copies[-1] > floor and fcntl.fcntl(copies[-1], fcntl.F_GETFD) & fcntl.FD_CLOEXEC
            assert os.path.samestat(os.fstat(copies[-1]), os.fstat(r))
    finally:
        for fd in (r, w, at_floor, *copies):
            os.close(fd)


def test_child_poll_reports_the_exit_status_once_it_is_there_and_a_child_reaped_elsewhere_as_killed():
    from tasker.runners.process import spawn

    children = [spawn(["sh", "-c", "exit 3"], None), spawn(["sleep", "60"], None)]
    for child in children:
        os.close(child.out_fd)
        os.close(child.err_fd)
    first, running = children
    try:
        assert running.poll() is None
        for _ in range(3000):
            if first.poll() is not None:
                break
            time.sleep(0.01)
        assert (first.poll(), first.returncode, first.wait()) == (3, 3, 3)
    finally:
        running.send_signal(signal.SIGKILL)
    os.waitpid(running.pid, 0)                       # somebody else reaps it
    assert (running.poll(), running.poll()) == (-signal.SIGKILL, -signal.SIGKILL)


def test_child_wait_reports_a_child_reaped_elsewhere_as_killed():
    from tasker.runners.process import spawn

    child = spawn(["sleep", "60"], None)
    os.close(child.out_fd)
    os.close(child.err_fd)
    child.send_signal(signal.SIGKILL)
    os.waitpid(child.pid, 0)                         # somebody else reaps it
    assert (child.wait(), child.returncode) == (-signal.SIGKILL, -signal.SIGKILL)


@pytest.mark.parametrize("script", ["echo out; exit 5", "exec >&- 2>&-; sleep 0.3; exit 5"])
def test_without_pidfd_the_exit_is_found_by_polling_also_after_the_pipes_closed(runner, monkeypatch, script):
    from tasker.runners import process

    monkeypatch.setattr(process._Watch, "_pidfd", lambda self: None)     # a kernel without pidfd_open
    r = runner.run(["sh", "-c", script], 20, Cancel())
    assert (r.exit_code, r.timed_out, r.stdout.text()) == (5, False, "out\n" if "echo" in script else "")


def test_without_pidfd_the_exit_is_found_while_a_background_process_holds_the_pipes(runner, monkeypatch):
    from tasker.runners import process

    monkeypatch.setattr(process._Watch, "_pidfd", lambda self: None)
    monkeypatch.setattr(process, "EXIT_GRACE", 0.5)
    monkeypatch.setattr(process, "MIN_TIMEOUT", 0.5)
    r = runner.run(["sh", "-c", "sleep 30 & echo $!; exit 4"], lambda: 2, Cancel())
    background = int(r.stdout.text())
    with left_running(background):
        # found by polling: the half second of reading after the exit ends it, not the 2 s timeout
        assert (r.exit_code, r.timed_out) == (4, False)


def test_without_pidfd_a_child_that_closed_its_pipes_still_times_out(runner, monkeypatch):
    from tasker.runners import process

    monkeypatch.setattr(process._Watch, "_pidfd", lambda self: None)
    r = runner.run(["sh", "-c", "exec >&- 2>&-; sleep 30"], 1, Cancel())
    assert r.timed_out and r.exit_code != 0


def test_the_sweep_only_probes_the_process_of_a_live_run_and_keeps_its_session(tmp_path):
    from tasker.runners.process import sweep_stale_sessions

    other_run = subprocess.Popen(["sleep", "120"])
    try:
        session = tmp_path / f"tasker_session_{other_run.pid}_abc"
        session.mkdir()
        sweep_stale_sessions(str(tmp_path))
        assert session.exists()
    finally:
        other_run.terminate()
        # A signal the probe sent would have reached it first and ended it by that signal.
        assert other_run.wait(timeout=60) == -signal.SIGTERM


def test_sweep_keeps_a_live_runs_session_and_goes_on_past_a_directory_it_cannot_remove(tmp_path, monkeypatch):
    from tasker.runners.process import sweep_stale_sessions

    live = tmp_path / f"tasker_session_{os.getpid()}_abc"
    stuck, stale = tmp_path / f"tasker_session_{dead_pid()}_a", tmp_path / f"tasker_session_{dead_pid()}_b"
    for directory in (live, stuck, stale):
        directory.mkdir()
    (stuck / "held").write_text("x")
    real_unlink = os.unlink

    def unlink(path, *args, **kwargs):
        if os.fsdecode(path) == "held":
            raise PermissionError(errno.EPERM, "Operation not permitted")
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    sweep_stale_sessions(str(tmp_path))
    monkeypatch.undo()
    assert (live.exists(), stuck.exists(), stale.exists()) == (True, True, False)


def test_a_type_with_a_runner_tasker_does_not_have_is_an_exec_type_error_naming_both():
    from tasker.runners.exectypes import ExecType

    t = ExecTypes(environ={})
    t.use_config(ExecConfig())
    t.config.types["grid"] = ExecType("grid", {"binary": "qrsh", "runner": " PBS "})
    with pytest.raises(ExecTypeError) as caught:
        t.argv("grid", "h", "c", "")
    assert str(caught.value) == "exec type 'grid': unknown runner 'pbs' (known: slurm)"


@pytest.mark.parametrize(("text", "words"), [('a "b  c"', ["a", "b  c"]), ('"x"y', ["xy"]), ("it\\'s", ["it's"]),
                                             ("'p q' r", ["p q", "r"]), (" plain  words ", ["plain", "words"])])
def test_split_arguments_groups_any_kind_of_quote(text, words):
    assert split_arguments(text) == words


def test_a_template_type_gets_the_arguments_text_with_values_in_and_unsplit():
    from tasker.runners.exectypes import Arguments, Value

    t = exec_types(CONFIG)
    assert t.argv("shell", "h", "echo", Arguments(["x ", Value("v  'w")])) == ["/bin/bash", "-c", "echo x v  'w"]
    # without values the file's text is not split either: its quoting is the shell's business
    assert t.argv("shell", "h", "echo", Arguments(['say "open'])) == ["/bin/bash", "-c", 'echo say "open']


def test_an_alias_written_with_capitals_is_found_by_its_exact_spelling():
    t = exec_types(CONFIG)
    t.config.aliases["MyShell"] = "Shell"
    assert (t.canonical("MyShell"), t.canonical(" bash "), t.canonical("LOCAL")) == ("shell", "shell", "local")


@pytest.mark.parametrize(("soft", "hard", "raised", "problem"), [
    (124, 200, None, None),                 # 10 children need 10 * 6 + 64 = 124 descriptors
    (-1, 50, None, None),                   # no soft limit
    (100, 124, (124, 124), None),           # raised to the hard limit, which is just enough
    (100, -1, (-1, -1), None),              # raised to no limit
    (100, 123, None, "10 tasks running at once need about 124 open files, but the limit is 100 (hard limit 123)"),
    (100, 500, (500, 500), "10 tasks running at once need about 124 open files, but the limit is 100 "
                           "and cannot be raised: not allowed"),
])
def test_ensure_open_files_raises_the_soft_limit_or_says_why_the_run_cannot_start(
        monkeypatch, soft, hard, raised, problem):
    import types

    from tasker.runners.process import ensure_open_files

    calls = []

    def setrlimit(which, limits):
        calls.append((which, limits))
        if problem and "raised" in problem:
            raise ValueError("not allowed")

    fake = types.SimpleNamespace(RLIMIT_NOFILE=7, RLIM_INFINITY=-1, getrlimit=lambda which: (soft, hard),
                                 setrlimit=setrlimit)
    monkeypatch.setitem(sys.modules, "resource", fake)
    assert ensure_open_files(10) == problem
    assert calls == ([(7, raised)] if raised else [])


def test_kill_journal_passes_each_start_time_and_waits_for_each_group_it_hit(tmp_path, monkeypatch):
    import tasker.runners.guard as guard

    journal = tmp_path / "state.procs"
    journal.write_text("+777 5\n+778 0\n+779 9\n")
    killed, asked = [], []
    monkeypatch.setattr(guard, "kill_group", lambda pgid, start: killed.append((pgid, start)) or pgid != 779)
    monkeypatch.setattr(guard, "group_alive", lambda pgid: asked.append(pgid) or asked.count(pgid) < 2)
    assert guard.kill_journal(str(journal), wait=60) == 2
    assert killed == [(777, 5), (778, None), (779, 9)]          # start 0: not known
    assert asked == [777, 777, 778, 778]


def test_the_journal_starts_empty_and_is_never_opened_through_a_symbolic_link(tmp_path):
    import fcntl

    from tasker.runners.guard import Guard

    journal, target = tmp_path / "state.procs", tmp_path / "elsewhere"
    journal.write_text("+1234 5\n")
    guard = Guard()
    guard.open_journal(str(journal))
    try:
        assert journal.read_text() == ""
        assert fcntl.fcntl(guard.journal, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert fcntl.fcntl(guard.journal, fcntl.F_GETFL) & os.O_APPEND
    finally:
        guard.close()
    journal.unlink()
    journal.symlink_to(target)
    with pytest.raises(OSError):
        Guard().open_journal(str(journal))
    assert not target.exists()


@pytest.mark.skipif(sys.platform != "linux", reason="the watchdog is Linux's")
def test_a_watchdog_that_cannot_be_forked_leaves_nothing_open_and_nothing_to_write_to(monkeypatch):
    import tasker.runners.guard as guard

    def fork() -> int:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(guard, "os", _Overlay(os, fork=fork))
    before = set(os.listdir("/proc/self/fd"))
    g = guard.Guard()
    g.start_watchdog()
    assert (g.pipe, g.watchdog) == (None, None)
    assert set(os.listdir("/proc/self/fd")) == before


def test_ssh_master_waits_end_on_an_exit_a_missing_child_or_the_deadline(monkeypatch):
    from tasker.runners import ssh

    done, running = subprocess.Popen(["true"]), subprocess.Popen(["sleep", "60"])
    try:
        assert ssh._wait(done.pid, time.monotonic() + 60) is True
        assert ssh._reap(done.pid) is True                 # no longer our child
        assert ssh._wait(running.pid, time.monotonic() - 1) is False
    finally:
        reap(running)
        done.returncode = 0

    def waitpid(pid: int, options: int):
        if options:
            return 0, 0                                    # still running at the first look
        raise ChildProcessError(errno.ECHILD, "reaped by somebody else meanwhile")

    monkeypatch.setattr(ssh, "os", _Overlay(os, waitpid=waitpid))
    assert ssh._wait(4242, None) is True


def test_ssh_signal_group_ignores_a_group_and_a_process_it_may_not_signal(monkeypatch):
    from tasker.runners import ssh

    tried = []

    def refuse(pid: int, sig: int) -> None:
        tried.append(pid)
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(ssh, "os", _Overlay(os, killpg=refuse, kill=refuse))
    ssh._signal_group(4242, signal.SIGTERM)
    assert tried == [4242, 4242]
