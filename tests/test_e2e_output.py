"""Large outputs at constant memory (docs/taskfile.md, docs/exec-types.md): spill, use, clean up."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

FIVE_MB = 5 * 1024 * 1024
PRODUCER = (f"import sys; sys.stdout.write('a' * {FIVE_MB - 6}); sys.stdout.write('MARKER'); "
            "sys.stdout.flush()")


def task(tid: int, command: str, arguments: str, *extra: str) -> str:
    return "\n".join([f"task={tid}", "hostname=localhost", f"command={command}", f"arguments={arguments}",
                      "exec=local", *extra]) + "\n\n"


@pytest.fixture
def private_tmp(tasker):
    """A TMPDIR of the test's own, so 'nothing left behind' is checked without touching other runs."""
    path = tasker.tmp / "tmpdir"
    path.mkdir()
    return path


def leftovers(tmpdir) -> list[str]:
    return [str(p) for p in tmpdir.rglob("*")]


def test_spilled_output_feeds_later_tasks_and_conditions(tasker, private_tmp):
    producer = tasker.tmp / "produce.py"
    producer.write_text(PRODUCER)
    check = tasker.tmp / "check.py"
    check.write_text("import os, sys; print(len(sys.argv[1]), os.path.getsize(sys.argv[2]), "
                     "oct(os.stat(sys.argv[2]).st_mode & 0o777))")
    flow = tasker.write(
        task(0, sys.executable, str(producer), "success=stdout~MARKER")
        + task(1, sys.executable, f"{check} @0_stdout@ @0_stdout_file@", "next=never"))
    out = tasker.tmp / "o.json"
    r = tasker.run(flow, "-r", "-d", f"--output-json={out}", env={"TMPDIR": str(private_tmp)})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    lengths = json.loads(out.read_text())["task_results"]["1"]["stdout"].split()
    assert lengths == ["102400", str(FIVE_MB), "0o600"]
    assert "stdout spilled to" in r.stdout and f"({FIVE_MB} bytes)" in r.stdout
    data = json.loads(out.read_text())["task_results"]["0"]
    assert data["stdout_size"] == FIVE_MB and len(data["stdout"]) == 102_400
    assert leftovers(private_tmp) == []


def test_marker_at_the_very_end_of_a_spilled_output(tasker, private_tmp):
    producer = tasker.tmp / "produce.py"
    producer.write_text(PRODUCER)
    flow = tasker.write(task(0, sys.executable, str(producer), "success=stdout~MARKER&stdout_count=1",
                             "next=never"))
    r = tasker.run(flow, "-r", env={"TMPDIR": str(private_tmp)})
    assert r.returncode == 0, r.stdout[-2000:]


@pytest.mark.parametrize("ending,code", [("failure", 1), ("timeout", 124)])
def test_no_spill_file_remains_after_failure_or_timeout(tasker, private_tmp, ending, code):
    producer = tasker.tmp / "produce.py"
    body = PRODUCER + ("; import time; time.sleep(30)" if ending == "timeout" else "; sys.exit(1)")
    producer.write_text(body)
    extra = ("timeout=5",) if ending == "timeout" else ()
    flow = tasker.write(task(0, sys.executable, str(producer), *extra))
    r = tasker.run(flow, "-r", env={"TMPDIR": str(private_tmp)})
    assert r.returncode == code
    assert leftovers(private_tmp) == []


def test_no_spill_file_remains_after_sigterm(tasker, private_tmp):
    producer = tasker.tmp / "produce.py"
    producer.write_text(PRODUCER + "; import time; time.sleep(60)")
    flow = tasker.write(task(0, sys.executable, str(producer)))
    proc = subprocess.Popen([sys.executable, "-m", "tasker", str(flow), "-r"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=tasker.env({"TMPDIR": str(private_tmp)}), cwd=tasker.tmp)
    deadline = time.monotonic() + 30
    while not any(p.name.startswith("tasker_stdout_") for p in private_tmp.rglob("*")):
        assert time.monotonic() < deadline, "the output never spilled"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert leftovers(private_tmp) == []


def test_session_directory_is_private(tasker, private_tmp):
    producer = tasker.tmp / "produce.py"
    producer.write_text(PRODUCER + "; import time; time.sleep(60)")
    flow = tasker.write(task(0, sys.executable, str(producer)))
    proc = subprocess.Popen([sys.executable, "-m", "tasker", str(flow), "-r"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=tasker.env({"TMPDIR": str(private_tmp)}), cwd=tasker.tmp)
    try:
        deadline = time.monotonic() + 30
        spill = []
        while not spill:
            assert time.monotonic() < deadline
            spill = [p for p in private_tmp.rglob("tasker_stdout_*")]
            time.sleep(0.05)
        assert stat.S_IMODE(os.stat(spill[0]).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(spill[0].parent).st_mode) == 0o700
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_stale_session_of_a_killed_run_is_swept_but_live_ones_are_not(tasker, private_tmp):
    """The first spill of a run removes the session directories of runs that were killed."""
    dead = private_tmp / "tasker_session_999999999_abcd"
    dead.mkdir()
    (dead / "tasker_stdout_x").write_text("old")
    live = private_tmp / f"tasker_session_{os.getpid()}_efgh"
    live.mkdir()
    producer = tasker.tmp / "produce.py"
    producer.write_text(PRODUCER)
    flow = tasker.write(task(0, sys.executable, str(producer)))
    assert tasker.run(flow, "-r", env={"TMPDIR": str(private_tmp)}).returncode == 0
    assert not dead.exists() and live.exists()
