"""The process runner with real processes: capture, timeouts, process groups, cancel, spilling."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

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


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


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
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild), "the grandchild survived the timeout"


def test_timeout_is_resolved_lazily_only_after_5_seconds(runner):
    asked = []

    def timeout():
        asked.append(True)
        return 300

    r = runner.run(py("print('quick')"), timeout, Cancel())
    assert r.exit_code == 0 and asked == []


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


def test_large_output_spills_to_a_private_file(runner, tmp_path):
    r = runner.run(py("import sys; sys.stdout.write('y' * 3_000_000 + 'END')"), 60, Cancel())
    out = r.stdout
    assert out.spilled and out.size == 3_000_003
    assert stat.S_IMODE(os.stat(out.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(out.path)).st_mode) == 0o700
    assert out.contains("yEND") and len(out.for_substitution()) == 102_400
    assert out.head(5) == "yyyyy"


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
