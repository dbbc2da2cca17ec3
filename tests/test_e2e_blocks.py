"""Blocks with real processes: concurrency, retries, and Ctrl-C/SIGTERM leaving nothing behind."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

RECORDER = """
import sys, time
log, tag, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
peers = int(sys.argv[4]) if len(sys.argv) > 4 else 0
with open(log, "a") as fh:
    fh.write(f"start {tag} {time.monotonic()}\\n")
# wait (boundedly) until `peers` members have started, so that a slow start on a loaded
# machine cannot hide the overlap the test looks for
deadline = time.monotonic() + 20
while peers and time.monotonic() < deadline and open(log).read().count("start") < peers:
    time.sleep(0.02)
time.sleep(seconds)
with open(log, "a") as fh:
    fh.write(f"end {tag} {time.monotonic()}\\n")
"""


def max_overlap(log_text: str) -> int:
    events = []
    for line in log_text.splitlines():
        kind, _tag, t = line.split()
        events.append((float(t), 1 if kind == "start" else -1))
    running = peak = 0
    for _t, delta in sorted(events, key=lambda e: (e[0], e[1])):
        running += delta
        peak = max(peak, running)
    return peak


def test_max_parallel_is_never_exceeded_and_is_reached(tasker):
    script = tasker.tmp / "rec.py"
    script.write_text(RECORDER)
    log = tasker.tmp / "events.log"
    members = "".join(f"task={100 + i}\nhostname=localhost\ncommand={sys.executable}\n"
                      f"arguments={script} {log} t{i} 0.3 4\nexec=local\n\n" for i in range(12))
    flow = tasker.write(f"task=1\ntype=parallel\ntasks={','.join(str(100 + i) for i in range(12))}\n"
                        f"max_parallel=4\nnext=never\n\n" + members)
    r = tasker.run(flow, "-r", "--skip-subtask-range-validation")
    assert r.returncode == 0, r.stdout + r.stderr
    peak = max_overlap(log.read_text())
    assert peak <= 4
    assert peak == 4


def test_retries_with_real_processes_wait_retry_delay_between_attempts(tasker):
    script = tasker.tmp / "flaky.py"
    stamps = tasker.tmp / "stamps"
    script.write_text(
        "import sys, time\n"
        f"open({str(stamps)!r}, 'a').write(f'{{time.monotonic()}}\\n')\n"
        "sys.exit(1)\n")
    flow = tasker.write(f"task=1\ntype=parallel\ntasks=100\nretry_count=2\nretry_delay=1\n\n"
                        f"task=100\nhostname=localhost\ncommand={sys.executable}\narguments={script}\nexec=local\n")
    r = tasker.run(flow, "-r")
    assert r.returncode == 10
    times = [float(x) for x in stamps.read_text().split()]
    assert len(times) == 3
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(times))
    assert "Task 1-100.3" in r.stdout


def test_json_lists_subtasks_per_block(tasker):
    flow = tasker.write("task=1\ntype=parallel\ntasks=100,101\nnext=never\n\n"
                        "task=100\nhostname=localhost\ncommand=true\nexec=local\n\n"
                        "task=101\nhostname=localhost\ncommand=true\nexec=local\n")
    out = tasker.tmp / "o.json"
    assert tasker.run(flow, "-r", f"--output-json={out}").returncode == 0
    summary = json.loads(out.read_text())["execution_summary"]
    assert summary["execution_path"] == [1]
    assert sorted(summary["subtasks"]["1"]) == [100, 101]


def processes_with(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if marker.encode() in fh.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def start_and_signal(tasker, flow, sig: int, marker: str, wait_for: int, extra=()):
    proc = subprocess.Popen([sys.executable, "-m", "tasker", str(flow), "-r", "--skip-subtask-range-validation",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=tasker.env(), cwd=tasker.tmp)
    deadline = time.monotonic() + 120    # 50 interpreters starting on a loaded 2-core machine
    while len(processes_with(marker)) < wait_for and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(processes_with(marker)) >= wait_for, "the commands did not start"
    signalled = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    start_and_signal.took = time.monotonic() - signalled   # from the signal to tasker's exit
    return proc.returncode, out, err


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_a_50_wide_block_leaves_no_child(tasker, sig, code):
    marker = f"tasker-test-{uuid.uuid4().hex}"
    sleeper = f"-c \"import time; time.sleep(60)\" {marker}"
    members = "".join(f"task={1000 + i}\nhostname=localhost\ncommand={sys.executable}\narguments={sleeper}\n"
                      f"exec=local\n\n" for i in range(50))
    flow = tasker.write(f"task=1\ntype=parallel\ntasks={','.join(str(1000 + i) for i in range(50))}\n"
                        f"max_parallel=50\nnext=never\n\n" + members)
    out_json = tasker.tmp / "o.json"
    rc, out, err = start_and_signal(tasker, flow, sig, marker, 50, [f"--output-json={out_json}"])
    assert rc == code, out + err
    assert start_and_signal.took < 20
    assert processes_with(marker) == []
    data = json.loads(out_json.read_text())
    assert data["workflow_metadata"]["status"] == "failed"
    assert data["execution_summary"]["execution_path"] == [1]


def test_signal_during_a_sequential_task_kills_its_process_group(tasker):
    marker = f"tasker-test-{uuid.uuid4().hex}"
    # the task starts a grandchild that ignores SIGTERM; both must be gone afterwards
    code = ("import signal, subprocess, sys, time; "
            f"subprocess.Popen([sys.executable, '-c', 'import signal,time; signal.signal(signal.SIGTERM, "
            f"signal.SIG_IGN); time.sleep(60)', '{marker}']); time.sleep(60)")
    flow = tasker.write(f"task=0\nhostname=localhost\ncommand={sys.executable}\narguments=-c \"{code}\" {marker}\n"
                        "exec=local\n\ntask=1\nhostname=localhost\ncommand=true\nexec=local\n")
    rc, out, err = start_and_signal(tasker, flow, signal.SIGTERM, marker, 2)
    assert rc == 143, out + err
    time.sleep(0.2)
    assert processes_with(marker) == []
