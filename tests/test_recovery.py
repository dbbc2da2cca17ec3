"""Checkpoint, resume and run records (docs/command-line.md; D15-D17).

The crash tests kill tasker with SIGKILL right after its k-th checkpoint
(``TASKER_TEST_KILL_AFTER_CHECKPOINT``), for every k of a run, and resume.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

KILL = "TASKER_TEST_KILL_AFTER_CHECKPOINT"


def appender(tid: int, out, extra: str = "") -> str:
    return (f"task={tid}\nhostname=localhost\ncommand={sys.executable}\n"
            f"arguments=-c \"open('{out}', 'a').write('{tid}\\n'){extra}\"\nexec=local\n\n")


def lines(path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def recovery_files(tasker) -> list:
    return list((tasker.home / "TASKER" / "recovery").glob("*.recovery.json"))


# ----------------------------------------------------------------- crash + resume, sequential


def test_kill_at_every_instruction_boundary_then_resume_runs_each_task_once(tasker):
    out = tasker.tmp / "out.txt"
    flow = tasker.write("".join(appender(i, out) for i in range(10)))
    k = 1
    kills = 0
    while True:
        out.unlink(missing_ok=True)
        for f in recovery_files(tasker):
            f.unlink()
        first = tasker.run(flow, "-r", "--auto-recovery", env={KILL: str(k)})
        if first.returncode != -signal.SIGKILL:
            assert first.returncode == 0
            break
        kills += 1
        second = tasker.run(flow, "-r", "--auto-recovery")
        assert second.returncode == 0, second.stdout[-2000:]
        counts = Counter(lines(out))
        assert sorted(counts) == sorted(str(i) for i in range(10)), (k, counts)
        twice = [t for t, n in counts.items() if n > 1]
        assert len(twice) <= 1, (k, counts)
        if twice:
            assert f"task {twice[0]} was running when the previous run stopped: it runs again" in second.stdout
        assert "Resuming from" in second.stdout
        assert recovery_files(tasker) == []
        k += 1
    assert kills >= 20   # every task: before, after its command, after its routing


def test_kill_in_the_middle_of_a_task_reruns_it_and_says_so(tasker):
    out = tasker.tmp / "out.txt"
    started = tasker.tmp / "started"
    slow = f"; open('{started}', 'w').write('x'); __import__('time').sleep(2)"
    flow = tasker.write(appender(0, out) + appender(1, out) + appender(2, out, slow) + appender(3, out))
    proc = subprocess.Popen([sys.executable, "-m", "tasker", str(flow), "-r", "--auto-recovery"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=tasker.env(), cwd=tasker.tmp)
    deadline = time.monotonic() + 30
    while not started.exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    time.sleep(2.2)   # the orphaned command of task 2 ends by itself
    r = tasker.run(flow, "-r", "--auto-recovery")
    assert r.returncode == 0
    assert lines(out) == ["0", "1", "2", "2", "3"]
    assert "task 2 was running when the previous run stopped: it runs again" in r.stdout


def test_kill_during_a_20_wide_parallel_block_reruns_only_unfinished_members(tasker):
    out = tasker.tmp / "out.txt"
    members = "".join(appender(100 + i, out) for i in range(20))
    flow = tasker.write(f"task=1\ntype=parallel\ntasks={','.join(str(100 + i) for i in range(20))}\n"
                        "max_parallel=20\nnext=never\n\n" + members)
    for k in (1, 3, 8, 15, 20):
        out.unlink(missing_ok=True)
        for f in recovery_files(tasker):
            f.unlink()
        first = tasker.run(flow, "-r", "--auto-recovery", "--skip-subtask-range-validation", env={KILL: str(k)})
        assert first.returncode == -signal.SIGKILL
        state = json.loads(recovery_files(tasker)[0].read_text())
        done_before = {str(sid) for sid, _rec in state["vm"]["fork_done"].get("1", [])}
        second = tasker.run(flow, "-r", "--auto-recovery", "--skip-subtask-range-validation")
        assert second.returncode == 0, second.stdout[-2000:]
        counts = Counter(lines(out))
        assert sorted(counts) == sorted(str(100 + i) for i in range(20))
        assert all(counts[sid] == 1 for sid in done_before), (k, done_before, counts)


# ----------------------------------------------------------------- D17: when the file stays


@pytest.mark.parametrize("last,kept,code", [
    ("next=never\n", False, 0),
    ("return=3\n", False, 3),
    ("success=exit_1\n", True, 1),
])
def test_state_file_is_deleted_at_a_defined_end_and_kept_after_a_failure(tasker, last, kept, code):
    flow = tasker.write("task=0\nhostname=localhost\ncommand=true\nexec=local\n\n"
                        f"task=1\nhostname=localhost\ncommand=true\nexec=local\n{last}")
    r = tasker.run(flow, "-r", "--auto-recovery")
    assert r.returncode == code
    assert bool(recovery_files(tasker)) is kept


def test_state_file_is_kept_after_a_signal_and_the_resume_reruns_the_cut_task(tasker):
    out = tasker.tmp / "out.txt"
    gate = tasker.tmp / "gate"
    gate.write_text("")
    slow = f"; import os, time; os.path.exists('{gate}') and time.sleep(30)"
    flow = tasker.write(appender(0, out) + appender(1, out, slow) + appender(2, out))
    proc = subprocess.Popen([sys.executable, "-m", "tasker", str(flow), "-r", "--auto-recovery"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=tasker.env(),
                            cwd=tasker.tmp)
    deadline = time.monotonic() + 30
    while lines(out) != ["0", "1"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert recovery_files(tasker)
    gate.unlink()
    r = tasker.run(flow, "-r", "--auto-recovery")
    assert r.returncode == 0, r.stdout[-2000:]
    assert "Resuming from" in r.stdout
    assert lines(out) == ["0", "1", "1", "2"]
    assert recovery_files(tasker) == []


def test_output_json_implies_recovery_and_reports_the_whole_path_after_a_resume(tasker):
    out = tasker.tmp / "out.txt"
    gate = tasker.tmp / "gate"
    flow = tasker.write(appender(0, out) + appender(1, out) +
                        f"task=2\nhostname=localhost\ncommand=test\narguments=-f {gate}\nexec=local\n\n" +
                        appender(3, out))
    j1, j2 = tasker.tmp / "one.json", tasker.tmp / "two.json"
    r = tasker.run(flow, "-r", f"--output-json={j1}")
    assert r.returncode == 1 and "--output-json turns on --auto-recovery" in r.stdout
    gate.write_text("")
    assert tasker.run(flow, "-r", f"--output-json={j2}").returncode == 0
    assert json.loads(j1.read_text())["execution_summary"]["execution_path"] == [0, 1, 2]
    assert json.loads(j2.read_text())["execution_summary"]["execution_path"] == [0, 1, 2, 2, 3]
    assert lines(out) == ["0", "1", "3"]


# ----------------------------------------------------------------- refusals (exit 12)


def failed_run(tasker):
    flow = tasker.write("X=$HOME\n\ntask=0\nhostname=localhost\ncommand=true\nexec=local\narguments=@X@\n\n"
                        "task=1\nhostname=localhost\ncommand=false\nexec=local\n")
    assert tasker.run(flow, "-r", "--auto-recovery").returncode == 1
    return flow


def test_a_changed_task_file_is_refused(tasker):
    flow = failed_run(tasker)
    flow.write_text(flow.read_text() + "\n# edited\n")
    r = tasker.run(flow, "-r", "--auto-recovery")
    assert r.returncode == 12
    assert "cannot resume: the task file" in r.stderr and "changed" in r.stderr
    assert "--start-from" in r.stderr and "--discard-recovery" in r.stderr


def test_a_corrupt_state_file_is_refused(tasker):
    flow = failed_run(tasker)
    recovery_files(tasker)[0].write_text("{not json")
    r = tasker.run(flow, "-r", "--auto-recovery")
    assert r.returncode == 12
    assert "is not valid JSON" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_a_state_file_of_another_shape_is_refused(tasker):
    flow = failed_run(tasker)
    recovery_files(tasker)[0].write_text('{"version": "9.9"}')
    r = tasker.run(flow, "-r", "--auto-recovery")
    assert r.returncode == 12 and "lacks" in r.stderr


def read_only_mount_prefix(directory) -> list[str] | None:
    """A command prefix that runs the rest with ``directory`` mounted read-only, in a private mount
    namespace (root ignores permission bits, not a read-only mount); None where that is not possible."""
    import shutil

    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    script = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" && exec "$@"'
    prefix = [unshare, "--mount", "sh", "-c", script, str(directory)]
    probe = subprocess.run([*prefix, "sh", "-c", 'touch "$0/probe"', str(directory)], capture_output=True)
    return prefix if probe.returncode != 0 and not os.path.exists(os.path.join(directory, "probe")) else None


def test_an_unwritable_state_directory_is_refused(tasker):
    flow = tasker.write("task=0\nhostname=localhost\ncommand=true\nexec=local\n")
    rec = tasker.home / "TASKER" / "recovery"
    rec.mkdir(parents=True)
    argv = [sys.executable, "-m", "tasker", str(flow), "-r", "--auto-recovery"]
    if os.geteuid() == 0:
        prefix = read_only_mount_prefix(rec)
        if prefix is None:
            pytest.skip("running as root without a private mount namespace: cannot make a directory unwritable")
        r = subprocess.run([*prefix, *argv], capture_output=True, text=True, env=tasker.env(), cwd=tasker.tmp,
                           timeout=60)
    else:
        rec.chmod(0o500)
        try:
            r = subprocess.run(argv, capture_output=True, text=True, env=tasker.env(), cwd=tasker.tmp, timeout=60)
        finally:
            rec.chmod(0o700)
    assert r.returncode == 12, r.stdout + r.stderr
    assert "cannot write the recovery state" in r.stderr
    assert list(rec.iterdir()) == []


def test_an_unwritable_state_location_is_refused(tasker):
    flow = tasker.write("task=0\nhostname=localhost\ncommand=true\nexec=local\n")
    blocker = tasker.tmp / "logs"
    blocker.mkdir()
    (blocker / "recovery").write_text("a file where the directory should be")
    r = tasker.run(flow, "-r", "--auto-recovery", "-l", str(blocker))
    assert r.returncode == 12 and "cannot write the recovery state" in r.stderr


def test_changed_environment_asks_and_eof_declines(tasker):
    flow = failed_run(tasker)
    r = tasker.run(flow, "-r", "--auto-recovery", env={"HOME": str(tasker.home), "X_DUMMY": "1"}, input="")
    # HOME is unchanged here (X_DUMMY is no global): no question, the resume runs task 1 again, which fails
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Resuming from" in r.stdout and "recovery declined" not in r.stderr
    other_home = str(tasker.home)
    r = tasker.run(flow, "-r", "--auto-recovery", "-l", str(tasker.home / "TASKER"),
                   env={"HOME": other_home + "/"}, input="")
    assert r.returncode == 12 and "recovery declined" in r.stderr
    r = tasker.run(flow, "-r", "--auto-recovery", "-y", "-l", str(tasker.home / "TASKER"),
                   env={"HOME": other_home + "/"})
    assert r.returncode == 1 and "Resuming from" in r.stdout


def test_show_recovery_info(tasker):
    flow = failed_run(tasker)
    r = tasker.run(flow, "--show-recovery-info")
    assert r.returncode == 0
    assert "would resume at task 1" in r.stdout and "failure:" in r.stdout
    other = tasker.write("task=0\nhostname=localhost\ncommand=true\nexec=local\n", "other.txt")
    assert "No recovery state" in tasker.run(other, "--show-recovery-info").stdout


# ----------------------------------------------------------------- alert (docs/command-line.md)


ALERT = """#!{python}
import os, sys
keys = ["TASKER_EXIT_CODE", "TASKER_ERROR", "TASKER_FAILED_TASK", "TASKER_TASK_FILE", "TASKER_LOG_FILE",
        "TASKER_STATE_FILE", "TASKER_TIMESTAMP"]
