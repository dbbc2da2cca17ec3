"""The compiler's answer to "which hosts run more than one command?" (tasker.ir.hosts)."""

from __future__ import annotations

import fcntl
import os
import signal
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from support import compile_text

from tasker.ir.hosts import reused_hosts
from tasker.report.private import pid_alive
from tasker.runners.base import Cancel
from tasker.runners.ssh import Connections, RemoteArgv, _signal_group, wrap


def hosts_of(text: str, validate: bool = True) -> set[str]:
    workflow, diags = compile_text(text, validate=validate)
    assert not diags.has_errors(), diags
    return set(reused_hosts(workflow))


def test_two_tasks_on_one_host_reuse_it_and_a_host_used_once_does_not():
    assert hosts_of("""
        task=0
        hostname=web1
        command=true
        exec=ssh

        task=1
        hostname=web1
        command=true
        exec=ssh

        task=2
        hostname=db1
        command=true
        exec=ssh
        """) == {"web1"}


def test_a_pure_fan_out_reuses_nothing():
    assert hosts_of("""
        task=0
        type=parallel
        hostnames=a,b,c,d
        command=true
        exec=ssh
        """) == set()


def test_a_retrying_block_reuses_its_hosts():
    assert hosts_of("""
        task=0
        type=parallel
        hostnames=a,b
        retry_failed=true
        retry_count=2
        command=true
        exec=ssh
        """) == {"a", "b"}


def test_a_looping_task_reuses_its_host():
    assert hosts_of("""
        task=0
        hostname=web1
        command=true
        next=loop
        loop=3
        """) == {"web1"}


def test_a_jump_back_reuses_the_hosts_of_the_stretch_it_repeats():
    # task validation refuses backward jumps; without it they run
    assert hosts_of(validate=False, text="""
        task=0
        hostname=before
        command=true

        task=1
        hostname=web1
        command=true

        task=2
        hostname=web2
        command=false
        on_failure=1
        """) == {"web1", "web2"}


def test_a_host_only_known_at_run_time_counts_as_used_once():
    assert hosts_of("""
        task=0
        hostname=web1
        command=echo
        arguments=db1

        task=1
        hostname=@0_stdout@
        command=true

        task=2
        hostname=@0_stdout@
        command=true
        """) == set()


# ================================================================= the run's ssh connections, in process
# tasker.runners.ssh.Connections with a fake OpenSSH client: a script that records its argv,
# "opens" the control socket by creating the file named by ControlPath=, and stays until it
# is signalled.  tests/test_ssh_connections.py runs the same services against a real sshd.


FAKE_SSH = """#!/bin/sh
echo "$*" >> {log}
for a in "$@"; do case $a in ControlPath=*) path=${{a#ControlPath=}};; esac; done
{body}
"""
MASTER = 'echo $$ >> {pids}; touch "$path"; exec sleep 300'


def fake_ssh(tmp_path: Path, body: str = MASTER, name: str = "ssh") -> Path:
    program = tmp_path / name
    program.write_text(FAKE_SSH.format(log=tmp_path / f"{name}.log",
                                       body=body.format(pids=tmp_path / f"{name}.pids")))
    program.chmod(0o755)
    return program


def calls(tmp_path: Path, name: str = "ssh") -> list[str]:
    log = tmp_path / f"{name}.log"
    return log.read_text().splitlines() if log.exists() else []


def remote(program: Path, host: str = "web1", *options: str, reuse: bool = True, stop: bool = False) -> RemoteArgv:
    argv = [str(program), *options, host, "echo 'a b'"]
    return RemoteArgv(argv, exec_type="ssh", host_at=len(options) + 1, line_at=len(options) + 2, reuse=reuse,
                      stop=stop)


@pytest.fixture
def connections():
    made: list[Connections] = []

    def make(*args, **kwargs) -> Connections:
        made.append(Connections(*args, **kwargs))
        return made[-1]

    yield make
    for conns in made:
        conns.close()


