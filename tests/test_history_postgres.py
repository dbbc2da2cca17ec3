"""Run history in PostgreSQL: the same schema and commands as SQLite, against a real private server."""

from __future__ import annotations

import json
import subprocess
import sys

from test_history import EXACT_FLOW, simple_flow


def pg(tasker, url: str, *args: str):
    r = tasker.run("history", *args, env={"TASKER_HISTORY_DB": url})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) if "--json" in args else r.stdout


def test_a_run_is_recorded_in_postgresql_like_in_sqlite(tasker, postgres_url):
    flow = tasker.write(EXACT_FLOW)
    out = tasker.tmp / "out.json"
    r = tasker.run(flow, "-r", "-p", "team", "--output-json", out, env={"TASKER_HISTORY_DB": postgres_url})
    assert r.returncode == 3, r.stdout + r.stderr
    assert "history" not in r.stdout
    assert not (tasker.home / "TASKER" / "history.db").exists()
    summary = json.loads(out.read_text())
    runs = pg(tasker, postgres_url, "--json")
    assert [(run["project"], run["status"], run["exit_code"]) for run in runs] == [("team", "failed", 3)]
    run = pg(tasker, postgres_url, "show", runs[0]["run_id"], "--json")
    assert run["execution_path"] == summary["execution_summary"]["execution_path"]
    last = {}
    for t in run["tasks"]:
        last[t["task_id"]] = t
    assert sorted(last) == sorted(int(k) for k in summary["task_results"])
    for key, result in summary["task_results"].items():
        assert (last[int(key)]["exit_code"], last[int(key)]["success"]) == (result["exit_code"], result["success"])
    assert [(t["task_id"], t["attempt"]) for t in run["tasks"] if t["task_id"] == 100] == [(100, 1), (100, 2),
                                                                                          (100, 3)]
    assert run["tasks"][0]["stdout_head"] == "hello <masked len=7>\n"
    report = tasker.run("report", runs[0]["run_id"], "-o", tasker.tmp / "r.html",
                        env={"TASKER_HISTORY_DB": postgres_url})
    assert report.returncode == 0, report.stderr
    assert 'data-display="1-100.3"' in (tasker.tmp / "r.html").read_text()


def test_concurrent_runs_filters_and_prune_in_postgresql(tasker, postgres_url):
    flows = [tasker.write(simple_flow(code=i % 2), name=f"flow{i}.txt") for i in range(10)]
    env = tasker.env({"TASKER_HISTORY_DB": postgres_url, "TASKER_HISTORY_WAIT": "120"})   # loaded machines
    procs = [subprocess.Popen([sys.executable, "-m", "tasker", str(f), "-r", "-p", f"p{i}"], text=True, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tasker.tmp)
             for i, f in enumerate(flows)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [i % 2 for i in range(10)], outputs
    assert all("history" not in out for out in outputs), outputs
    runs = pg(tasker, postgres_url, "--json")
    assert sorted(run["project"] for run in runs) == sorted(f"p{i}" for i in range(10))
    assert sorted(run["project"] for run in pg(tasker, postgres_url, "--failed", "--json")) == \
        sorted(f"p{i}" for i in range(1, 10, 2))
    assert [run["project"] for run in pg(tasker, postgres_url, "--project", "p3", "--json")] == ["p3"]
    assert [run["project"] for run in pg(tasker, postgres_url, str(flows[4]), "--json")] == ["p4"]
    assert len(pg(tasker, postgres_url, "--last", "3", "--json")) == 3
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE runs SET started = started - 40 * 86400 WHERE project IN ('p0', 'p1')")
    assert "Deleted 2 runs" in pg(tasker, postgres_url, "prune", "--older-than", "30d")
    assert len(pg(tasker, postgres_url, "--json")) == 8
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert conn.execute("SELECT COUNT(DISTINCT run_id) FROM task_runs").fetchone()[0] == 8
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == 1


def test_an_unreachable_postgresql_server_warns_and_the_run_goes_on(tasker, postgres_server):
    from pgserver import free_port

    flow = tasker.write(simple_flow())
    url = f"postgresql://tasker:s3cret@127.0.0.1:{free_port()}/postgres"
    r = tasker.run(flow, "-r", env={"TASKER_HISTORY_DB": url})
    assert r.returncode == 0, r.stdout + r.stderr
    warnings = [line for line in r.stdout.splitlines() if "history" in line and "WARN" in line]
    assert len(warnings) == 1 and "cannot connect" in warnings[0], r.stdout
    assert "s3cret" not in r.stdout + r.stderr
