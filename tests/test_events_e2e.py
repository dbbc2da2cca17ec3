"""--events with real processes: the events, the JSON and the log tell the same story, at every ending."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time

from tasker.report.events import check_event, read_events

PY = sys.executable
SECRET = "hunter2-very-secret"


def flow_text(tmp) -> str:
    flaky = tmp / "flaky.py"
    flaky.write_text("import os, sys\n"
                     f"mark = {str(tmp / 'flaky.mark')!r}\n"
                     "if not os.path.exists(mark):\n"
                     "    open(mark, 'w').close()\n"
                     "    sys.stderr.write('first try fails\\n')\n"
                     "    sys.exit(4)\n"
                     "print('second try works')\n")
    broken = tmp / "broken.py"
    broken.write_text("import sys\nsys.stderr.write('member 102 broke: ' + sys.argv[1] + '\\n')\nsys.exit(3)\n")
    return (f"SECRET_TOKEN={SECRET}\n\n"
            f"task=0\nhostname=localhost\ncommand={PY}\narguments=-c \"print('round')\" @SECRET_TOKEN@\n"
            "exec=local\nnext=loop\nloop=2\n\n"
            "task=1\ntype=parallel\ntasks=100,101,102\nmax_parallel=2\nretry_count=1\nretry_delay=0\n"
            "on_success=2\non_failure=2\n\n"
            f"task=2\nhostname=localhost\ncommand={PY}\narguments=-c \"import time; time.sleep(60)\"\n"
            "exec=local\ntimeout=5\n\n"
            f"task=100\nhostname=localhost\ncommand={PY}\narguments=-c \"print(100)\"\nexec=local\n\n"
            f"task=101\nhostname=localhost\ncommand={PY}\narguments={flaky}\nexec=local\n\n"
            f"task=102\nhostname=localhost\ncommand={PY}\narguments={broken} @SECRET_TOKEN@\nexec=local\n")


def of(events, kind):
    return [e for e in events if e["event"] == kind]


def log_text(tasker) -> str:
    (path,) = list((tasker.home / "TASKER" / "log").glob("*.log"))
    return path.read_text()


def test_events_json_and_log_agree_for_blocks_retries_loops_and_a_timeout(tasker):
    flow = tasker.write(flow_text(tasker.tmp))
    events_path, json_path = tasker.tmp / "run.events", tasker.tmp / "run.json"
    r = tasker.run(flow, "-r", f"--events={events_path}", f"--output-json={json_path}", timeout=120)
    assert r.returncode == 124, r.stdout + r.stderr
    assert stat.S_IMODE(os.stat(events_path).st_mode) == 0o600
    raw = events_path.read_text()
    assert SECRET not in raw and "<masked len=" in raw
    events = read_events(str(events_path))
    for event in events:
        assert check_event(event) == [], event
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["event"] == "run_started" and events[-1]["event"] == "run_finished"
    data = json.loads(json_path.read_text())
    end = events[-1]
    assert (end["status"], end["exit_code"], end["reason"]) == ("failed", 124, "failure")
    assert end["exit_code"] == data["workflow_metadata"]["exit_code"]
    assert end["path"] == data["execution_summary"]["execution_path"] == [0, 1, 2]

    finished = of(events, "task_finished")
    # the JSON's timeline is the same facts, to the character
    assert data["timeline"] == [e for e in events if e["event"] in ("task_finished", "retry_scheduled",
                                                                     "block_finished")]
    runs = sorted((e["display"], e["attempt"], e["loop_round"], e["exit_code"]) for e in finished)
    assert runs == [("0.1", 1, 1, 0), ("0.2", 1, 2, 0), ("1-100.1", 1, None, 0), ("1-101.1", 1, None, 4),
                    ("1-101.2", 2, None, 0), ("1-102.1", 1, None, 3), ("1-102.2", 2, None, 3), ("2", 1, None, 124)]
    assert sorted((e["task"], e["attempt"]) for e in of(events, "retry_scheduled")) == [(101, 1), (102, 1)]
    (block,) = of(events, "block_finished")
    assert (block["succeeded"], block["failed"], block["total"]) == (2, 1, 3)
    timeout = next(e for e in finished if e["task"] == 2)
    assert timeout["timed_out"] and not timeout["success"]
    broke = [e for e in finished if e["task"] == 102]
    assert all(e["stderr_head"].startswith("member 102 broke: <masked len=") for e in broke)

    # the JSON's per-task times are the last run of each task
    results = data["task_results"]
    for task in (0, 2, 100, 101, 102):
        last = [e for e in finished if e["task"] == task][-1]
        assert (results[str(task)]["start_time"], results[str(task)]["end_time"]) == (last["start"], last["end"])
        assert results[str(task)]["exit_code"] == last["exit_code"]
    assert (results["1"]["start_time"], results["1"]["end_time"]) == (block["start"], block["end"])

    # the log shows every run the events report, with the same exit codes
    log = log_text(tasker)
    logged = re.findall(r"Task (\S+): Exit code: (-?\d+)", log)
    assert sorted(logged) == sorted((e["display"], str(e["exit_code"])) for e in finished)
    assert "Task 2: Timeout after 5 seconds" in log
    assert "broken.py <masked len=19>" in log     # command lines are masked in both


def test_validation_failure_still_writes_start_and_finish(tasker):
    flow = tasker.write("task=0\nhostname=localhost\ncommand=echo\nexec=local\nnext=bogus\n")
    events_path = tasker.tmp / "e.jsonl"
    r = tasker.run(flow, "-r", f"--events={events_path}")
    assert r.returncode == 20
    events = read_events(str(events_path))
    assert [e["event"] for e in events] == ["run_started", "run_finished"]
    assert (events[-1]["exit_code"], events[-1]["reason"], events[-1]["path"]) == (20, "validation", [])


def test_a_dry_run_reports_its_walk(tasker):
    flow = tasker.write("task=0\nhostname=localhost\ncommand=echo\nexec=local\n\n"
                        "task=1\nhostname=localhost\ncommand=false\nexec=local\n")
    events_path, json_path = tasker.tmp / "e.jsonl", tasker.tmp / "dry.json"
    r = tasker.run(flow, f"--events={events_path}", f"--output-json={json_path}")
    assert r.returncode == 0, r.stdout + r.stderr
    events = read_events(str(events_path))
    assert [e["task"] for e in events if e["event"] == "task_finished"] == [0, 1]
    end = events[-1]
    meta = json.loads(json_path.read_text())["workflow_metadata"]
    assert (end["status"], end["exit_code"]) == (meta["status"], meta["exit_code"]) == ("dry_run", 0)


def test_validate_only_ends_the_events_too(tasker):
    flow = tasker.write("task=0\nhostname=localhost\ncommand=echo\nexec=local\n")
    events_path = tasker.tmp / "e.jsonl"
    r = tasker.run(flow, "--validate-only", f"--events={events_path}")
    assert r.returncode == 0, r.stdout + r.stderr
    events = read_events(str(events_path))
    assert [e["event"] for e in events] == ["run_started", "run_finished"]
    assert (events[-1]["status"], events[-1]["exit_code"], events[-1]["reason"]) == ("success", 0, "not_run")


def test_an_events_file_that_cannot_be_written_is_a_clear_error(tasker):
    flow = tasker.write("task=0\nhostname=localhost\ncommand=echo\nexec=local\n")
    r = tasker.run(flow, "-r", f"--events={tasker.tmp / 'no' / 'such' / 'dir' / 'e.jsonl'}")
    assert r.returncode == 1
    assert "cannot write the events file" in r.stderr and "Traceback" not in r.stderr


def wait_for(predicate, what: str, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_ctrl_c_during_a_block_ends_the_events_json_and_log_alike(tasker):
    sleeper = "-c \"import time; time.sleep(60)\""
    flow = tasker.write("task=1\ntype=parallel\ntasks=100,101\nmax_parallel=2\n\n"
                        + "".join(f"task={t}\nhostname=localhost\ncommand={PY}\narguments={sleeper}\nexec=local\n\n"
                                  for t in (100, 101)))
    events_path, json_path = tasker.tmp / "run.events", tasker.tmp / "run.json"
    proc = subprocess.Popen([PY, "-m", "tasker", str(flow), "-r", f"--events={events_path}",
                             f"--output-json={json_path}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=tasker.env(), cwd=tasker.tmp)
    try:
        # the file is flushed per line: both members are seen starting while the run goes on
        wait_for(lambda: events_path.exists() and len(of(read_events(str(events_path)), "task_started")) == 2,
                 "both members to start")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, out + err
    events = read_events(str(events_path))
    end = events[-1]
    assert (end["event"], end["exit_code"], end["reason"], end["status"]) == ("run_finished", 130, "signal", "failed")
    cut = of(events, "task_finished")
    assert sorted(e["task"] for e in cut) == [100, 101]
    assert not any(e["success"] for e in cut)
    assert of(events, "block_finished") == []      # the block never joined
    data = json.loads(json_path.read_text())
    assert (data["workflow_metadata"]["status"], data["workflow_metadata"]["exit_code"]) == ("failed", 130)
    assert data["timeline"] == cut
    log = log_text(tasker)
    assert "Received SIGINT" in log
    assert sorted(re.findall(r"Task (1-10[01]): Exit code: (-?\d+)", log)) == sorted(
        (e["display"], str(e["exit_code"])) for e in cut)