with open({out!r}, "w") as fh:
    for k in keys:
        fh.write(f"{{k}}={{os.environ.get(k, '<unset>')}}\\n")
print("alert ran")
"""


def alert_script(tasker):
    out = tasker.tmp / "alert.out"
    script = tasker.tmp / "alert.py"
    script.write_text(ALERT.format(python=sys.executable, out=str(out)))
    script.chmod(0o644)
    return script, out


def test_alert_runs_on_failure_with_its_environment(tasker):
    script, out = alert_script(tasker)
    flow = tasker.write("task=0\nhostname=localhost\ncommand=true\nexec=local\n\n"
                        "task=1\nhostname=localhost\ncommand=false\nexec=local\n")
    r = tasker.run(flow, "-r", f"--alert-on-failure={script}")
    assert r.returncode == 1
    env = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert env["TASKER_EXIT_CODE"] == "1" and env["TASKER_ERROR"] == "Last task failed"
    assert env["TASKER_FAILED_TASK"] == "1" and env["TASKER_TASK_FILE"] == str(flow)
    assert env["TASKER_LOG_FILE"].endswith(".log") and env["TASKER_STATE_FILE"] == ""
    assert oct(script.stat().st_mode & 0o777) == "0o700"
    assert "alert script stdout: alert ran" in r.stdout


def test_alert_on_validation_failure_and_not_on_success(tasker):
    script, out = alert_script(tasker)
    bad = tasker.write("task=0\nhostname=localhost\ncommand=true\ntimeout=x\n", "bad.txt")
    assert tasker.run(bad, "-r", f"--alert-on-failure={script}").returncode == 20
    assert "TASKER_ERROR=Task file validation failed" in out.read_text()
    out.unlink()
    good = tasker.write("task=0\nhostname=localhost\ncommand=true\nexec=local\n", "good.txt")
    assert tasker.run(good, "-r", f"--alert-on-failure={script}").returncode == 0
    assert not out.exists()


def test_missing_alert_script_warns_and_the_exit_code_stands(tasker):
    flow = tasker.write("task=0\nhostname=localhost\ncommand=false\nexec=local\n")
    r = tasker.run(flow, "-r", "--alert-on-failure=/no/such/script")
    assert r.returncode == 1 and "does not exist: alerting is off" in r.stdout


def test_alert_is_stopped_after_its_time_limit(monkeypatch, tmp_path):
    import io

    from tasker.report import alert
    from tasker.report.log import Log

    script = tmp_path / "slow.sh"
    script.write_text("#!/bin/sh\nsleep 30\n")
    script.chmod(0o700)
    monkeypatch.setattr(alert, "ALERT_TIMEOUT", 0.5)
    stream = io.StringIO()
    start = time.monotonic()
    alert.run_alert(str(script), exit_code=1, error="x", task=1, task_file="f", log_file="", state_file="",
                    log=Log("INFO", stream), environ=dict(os.environ))
    assert time.monotonic() - start < 3
    assert "killed after 0.5 seconds" in stream.getvalue()


# ----------------------------------------------------------------- instance check (docs/command-line.md)


def test_instance_lock_refuses_a_second_run_with_25(tasker):
    import fcntl

    from tasker.report.instance import instance_hash

    flow = tasker.write("task=0\nhostname=localhost\ncommand=true\nexec=local\n")
    digest = instance_hash(flow.read_bytes(), {})
    locks = tasker.home / "TASKER" / "locks"
    locks.mkdir(parents=True)
    path = locks / f"workflow_{digest}.lock"
    with open(path, "w") as fh:
        fh.write(json.dumps({"pid": 4242, "task_file": str(flow), "hostname": "elsewhere"}))
        fh.flush()
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = tasker.run(flow, "-r", "--instance-check")
        assert r.returncode == 25
        assert "already running" in r.stderr and "pid 4242" in r.stderr and "--force-instance" in r.stderr
        assert tasker.run(flow, "-r", "--instance-check", "--force-instance").returncode == 0
        assert tasker.run(flow, "--validate-only", "--instance-check").returncode == 0


def test_instance_lock_is_taken_and_released(tasker):
    flow = tasker.write("task=0\nhostname=localhost\ncommand=true\nexec=local\n")
    r = tasker.run(flow, "-r", "--instance-check")
    assert r.returncode == 0 and "Instance lock acquired" in r.stdout
    locks = tasker.home / "TASKER" / "locks"
    assert oct(locks.stat().st_mode & 0o777) == "0o700"
    assert list(locks.glob("*.lock")) == []
    assert "Instance lock acquired" not in tasker.run(flow, "--validate-only", "--instance-check").stdout


def test_instance_hash_depends_on_the_globals():
    from tasker.report.instance import instance_hash

    assert instance_hash(b"x", {"A": "1"}) != instance_hash(b"x", {"A": "2"})
    assert instance_hash(b"x", {"A": "1"}) == instance_hash(b"x", {"A": "1"})


# ----------------------------------------------------------------- project summary (docs/command-line.md)


def test_project_summary_rows(tasker):
    ok = tasker.write("task=0\nhostname=localhost\ncommand=echo\narguments=a\tb\nexec=local\n", "ok.txt")
    bad = tasker.write("task=0\nhostname=localhost\ncommand=false\nexec=local\n", "bad.txt")
    invalid = tasker.write("task=0\nhostname=localhost\ncommand=true\ntimeout=x\n", "invalid.txt")
    assert tasker.run(ok, "-r", "-p", "my.proj").returncode == 0
    assert tasker.run(bad, "-r", "-p", "my.proj").returncode == 1
    assert tasker.run(invalid, "-r", "-p", "my.proj").returncode == 20
    assert tasker.run(ok, "-p", "my.proj").returncode == 0        # a dry run adds no row (D24)
    rows = (tasker.home / "TASKER" / "project" / "my.summary").read_text().splitlines()
    assert rows[0] == "#Timestamp\tStatus\tExit_Code\tTask_File\tTask_ID\tHostname\tCommand\tLog_File"
    fields = [r.split("\t") for r in rows[1:]]
    assert [f[1:6] for f in fields] == [
        ["SUCCESS", "0", "ok.txt", "0", "localhost"],
        ["FAILURE", "1", "bad.txt", "0", "localhost"],
        ["FAILURE", "20", "invalid.txt", "-1", "localhost"],
    ]
    assert fields[0][6] == "echo a b" and fields[0][7].startswith("ok_") and fields[0][7].endswith(".log")
    assert fields[2][6] == "task_validation"
