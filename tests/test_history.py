"""Run history: what a real run records, the `tasker history` commands, and the store's guarantees."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time

import pytest

EXACT_FLOW = """\
SECRET_PW=hunter2

task=0
hostname=localhost
command=echo
arguments=hello @SECRET_PW@
exec=local

task=1
type=parallel
tasks=100,101
retry_failed=true
retry_count=2
retry_delay=0
next=always

task=100
hostname=localhost
command=sh
arguments=-c "echo oops >&2; exit 4"
exec=local

task=101
hostname=localhost
command=echo
arguments=member
exec=local

task=2
hostname=localhost
command=echo
arguments=round
exec=local
loop=3
next=loop

task=3
hostname=localhost
command=sh
arguments=-c "echo last; exit 3"
exec=local
"""


def simple_flow(code: int = 0) -> str:
    return ("task=0\nhostname=localhost\ncommand=echo\narguments=one\nexec=local\n\n"
            f"task=1\nhostname=localhost\ncommand=sh\narguments=-c \"exit {code}\"\nexec=local\n")


def history(tasker, *args: str, env: dict | None = None):
    r = tasker.run("history", *args, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) if "--json" in args else r.stdout


def show(tasker, run_id: str, env: dict | None = None) -> dict:
    return history(tasker, "show", run_id, "--json", env=env)


def only_run(tasker, env: dict | None = None) -> dict:
    runs = history(tasker, "--json", env=env)
    assert len(runs) == 1, runs
    return show(tasker, runs[0]["run_id"], env=env)


def db_path(tasker) -> str:
    return str(tasker.home / "TASKER" / "history.db")


# ---------------------------------------------------------------- what a run records


def test_a_run_with_a_block_a_retry_a_loop_and_a_failure_is_recorded_exactly(tasker):
    flow = tasker.write(EXACT_FLOW)
    out = tasker.tmp / "out.json"
    r = tasker.run(flow, "-r", "-p", "nightly", "--output-json", out)
    assert r.returncode == 3, r.stdout + r.stderr
    summary = json.loads(out.read_text())
    run = only_run(tasker)
    meta, exe = summary["workflow_metadata"], summary["execution_summary"]
    assert (run["status"], run["exit_code"], run["project"]) == ("failed", 3, "nightly")
    assert run["task_file"] == meta["task_file"]
    assert run["execution_path"] == exe["execution_path"] == [0, 1, 2, 3]
    assert run["final_task"] == exe["final_task"] == 3
    assert run["log_file"] == meta["log_file"]
    assert run["pid"] and run["host"] and run["username"] and run["version"]
    assert run["started"] <= run["finished"]

    rows = run["tasks"]
    # Every attempt and loop round has its row, in the order they finished (members may interleave).
    assert [(t["task_id"], t["attempt"]) for t in rows if t["block"] == 1 and t["task_id"] == 100] == \
        [(100, 1), (100, 2), (100, 3)]
    assert [(t["task_id"], t["loop_round"]) for t in rows if t["task_id"] == 2] == [(2, 1), (2, 2), (2, 3)]
    assert [t["task_id"] for t in rows if t["block"] is None] == [0, 1, 2, 2, 2, 3]
    assert len(rows) == 10
    # The last row of each task matches the JSON summary's record of it.
    last = {}
    for t in rows:
        last[t["task_id"]] = t
    assert sorted(last) == sorted(int(k) for k in summary["task_results"])
    for key, result in summary["task_results"].items():
        t = last[int(key)]
        assert (t["exit_code"], t["success"]) == (result["exit_code"], result["success"]), key
        if t["kind"] == "task":
            # both mask the secret's value; the size is the output's own, before masking
            assert t["stdout_head"] == result["stdout"], key
            assert t["stderr_head"] == result["stderr"], key
            own = result["stdout"].replace("<masked len=7>", "hunter2")
            assert t["stdout_size"] == len(own.encode())
            assert t["exec_type"] == "local" and t["host"] == "localhost"
            assert t["started"] <= t["finished"]
    assert last[1]["kind"] == "block" and last[1]["host"] == "parallel"
    assert last[100]["stderr_head"] == "oops\n" and not last[100]["timed_out"]
    assert last[3]["stdout_head"] == "last\n"


def test_secrets_are_masked_in_the_recorded_outputs_and_commands(tasker):
    flow = tasker.write(EXACT_FLOW)
    tasker.run(flow, "-r")
    run = only_run(tasker)
    first = run["tasks"][0]
    assert first["stdout_head"] == "hello <masked len=7>\n"
    assert first["command"] == "echo hello <masked len=7>"
    con = sqlite3.connect(db_path(tasker))
    dump = "\n".join(con.iterdump())
    con.close()
    assert "hunter2" not in dump
    for name in os.listdir(tasker.home / "TASKER"):
        if name.startswith("history.db"):
            assert b"hunter2" not in (tasker.home / "TASKER" / name).read_bytes()


def test_the_database_file_is_private_and_in_wal_mode(tasker):
    flow = tasker.write(simple_flow())
    os.umask(old := os.umask(0o022))
    try:
        assert tasker.run(flow, "-r").returncode == 0
    finally:
        os.umask(old)
    path = db_path(tasker)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        con.execute("SELECT COUNT(*) FROM runs").fetchone()   # opens the -wal and -shm files
        for suffix in ("-wal", "-shm"):
            if os.path.exists(path + suffix):
                assert stat.S_IMODE(os.stat(path + suffix).st_mode) == 0o600, suffix
    finally:
        con.close()


def test_no_history_and_dry_runs_record_nothing_and_history_db_chooses_the_file(tasker):
    flow = tasker.write(simple_flow())
    assert tasker.run(flow, "-r", "--no-history").returncode == 0
    assert tasker.run(flow).returncode == 0          # a dry run
    assert not os.path.exists(db_path(tasker))
    assert "No recorded runs" in history(tasker)
    other = tasker.tmp / "team" / "h.db"
    assert tasker.run(flow, "-r", "--history-db", other).returncode == 0
    assert not os.path.exists(db_path(tasker))
    assert len(history(tasker, "--json", "--history-db", str(other))) == 1
    assert len(history(tasker, "--json", env={"TASKER_HISTORY_DB": str(other)})) == 1
    assert tasker.run(flow, "-r", env={"TASKER_HISTORY_DB": str(other)}).returncode == 0
    assert len(history(tasker, "--json", "--history-db", str(other))) == 2


def test_an_unwritable_database_warns_once_and_the_run_goes_on(tasker):
    flow = tasker.write(simple_flow())
    blocker = tasker.tmp / "not-a-dir"
    blocker.write_text("")
    r = tasker.run(flow, "-r", "--history-db", blocker / "h.db")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    warnings = [line for line in r.stdout.splitlines() if "history" in line and "WARN" in line]
    assert len(warnings) == 1, r.stdout
    assert "cannot open the history database" in warnings[0]


def test_a_locked_database_warns_and_the_run_finishes(tasker):
    flow = tasker.write(simple_flow())
    path = tasker.tmp / "locked.db"
    assert tasker.run(flow, "-r", "--history-db", path).returncode == 0     # creates it
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        r = tasker.run(flow, "-r", "--history-db", path, timeout=120)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert "SUCCESS: workflow completed" in r.stdout
    assert [line for line in r.stdout.splitlines() if "history" in line and "WARN" in line]


def test_twenty_concurrent_runs_into_one_sqlite_file_lose_nothing(tasker):
    flows = [tasker.write(simple_flow(code=i % 2), name=f"flow{i}.txt") for i in range(20)]
    env = tasker.env({"TASKER_HISTORY_WAIT": "120"})   # a loaded machine may need more than 5 s at the end
    procs = [subprocess.Popen([sys.executable, "-m", "tasker", str(f), "-r", "-p", f"p{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                              cwd=tasker.tmp) for i, f in enumerate(flows)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [i % 2 for i in range(20)], outputs
    for out in outputs:
        assert "history" not in out, out      # no warning: nothing was dropped or refused
    runs = history(tasker, "--json")
    assert len(runs) == 20
    assert sorted(r["project"] for r in runs) == sorted(f"p{i}" for i in range(20))
    for run in runs:
        i = int(run["project"][1:])
        assert run["status"] == ("success" if i % 2 == 0 else "failed")
        assert run["exit_code"] == i % 2
        assert run["task_file"] == str(flows[i])
        tasks = show(tasker, run["run_id"])["tasks"]
        assert [(t["task_id"], t["exit_code"]) for t in tasks] == [(0, 0), (1, i % 2)]
    con = sqlite3.connect(db_path(tasker))
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()


def test_a_run_killed_with_kill_9_shows_as_interrupted(tasker):
    pidfile = tasker.tmp / "sleeper.pid"
    flow = tasker.write("task=0\nhostname=localhost\ncommand=true\nexec=local\n\n"
                        f"task=1\nhostname=localhost\ncommand=sh\narguments=-c 'echo $$ > {pidfile}; exec sleep 60'\n"
                        "exec=local\n")
    proc = subprocess.Popen([sys.executable, "-m", "tasker", str(flow), "-r"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=tasker.env(), cwd=tasker.tmp)
    try:
        deadline = time.monotonic() + 60
        while True:     # until the run and its task 0 are in the database
            runs = history(tasker, "--json") if os.path.exists(db_path(tasker)) else []
            if runs and show(tasker, runs[0]["run_id"])["tasks"]:
                break
            assert time.monotonic() < deadline, "the run never reached the database"
            time.sleep(0.05)
        assert runs[0]["status"] == "running"
        assert pidfile.exists() or time.monotonic() < deadline
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        while pidfile.exists() and not pidfile.read_text().strip():
            time.sleep(0.01)
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
    run = only_run(tasker)
    assert run["status"] == "interrupted"
    assert run["recorded_status"] == "running"
    assert run["finished"] is None
    assert [r["run_id"] for r in history(tasker, "--failed", "--json")] == [run["run_id"]]
    assert "interrupted" in history(tasker)


def test_a_live_pid_that_started_later_is_not_the_recorded_run():
    from tasker.history.query import effective_status
    from tasker.history.recorder import process_start

    me = os.getpid()
    here = {"status": "running", "host": "h", "pid": me, "pid_start": process_start(me)}
    assert effective_status(here, "h") == "running"
    assert effective_status({**here, "pid_start": "1"}, "h") == "interrupted"      # pid reused
    assert effective_status({**here, "host": "elsewhere", "pid_start": "1"}, "h") == "running"
    assert effective_status({**here, "status": "success"}, "h") == "success"


# ---------------------------------------------------------------- the commands


def backdate(tasker, project: str, days: float) -> None:
    con = sqlite3.connect(db_path(tasker))
    con.execute("UPDATE runs SET started = started - ?, finished = finished - ? WHERE project = ?",
                (days * 86400, days * 86400, project))
    con.commit()
    con.close()


def test_history_filters(tasker):
    ok = tasker.write(simple_flow(0), name="ok.txt")
    bad = tasker.write(simple_flow(1), name="bad.txt")
    for args in ((ok, "-p", "a"), (bad, "-p", "a"), (ok, "-p", "b"), (ok, "-p", "old")):
        tasker.run(*args, "-r")
    backdate(tasker, "old", 10)

    def ids(*args):
        return [(r["project"], r["status"]) for r in history(tasker, "--json", *args)]

    assert ids() == [("b", "success"), ("a", "failed"), ("a", "success"), ("old", "success")]
    assert ids("--failed") == [("a", "failed")]
    assert ids("--project", "a") == [("a", "failed"), ("a", "success")]
    assert ids(str(bad)) == [("a", "failed")]
    assert ids("ok.txt") == [("b", "success"), ("a", "success"), ("old", "success")]   # relative to cwd
    assert ids("--since", "7d") == [("b", "success"), ("a", "failed"), ("a", "success")]
    assert ids("--since", "2000-01-01") == ids()
    assert ids("--last", "2") == [("b", "success"), ("a", "failed")]
    assert ids("--project", "a", "--failed", str(bad)) == [("a", "failed")]
    table = history(tasker, "--last", "1").splitlines()
    assert table[0].split()[:4] == ["RUN", "STARTED", "DURATION", "STATUS"]
    assert len(table) == 2 and "success" in table[1] and str(ok) in table[1]


def test_history_prune_deletes_old_runs_and_their_tasks(tasker):
    flow = tasker.write(simple_flow())
    for project in ("old", "older", "new"):
        tasker.run(flow, "-r", "-p", project)
    backdate(tasker, "old", 31)
    backdate(tasker, "older", 400)
    r = tasker.run("history", "prune", "--older-than", "30d")
    assert r.returncode == 0 and "Deleted 2 runs" in r.stdout
    assert [run["project"] for run in history(tasker, "--json")] == ["new"]
    con = sqlite3.connect(db_path(tasker))
    assert con.execute("SELECT COUNT(DISTINCT run_id) FROM task_runs").fetchone()[0] == 1
    con.close()
    assert "Deleted 0 runs" in tasker.run("history", "prune", "--older-than", "1w").stdout


def test_history_show_accepts_a_unique_prefix_and_refuses_unknown_ids(tasker):
    flow = tasker.write(simple_flow(1))
    tasker.run(flow, "-r")
    run_id = history(tasker, "--json")[0]["run_id"]
    text = history(tasker, "show", run_id[:4])
    assert f"Run:          {run_id}" in text and "Status:       failed" in text
    assert "TASK" in text and "EXIT" in text
    for bad, message in (("ffffffffffff0", "no recorded run"), ("zz", "not a run id")):
        r = tasker.run("history", "show", bad)
        assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("args", [("--last", "0"), ("--since", "yesterday"), ("prune",),
                                  ("prune", "--older-than", "soon"), ("--bogus",)])
def test_history_usage_errors_exit_2(tasker, args):
    r = tasker.run("history", *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "usage: tasker history" in r.stderr and "Traceback" not in r.stderr


def test_report_renders_a_recorded_run_like_its_json_summary(tasker):
    flow = tasker.write(EXACT_FLOW)
    tasker.run(flow, "-r", "--output-json", tasker.tmp / "run.json")
    run_id = history(tasker, "--json")[0]["run_id"]
    from_history = tasker.run("report", run_id[:6], "-o", tasker.tmp / "h.html")
    assert from_history.returncode == 0, from_history.stderr
    from_json = tasker.run("report", tasker.tmp / "run.json", "-o", tasker.tmp / "j.html")
    assert from_json.returncode == 0, from_json.stderr
    page = (tasker.tmp / "h.html").read_text()
    for display in ("1-100.1", "1-100.2", "1-100.3", "1-101.1", "2.1", "2.2", "2.3"):
        assert f'data-display="{display}"' in page, display
    assert "FAILED" in page

    def bars(html: str) -> list[str]:
        import re

        return sorted(re.findall(r'data-display="([^"]+)"', html))

    assert bars(page) == bars((tasker.tmp / "j.html").read_text())


def test_report_of_an_unknown_run_id_says_so(tasker):
    r = tasker.run("report", "abcdef12")
    assert r.returncode == 1
    assert "neither a file nor a recorded run" in r.stderr and "Traceback" not in r.stderr


def test_only_the_history_sink_gets_the_output_heads(tasker):
    flow = tasker.write(EXACT_FLOW)
    tasker.run(flow, "-r", "--events", tasker.tmp / "events.jsonl")
    events = [json.loads(line) for line in (tasker.tmp / "events.jsonl").read_text().splitlines()]
    finished = [e for e in events if e["event"] == "task_finished"]
    assert finished and all("stdout_head" not in e for e in finished)
    rows = only_run(tasker)["tasks"]
    assert [r["display"] for r in rows if r["kind"] == "task"] == [e["display"] for e in finished]


def test_a_database_from_a_newer_tasker_is_refused_not_altered(tasker):
    flow = tasker.write(simple_flow())
    assert tasker.run(flow, "-r").returncode == 0
    con = sqlite3.connect(db_path(tasker))
    con.execute("INSERT INTO schema_version (version) VALUES (99)")
    con.commit()
    con.close()
    r = tasker.run("history")
    assert r.returncode == 1 and "schema version 99" in r.stderr and "Traceback" not in r.stderr
    run = tasker.run(flow, "-r")
    assert run.returncode == 0
    assert len([line for line in run.stdout.splitlines() if "schema version 99" in line]) == 1
    con = sqlite3.connect(db_path(tasker))
    assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
    con.close()
