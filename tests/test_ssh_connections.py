"""ssh at run scale against the real test sshd: shared master connections and remote termination.

Every host name reaches the one test server (tests/sshd.py), whose log counts
the logins and whose descendants are the remote commands, so ``ps`` (the
process table) shows what runs "remotely".
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from sshd import loopback_hosts, processes_matching, sessions_of
from test_ssh import TRICKY, TRICKY_WORDS

GONE_WITHIN = 2.0          # seconds: a stopped task's remote command must be gone by then
PATIENCE = 60.0            # generous bound for things that take well under a second on an idle machine


@pytest.fixture
def config(sshd, tmp_path):
    return sshd.exec_config(tmp_path / "types.yaml")


@pytest.fixture
def private_tmp():
    """A short TMPDIR of the test's own for tasker (its control sockets go there): the checks for
    leftover sockets then see this run only, not those of another test run on the machine."""
    path = tempfile.mkdtemp(prefix="tsk", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run(tasker, config, text, *args, json_out=None, tmp=None):
    flow = tasker.write(text)
    extra = ["--output-json", str(json_out)] if json_out else []
    return tasker.run(flow, "--exec-config", config, "-r", *extra, *args, timeout=180,
                      env={"TMPDIR": tmp} if tmp else None)


def start(tasker, config, text, *args, tmp=None) -> subprocess.Popen:
    flow = tasker.write(text)
    return subprocess.Popen([sys.executable, "-m", "tasker", str(flow), "--exec-config", str(config), "-r", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=tasker.env({"TMPDIR": tmp} if tmp else None),
                            cwd=tasker.tmp)


def sequence(host: str, commands: list[str], timeout: int | None = None) -> str:
    extra = f"timeout={timeout}\n" if timeout else ""
    out = []
    for i, command in enumerate(commands):
        program, _, arguments = command.partition(" ")
        out.append(f"task={i}\nhostname={host}\ncommand={program}\narguments={arguments}\nexec=ssh\n{extra}")
    return "\n".join(out)


def remote(sshd, argv: list[str]) -> list[int]:
    """Pids of processes that logins to the test sshd started, running exactly ``argv``."""
    return sessions_of(sshd.port, argv)


def masters(sshd) -> list[tuple[int, list[str]]]:
    """tasker's master connections to this test's server (other test runs may have their own)."""
    return processes_matching(lambda argv: "ControlMaster=yes" in argv and any("tasker_ssh_" in a for a in argv)
                              and _port_of(argv) == str(sshd.port))


def _port_of(argv: list[str]) -> str | None:
    return argv[argv.index("-p") + 1] if "-p" in argv[:-1] else None


def control_dirs(tmp: str) -> list[str]:
    return glob.glob(os.path.join(tmp, "tasker_ssh_*"))


def wait_for(condition, limit: float = PATIENCE) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def results(path) -> dict:
    return json.loads(path.read_text())["task_results"]


# ---------------------------------------------------------------- connection reuse


def test_twenty_tasks_on_one_host_make_one_authentication(sshd, config, tasker, tmp_path, private_tmp):
    before = sshd.authentications()
    out = tmp_path / "out.json"
    r = run(tasker, config, sequence("127.0.1.1", [f"echo step {i}" for i in range(20)]), json_out=out,
            tmp=private_tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Host validation passed" in r.stdout          # the test opened the master the tasks then used
    got = results(out)
    assert [got[str(i)]["stdout"] for i in range(20)] == [f"step {i}\n" for i in range(20)]
    assert wait_for(lambda: sshd.authentications() - before >= 1)
    assert sshd.authentications() - before == 1
    assert masters(sshd) == [] and control_dirs(private_tmp) == []


def test_without_host_validation_the_first_task_opens_the_master(sshd, config, tasker):
    before = sshd.authentications()
    r = run(tasker, config, sequence("127.0.1.2", ["true"] * 5), "--skip-host-validation")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sshd.authentications() - before == 1


def test_a_host_used_once_gets_no_master(sshd, config, tasker):
    """A pure fan-out: one login per host for host validation, one per task, no master."""
    hosts = loopback_hosts(6, first=2 * 256 + 1)
    before = sshd.authentications()
    text = f"task=0\ntype=parallel\nhostnames={','.join(hosts)}\nmax_parallel=6\ncommand=true\nexec=ssh\n"
    r = run(tasker, config, text)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sshd.authentications() - before == 12


def test_reuse_can_be_turned_off_per_exec_type(sshd, tasker, tmp_path):
    import yaml

    path = sshd.exec_config(tmp_path / "types.yaml")
    data = yaml.safe_load(path.read_text())
    data["platforms"]["linux"]["ssh"]["reuse_connections"] = False
    path.write_text(yaml.safe_dump(data))
    before = sshd.authentications()
    r = run(tasker, path, sequence("127.0.1.3", ["true"] * 3), "--skip-host-validation")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sshd.authentications() - before == 3


def test_a_control_path_in_the_users_options_turns_reuse_off(sshd, tasker, tmp_path):
    import yaml

    path = sshd.exec_config(tmp_path / "types.yaml")
    data = yaml.safe_load(path.read_text())
    template = data["platforms"]["linux"]["ssh"]["command_template"]
    template[1:1] = ["-o", "ControlPath=none"]
    path.write_text(yaml.safe_dump(data))
    before = sshd.authentications()
    r = run(tasker, path, sequence("127.0.1.4", ["true"] * 3), "--skip-host-validation")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sshd.authentications() - before == 3


def test_words_reach_the_remote_program_unchanged_through_a_shared_connection(sshd, config, tasker, tmp_path):
    out = tmp_path / "out.json"
    before = sshd.authentications()
    r = run(tasker, config, sequence("127.0.1.5", [f"printf {TRICKY}"] * 2), json_out=out)
    assert r.returncode == 0, r.stdout + r.stderr
    got = results(out)
    for tid in ("0", "1"):
        assert got[tid]["stdout"].splitlines() == [f"<{w}>" for w in TRICKY_WORDS]
    assert sshd.authentications() - before == 1


def test_the_remote_command_reads_an_empty_stdin_and_its_exit_code_is_the_tasks(config, tasker, tmp_path):
    out = tmp_path / "out.json"
    r = run(tasker, config, sequence("127.0.1.6", ["cat", 'sh -c "exit 9"']), json_out=out)
    assert r.returncode == 9, r.stdout + r.stderr
    first = results(out)["0"]
    assert (first["exit_code"], first["stdout"], first["stderr"], first["success"]) == (0, "", "", True)


# ---------------------------------------------------------------- every ending closes every master


@pytest.mark.parametrize("ending", ["success", "failure", "timeout", "sigterm"])
def test_no_master_or_control_socket_remains_after_the_run(sshd, config, tasker, ending, private_tmp):
    before = sshd.authentications()
    last = {"success": "true", "failure": "false", "timeout": "sleep 300", "sigterm": "sleep 300"}[ending]
    text = sequence("127.0.1.7", ["true", "true", last], timeout=5 if ending == "timeout" else None)
    proc = start(tasker, config, text, tmp=private_tmp)
    if ending == "sigterm":
        assert wait_for(lambda: remote(sshd, ["sleep", "300"]) and masters(sshd) and control_dirs(private_tmp)), \
            "the remote sleep never started"
        proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=PATIENCE)
    code = {"success": 0, "failure": 1, "timeout": 124, "sigterm": 143}[ending]
    assert proc.returncode == code, output
    assert sshd.authentications() - before == 1         # a master carried the run
    assert masters(sshd) == [], output
    assert control_dirs(private_tmp) == []


# ---------------------------------------------------------------- remote termination


@pytest.mark.parametrize("shared", [False, True], ids=["direct", "through-master"])
def test_a_remote_sleep_whose_task_times_out_is_gone_within_2_s(sshd, config, tasker, shared):
    host = "127.0.1.8" if shared else "127.0.1.9"
    commands = ["true", "sleep 300"] if shared else ["sleep 300"]
    proc = start(tasker, config, sequence(host, commands, timeout=5))
    assert wait_for(lambda: remote(sshd, ["sleep", "300"])), "the remote sleep never started"
    output, _ = proc.communicate(timeout=PATIENCE)
    assert proc.returncode == 124, output
    stopped = time.monotonic()
    while remote(sshd, ["sleep", "300"]) and time.monotonic() - stopped < GONE_WITHIN:
        time.sleep(0.02)
    assert remote(sshd, ["sleep", "300"]) == [], output


def test_ctrl_c_during_a_50_host_block_leaves_no_local_or_remote_process(sshd, config, tasker):
    hosts = loopback_hosts(50, first=3 * 256 + 1)
    text = (f"task=0\nhostname={hosts[0]}\ncommand=true\nexec=ssh\n\n"    # hosts[0] gets a master
            f"task=1\ntype=parallel\nhostnames={','.join(hosts)}\nmax_parallel=50\ncommand=sleep\n"
            "arguments=300\nexec=ssh\n")
    proc = start(tasker, config, text, "--skip-host-validation")
    assert wait_for(lambda: len(remote(sshd, ["sleep", "300"])) >= 50), "the 50 remote sleeps never all started"
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=PATIENCE)
    assert proc.returncode == 130, output

    def local_ssh():
        return processes_matching(lambda argv: os.path.basename(argv[0]) == "ssh" and bool(set(hosts) & set(argv))
                                  and _port_of(argv) == str(sshd.port))

    assert wait_for(lambda: not local_ssh() and not remote(sshd, ["sleep", "300"]), 10.0), \
        (local_ssh(), remote(sshd, ["sleep", "300"]))
    assert masters(sshd) == []


# ---------------------------------------------------------------- open files


def _with_open_files(soft: int, hard: int):
    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return limit


def _block(width: int) -> str:
    hosts = ",".join(f"h{i}" for i in range(width))
    return f"task=0\ntype=parallel\nhostnames={hosts}\nmax_parallel={width}\ncommand=sleep\narguments=0.5\nexec=local\n"


def test_a_wide_block_raises_the_soft_open_files_limit_to_the_hard_one(tasker, tmp_path):
    flow, out = tasker.write(_block(200)), tmp_path / "out.json"
    r = subprocess.run([sys.executable, "-m", "tasker", str(flow), "-r", "--output-json", str(out)],
                       capture_output=True, text=True, env=tasker.env(), cwd=tasker.tmp,
                       timeout=600,     # 180 s was not enough once beside four busy loops on 2 cores
                       preexec_fn=_with_open_files(256, 4096))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    members = {tid: v for tid, v in results(out).items() if int(tid) >= 100_000}
    assert len(members) == 200 and all(v["exit_code"] == 0 for v in members.values())


def test_too_low_a_hard_limit_fails_before_anything_runs_with_a_clear_message(tasker, tmp_path):
    flow = tasker.write(_block(200))
    r = subprocess.run([sys.executable, "-m", "tasker", str(flow), "-r"], capture_output=True, text=True,
                       env=tasker.env(), cwd=tasker.tmp, timeout=180, preexec_fn=_with_open_files(256, 256))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "200 tasks running at once need about" in r.stderr and "(hard limit 256)" in r.stderr
    assert "Traceback" not in r.stderr and "Executing" not in r.stdout


def test_a_block_of_1000_hosts_at_max_parallel_200_reports_every_host(sshd, tasker, tmp_path):
    import yaml

    # 200 handshakes at once on 2 busy cores can take long: a task's time limit includes its login
    config = sshd.exec_config(tmp_path / "types.yaml")
    data = yaml.safe_load(config.read_text())
    data["platforms"]["linux"]["default_timeout"] = 900
    data["platforms"]["linux"]["ssh"]["command_template"] = [
        "ConnectTimeout=600" if part.startswith("ConnectTimeout=") else part
        for part in data["platforms"]["linux"]["ssh"]["command_template"]]
    config.write_text(yaml.safe_dump(data))
    hosts = loopback_hosts(1000, first=4 * 256 + 1)
    out = tmp_path / "out.json"
    text = (f"task=0\ntype=parallel\nhostnames={','.join(hosts)}\nmax_parallel=200\ncommand=echo\n"
            "arguments=@task@\nexec=ssh\n")
    r = tasker.run(tasker.write(text), "--exec-config", config, "-r", "--skip-host-validation", "--output-json",
                   str(out), timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    members = {tid: v for tid, v in results(out).items() if int(tid) >= 100_000}
    assert len(members) == 1000
    assert all(v["exit_code"] == 0 and v["stdout"] == f"{tid}\n" for tid, v in members.items())


def test_a_runner_made_without_connections_runs_an_ssh_command_through_a_set_of_its_own(sshd, config):
    from tasker.runners.base import Cancel
    from tasker.runners.exectypes import ExecTypes, load_config
    from tasker.runners.process import ProcessRunner

    types = ExecTypes(environ={})
    types.use_config(load_config(str(config)))
    runner = ProcessRunner()                      # as an embedding program would make one
    result = runner.run(types.argv("ssh", loopback_hosts(1)[0], "echo", "hello there"), 60, Cancel())
    assert (result.exit_code, result.stdout.text().strip()) == (0, "hello there"), result.stderr.text()
    assert runner.connections is not None and not runner.connections.reused   # no shared master


def test_a_stop_cuts_short_the_wait_for_a_shared_connection_to_a_host_that_never_answers(sshd, tmp_path):
    import socket
    import threading

    from tasker.runners.base import Cancel
    from tasker.runners.exectypes import ExecTypes, load_config
    from tasker.runners.process import ProcessRunner
    from tasker.runners.ssh import Connections

    silent = socket.socket()            # accepts the connection, never says a word
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    try:
        types = ExecTypes(environ={})
        types.use_config(load_config(str(sshd.exec_config(tmp_path / "types.yaml", connect_timeout=60,
                                                          port=silent.getsockname()[1]))))
        host = loopback_hosts(1)[0]
        connections = Connections({host})
        cancel = Cancel()
        threading.Timer(0.5, cancel.set, args=(signal.SIGINT,)).start()
        began = time.monotonic()
        ProcessRunner(connections=connections).run(types.argv("ssh", host, "true", ""), 120, cancel)
        assert time.monotonic() - began < 30        # not the minute the handshake could take
        connections.close()
    finally:
        silent.close()