def test_a_reused_host_gets_one_master_and_every_task_to_it_multiplexes_over_it(tmp_path, connections):
    ssh = fake_ssh(tmp_path)
    conns = connections({"web1"})
    out, stdin = conns.prepare(remote(ssh, "web1", "-p", "22"))
    [master] = calls(tmp_path)
    path = master.split()[1].removeprefix("ControlPath=")
    assert master == f"-o ControlPath={path} -o ControlMaster=yes -o ControlPersist=no -N -p 22 web1"
    assert out == [str(ssh), "-o", f"ControlPath={path}", "-o", "ControlMaster=no", "-p", "22", "web1", "echo 'a b'"]
    assert stdin is None
    assert os.path.dirname(path) == conns.directory
    assert stat.S_IMODE(os.stat(conns.directory).st_mode) == 0o700
    again = RemoteArgv([str(ssh), "-p", "22", "web1", "other"], exec_type="ssh", host_at=3, line_at=4, reuse=True,
                       stop=False)
    assert conns.prepare(again, Cancel())[0] == [*out[:-1], "other"]    # the same master for another command
    other, _ = conns.prepare(remote(ssh, "web1", "-p", "2222"))         # other options: another connection
    assert len(calls(tmp_path)) == 2 and other[2] != out[2] and other[2].startswith(f"ControlPath={conns.directory}/")
    # a host used once, or an argv that asks for no reuse, connects directly
    assert conns.prepare(remote(ssh, "db1"))[0] == list(remote(ssh, "db1"))
    assert conns.prepare(remote(ssh, "web1", reuse=False))[0] == list(remote(ssh, "web1", reuse=False))
    assert len(calls(tmp_path)) == 2

    pids = [int(p) for p in (tmp_path / "ssh.pids").read_text().split()]
    directory = conns.directory
    conns.close()
    assert not any(pid_alive(pid) for pid in pids)
    assert conns.closed and not os.path.exists(directory) and conns.directory is None
    assert conns.prepare(remote(ssh, "web1", "-p", "22"))[0] == list(remote(ssh, "web1", "-p", "22"))
    conns.close()                                    # a second close finds nothing left to do
    assert all(m.pid is None for m in conns.masters.values())


def test_the_reused_hosts_are_asked_for_once_on_first_need(tmp_path, connections):
    asked = []
    conns = connections(lambda: asked.append(1) or ["web1"])
    assert asked == []
    ssh = fake_ssh(tmp_path)
    conns.prepare(remote(ssh, "web1"))
    conns.prepare(remote(ssh, "db1"))
    assert asked == [1] and conns.reused == {"web1"}
    assert len(calls(tmp_path)) == 1


@pytest.mark.parametrize(("body", "cancelled"), [("exit 255", False),
                                               ("echo $$ >> {pids}; sleep 5; touch \"$path\"; exec sleep 300", True)])
def test_a_master_that_fails_or_is_cancelled_is_not_retried_and_its_host_connects_directly(tmp_path, connections,
                                                                                          body, cancelled):
    ssh = fake_ssh(tmp_path, body)
    conns = connections({"web1"})
    cancel = Cancel()
    if cancelled:
        cancel.set(signal.SIGINT)     # the run is being stopped while the master has not authenticated yet
    try:
        for _ in range(2):
            assert conns.prepare(remote(ssh, "web1"), cancel)[0] == list(remote(ssh, "web1"))
    finally:
        cancel.close()
    # one start (a cancelled master may be killed before its first line)
    assert len(calls(tmp_path)) == (0 if cancelled and not calls(tmp_path) else 1)
    [entry] = conns.masters.values()
    assert entry.failed and entry.pid is None
    pids = tmp_path / "ssh.pids"
    assert not pids.exists() or not any(pid_alive(int(p)) for p in pids.read_text().split())


def test_a_client_that_cannot_be_started_gives_a_direct_connection(tmp_path, connections):
    conns = connections({"web1"})
    missing = tmp_path / "no-such-ssh"
    assert conns.prepare(remote(missing, "web1"))[0] == list(remote(missing, "web1"))
    assert [m.failed for m in conns.masters.values()] == [True]


