"""The ssh exec type against a real OpenSSH server (the ``sshd`` fixture, tests/sshd.py).

The exec-type config is the shipped ``ssh`` type plus options that point it
at the test server; host validation runs as usual unless a test says
otherwise.  Remote commands run on this machine (through sshd), so a script
in the test's directory can report what the remote side saw.
"""

from __future__ import annotations

import json

import pytest
from sshd import free_port

WHEREAMI = """#!/bin/sh
# prints: ARGUMENTS SERVER-ADDRESS SERVER-PORT (as sshd saw the connection)
args="$*"
set -- $SSH_CONNECTION
echo "$args $3 $4"
"""

# Spaces, quotes, $, ;, globs, ~, |, > and an empty word: the remote side must get them as written.
TRICKY = """"<%s>\\n" "a  b" "it's" 'say "hi"' $TASKER_TEST_UNSET cost:$5 "x; y" a;b '*' ~ "a|b" 'a>b' "" \\ lead"""
TRICKY_WORDS = ["a  b", "it's", 'say "hi"', "$TASKER_TEST_UNSET", "cost:$5", "x; y", "a;b", "*", "~", "a|b", "a>b",
                "", " lead"]


@pytest.fixture
def remote(sshd, tmp_path, tasker):
    """(config path, whereami script path) for one test."""
    script = tmp_path / "whereami"
    script.write_text(WHEREAMI)
    script.chmod(0o755)
    return sshd.exec_config(tmp_path / "types.yaml"), script


def run(tasker, config, text, *args, json_out=None):
    flow = tasker.write(text)
    extra = ["--output-json", str(json_out)] if json_out else []
    return tasker.run(flow, "--exec-config", config, *extra, *args, timeout=120)


def results(path) -> dict:
    return json.loads(path.read_text())["task_results"]


def test_a_single_ssh_task_runs_through_sshd(sshd, remote, tasker, tmp_path):
    config, script = remote
    out = tmp_path / "out.json"
    r = run(tasker, config, f"task=0\nhostname=127.0.0.1\ncommand={script}\narguments=hello\nexec=ssh\n", "-r",
            json_out=out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Host validation passed" in r.stdout
    assert results(out)["0"]["stdout"] == f"hello 127.0.0.1 {sshd.port}\n"


def test_the_remote_exit_code_is_the_task_exit_code(remote, tasker):
    config, _ = remote
    r = run(tasker, config, 'task=0\nhostname=127.0.0.1\ncommand=sh\narguments=-c "exit 7"\nexec=ssh\n', "-r")
    assert r.returncode == 7, r.stdout + r.stderr


def test_a_hostnames_block_of_20_loopback_hosts_at_max_parallel_10(sshd, remote, tasker, tmp_path):
    config, script = remote
    hosts = [f"127.0.0.{i}" for i in range(2, 22)]
    out = tmp_path / "out.json"
    text = (f"task=0\ntype=parallel\nhostnames={','.join(hosts)}\nmax_parallel=10\ncommand={script}\n"
            "arguments=task @task@ on\nexec=ssh\n\n"
            "task=1\nhostname=localhost\ncommand=echo\narguments=@0_success_count@ of @0_total_count@\nexec=local\n")
    r = run(tasker, config, text, "-r", json_out=out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Validating 20 host(s)" in r.stdout
    got = results(out)
    for i, host in enumerate(hosts):
        sid = 100_000 + i
        # every name reaches the one server on 127.0.0.1 (tests/sshd.py maps them in its ssh_config)
        assert got[str(sid)]["stdout"] == f"task {sid} on 127.0.0.1 {sshd.port}\n", (sid, host, got.get(str(sid)))
    assert got["1"]["stdout"] == "20 of 20\n"


def test_arguments_arrive_unchanged_on_the_remote_side(remote, tasker, tmp_path):
    config, _ = remote
    out = tmp_path / "out.json"
    text = (f"task=0\nhostname=127.0.0.1\ncommand=printf\narguments={TRICKY}\nexec=ssh\n\n"
            f"task=1\nhostname=localhost\ncommand=printf\narguments={TRICKY}\nexec=local\n")
    r = run(tasker, config, text, "-r", json_out=out)
    assert r.returncode == 0, r.stdout + r.stderr
    got = results(out)
    assert got["0"]["stdout"].splitlines() == [f"<{w}>" for w in TRICKY_WORDS]
    assert got["0"]["stdout"] == got["1"]["stdout"]      # exactly what exec=local runs


def test_a_dry_run_validates_the_host_and_shows_the_quoted_remote_command(remote, tasker):
    config, _ = remote
    r = run(tasker, config, "task=0\nhostname=127.0.0.1\ncommand=echo\narguments='a  b' x;y\nexec=ssh\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Host validation passed" in r.stdout
    assert "-- 127.0.0.1 echo 'a  b' 'x;y'" in r.stdout


def test_an_unreachable_host_fails_host_validation_with_61_naming_it(sshd, tasker, tmp_path):
    config = sshd.exec_config(tmp_path / "closed.yaml", port=free_port())    # nothing listens there
    r = run(tasker, config, "task=0\nhostname=127.0.0.1\ncommand=echo\narguments=hi\nexec=ssh\n", "-r")
    assert r.returncode == 61, r.stdout + r.stderr
    assert "host validation failed: connection test failed for 127.0.0.1" in r.stderr
    assert "127.0.0.1: connection test failed: ssh: exit code 255, expected 0" in r.stdout
    assert "Connection refused" in r.stdout


def test_an_unreachable_host_without_host_validation_fails_the_task_with_ssh_exit_255(sshd, tasker, tmp_path):
    config = sshd.exec_config(tmp_path / "closed.yaml", port=free_port())
    r = run(tasker, config, "task=0\nhostname=127.0.0.1\ncommand=echo\narguments=hi\nexec=ssh\n", "-r",
            "--skip-host-validation")
    assert r.returncode == 255, r.stdout + r.stderr
    assert "Task 0: Exit code: 255" in r.stdout
    assert "connect to host 127.0.0.1" in r.stdout and "Connection refused" in r.stdout


def test_a_host_name_that_does_not_resolve_exits_21(remote, tasker):
    config, _ = remote
    r = run(tasker, config, "task=0\nhostname=no-such-host.invalid\ncommand=echo\narguments=hi\nexec=ssh\n", "-r")
    assert r.returncode == 21, r.stdout + r.stderr
    assert "name does not resolve for no-such-host.invalid" in r.stderr