def test_a_stopped_remote_command_gets_the_wrapper_and_the_held_open_pipe(tmp_path, connections):
    conns = connections()
    ssh = fake_ssh(tmp_path)
    out, stdin = conns.prepare(remote(ssh, "web1", reuse=False, stop=True))
    assert out == [str(ssh), "web1", wrap("echo 'a b'")]
    assert isinstance(stdin, int) and conns.prepare(remote(ssh, "db1", stop=True))[1] == stdin
    assert fcntl.fcntl(stdin, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY     # the end the watcher reads
    conns.close()
    with pytest.raises(OSError):
        os.fstat(stdin)


def test_the_socket_directory_is_private_and_short_enough_for_a_socket_path(tmp_path, connections, monkeypatch):
    short = tempfile.mkdtemp(dir="/tmp")
    monkeypatch.setattr(tempfile, "tempdir", short)   # a too long base gives way to /tmp itself, not to $TMPDIR
    try:
        at_limit = short + "/" + "x" * (39 - len(short))        # 40 characters: still short enough
        os.mkdir(at_limit)
        for base, parent in ((short, short), (at_limit, at_limit), (at_limit + "y", "/tmp"),
                             (str(tmp_path / ("x" * 41)), "/tmp")):
            conns = connections({"web1"}, base=base)
            conns.prepare(remote(fake_ssh(tmp_path), "web1"))
            assert os.path.dirname(conns.directory) == parent
            assert os.path.basename(conns.directory).startswith(f"tasker_ssh_{os.getpid()}_")
            conns.close()
    finally:
        os.rmdir(at_limit)
        os.rmdir(short)


def test_the_wrapper_runs_the_command_on_an_empty_stdin_and_passes_its_exit_code_on():
    proc = subprocess.Popen(["sh", "-c", wrap("cat; echo done; exit 3")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, start_new_session=True)
    try:
        out = proc.stdout.read()          # stdin stays open, as tasker holds it: nothing stops the command
        assert (proc.wait(timeout=120), out) == (3, b"done\n")
    finally:
        proc.stdin.close()
        proc.stdout.close()


def test_the_wrapper_stops_the_command_when_its_stdin_closes():
    proc = subprocess.Popen(["sh", "-c", wrap("echo started; sleep 300; echo survived")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout.readline() == b"started\n"
    proc.stdin.close()                # what the remote side sees when tasker's ssh client is killed
    try:
        assert proc.wait(timeout=120) != 0
        assert proc.stdout.read() == b""
    finally:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.stdout.close()


def test_a_process_that_leads_no_group_is_still_signalled():
    proc = subprocess.Popen(["sleep", "300"])      # in the test's own process group
    _signal_group(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=120) == -signal.SIGKILL


def test_a_master_runs_detached_on_dev_null_and_any_host_name_gets_a_socket(tmp_path, connections):
    ssh = fake_ssh(tmp_path)
    conns = connections({"h\udcff"})                # an undecodable byte from the environment
    saved = os.dup(0)
    read_end, write_end = os.pipe()
    os.dup2(read_end, 0)                             # tasker's own stdin must not reach the master
    try:
        out, _ = conns.prepare(remote(ssh, "h\udcff"))
    finally:
        os.dup2(saved, 0)
        for fd in (saved, read_end, write_end):
            os.close(fd)
    assert out[2].startswith("ControlPath=")
    [pid] = [int(p) for p in (tmp_path / "ssh.pids").read_text().split()]
    assert os.getsid(pid) == pid                     # a session of its own: signalled as a group
    assert [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in (0, 1, 2)] == [os.devnull] * 3


def test_a_master_that_ignores_sigterm_is_killed_at_the_end(tmp_path, connections):
    ssh = fake_ssh(tmp_path, "trap '' TERM; echo $$ >> {pids}; touch \"$path\"; while :; do sleep 1; done")
    conns = connections({"web1"})
    assert conns.prepare(remote(ssh, "web1"))[0][2].startswith("ControlPath=")
    [pid] = [int(p) for p in (tmp_path / "ssh.pids").read_text().split()]
    conns.close()
    assert not pid_alive(pid)


def test_a_master_ending_on_sigterm_is_given_the_grace_to_close_its_connection_cleanly(tmp_path, connections,
                                                                                        monkeypatch):
    monkeypatch.setattr("tasker.runners.ssh.CLOSE_GRACE", 120.0)   # ample on a loaded machine; it ends long before
    closed = tmp_path / "closed"
    ssh = fake_ssh(tmp_path, f"trap 'sleep 0.3; echo bye > {closed}; exit 0' TERM; "
                             "echo $$ >> {pids}; touch \"$path\"; while :; do sleep 0.1; done")
    conns = connections({"web1"})
    assert conns.prepare(remote(ssh, "web1"))[0][2].startswith("ControlPath=")
    [pid] = [int(p) for p in (tmp_path / "ssh.pids").read_text().split()]
    conns.close()
    assert not pid_alive(pid)
    assert closed.read_text() == "bye\n"            # not killed while it was still closing


def test_close_ends_the_held_open_stdin_and_tolerates_what_is_already_gone(tmp_path, connections):
    ssh = fake_ssh(tmp_path)
    conns = connections({"web1"})
    _out, stdin = conns.prepare(remote(ssh, "web1", stop=True))
    held = os.dup(stdin)                   # what a remote command started with it holds
    os.close(stdin)                        # its read end, and the socket directory, are gone already
    directory = conns.directory
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    os.rmdir(directory)
    conns.close()
    try:
        os.set_blocking(held, False)
        assert os.read(held, 1) == b""     # the end of input, not "nothing yet": the write end is closed
    finally:
        os.close(held)
    assert conns.directory is None
    # a command that still comes gets a held-open stdin of its own, which a second close ends
    _out, again = conns.prepare(remote(ssh, "web1", stop=True))
    held = os.dup(again)
    conns.close()
    try:
        os.set_blocking(held, False)
        assert os.read(held, 1) == b""
    finally:
        os.close(held)


def test_signalling_a_process_that_is_gone_is_not_an_error():
    proc = subprocess.Popen(["true"])
    proc.wait(timeout=120)
    _signal_group(proc.pid, signal.SIGKILL)


def test_a_master_that_never_authenticates_is_given_up_after_the_wait(tmp_path, connections, monkeypatch):
    monkeypatch.setattr("tasker.runners.ssh.MASTER_WAIT", 0.3)
    ssh = fake_ssh(tmp_path, "echo $$ >> {pids}; exec sleep 300")
    conns = connections({"web1"})
    assert conns.prepare(remote(ssh, "web1"))[0] == list(remote(ssh, "web1"))
    [pid] = [int(p) for p in (tmp_path / "ssh.pids").read_text().split()]
    assert not pid_alive(pid)
