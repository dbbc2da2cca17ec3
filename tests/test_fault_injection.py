"""Fault injection: kill -9 tasker at random moments of a workflow with a parallel block, resume.

20 kills of a 30-task workflow (10 top-level tasks, one of them a block of 20
members).  After every kill the recovery state tells which tasks completed;
none of them may run again, and no command of the killed run may outlive it
by more than a moment.  At the end every task has a successful result,
no process of the run is alive and no temporary file is left.  The kill times
come from a seeded generator: the seed is in every failure message
(``TASKER_FAULT_SEED=N`` replays it).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_isolation import processes_with, wait_gone

ROUNDS = 20
SEQ_BEFORE, BLOCK, SEQ_AFTER = range(0, 5), 5, range(6, 10)
MEMBERS = range(500, 520)
SLOW = (500, 510)          # members that run long enough for many kills to land while they run
# seconds after a kill by which no process of the run may be alive: the watchdog acts at once, but on
# a loaded 2-core machine it may wait seconds for a core (1.5 s failed once beside four busy loops)
GONE_WITHIN = 10.0


def task(tid: int, runs: Path) -> str:
    nap = 2.0 if tid in SLOW else 0.05
    return (f"task={tid}\nhostname=localhost\ncommand=sh\n"
            f"arguments=-c \"echo run >> {runs}/{tid}; sleep {nap}\"\nexec=local\n\n")


def workflow(runs: Path) -> str:
    text = "".join(task(t, runs) for t in SEQ_BEFORE)
    text += (f"task={BLOCK}\ntype=parallel\nmax_parallel=5\n"
             f"tasks={','.join(map(str, MEMBERS))}\nnext=all_success\n\n")
    text += "".join(task(t, runs) for t in SEQ_AFTER)
    return text + "".join(task(t, runs) for t in MEMBERS)


def counts(runs: Path) -> dict[int, int]:
    return {int(p.name): len(p.read_text().split()) for p in runs.iterdir()}


def completed(state_dir: Path) -> set[int]:
    """Tasks whose results the recovery state holds (they must never run again)."""
    states = list(state_dir.glob("*.recovery.json")) if state_dir.exists() else []
    if not states:
        return set()
    data = json.loads(states[0].read_text())
    done = {int(t) for t in data.get("task_results", {})}
    vm = data.get("vm", {})
    for section in ("fork_done", "members"):
        for pairs in vm.get(section, {}).values():
            done |= {int(sid) for sid, _record in pairs}
    return done


@pytest.mark.skipif(sys.platform != "linux", reason="needs /proc")
def test_random_kill_9_and_resume_never_reruns_a_completed_task(tasker):
    seed = int(os.environ.get("TASKER_FAULT_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    runs = tasker.tmp / "runs"
    runs.mkdir()
    flow = tasker.write(workflow(runs))
    out = tasker.tmp / "out" / "result.json"
    state_dir = tasker.home / "TASKER" / "recovery"
    marker = str(runs)
    args = [sys.executable, "-m", "tasker", str(flow), "-r", f"--output-json={out}", "--no-task-backup"]
    kills = 0
    finished_runs = 0
    while kills < ROUNDS:
        where = f"seed={seed} kill={kills}"
        before = counts(runs)
        done = completed(state_dir)
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=tasker.env(),
                                cwd=tasker.tmp)
        try:
            code = proc.wait(timeout=rng.uniform(0.15, 3.5))
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            code = proc.wait()
            alive = wait_gone(marker, GONE_WITHIN)
            for pid in alive:
                os.kill(pid, signal.SIGKILL)
            assert alive == [], f"{where}: commands of the killed run still alive: {alive}"
        after = counts(runs)
        rerun = sorted(t for t in done if after.get(t, 0) != before.get(t, 0))
        assert rerun == [], f"{where}: completed tasks ran again: {rerun}"
        if code == -signal.SIGKILL:
            kills += 1
            continue
        assert code == 0, f"{where}: exit {code}"
        finished_runs += 1
        check_complete(out, runs, where)
        for p in runs.iterdir():
            p.unlink()
    final = subprocess.run(args, capture_output=True, text=True, env=tasker.env(), cwd=tasker.tmp, timeout=120)
    where = f"seed={seed} final"
    assert final.returncode == 0, f"{where}: {final.stdout[-3000:]}{final.stderr[-2000:]}"
    if "Resuming from" in final.stdout or finished_runs == 0:
        check_complete(out, runs, where)
    left = processes_with(marker)
    if left:
        left = wait_gone(marker, 5.0)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    assert left == [], f"{where}: processes of the run still alive: {left}"
    leftovers = [n for n in os.listdir(state_dir) + os.listdir(out.parent) if n != out.name]
    assert leftovers == [], f"{where}: files left behind: {leftovers}"


def check_complete(out: Path, runs: Path, where: str) -> None:
    """Every task of the workflow has a successful result, and every command ran."""
    doc = json.loads(out.read_text())
    results = doc["task_results"]
    everything = [*SEQ_BEFORE, BLOCK, *SEQ_AFTER, *MEMBERS]
    lost = [t for t in everything if not results.get(str(t), {}).get("success")]
    assert lost == [], f"{where}: results lost or failed: {lost}"
    never = [t for t in everything if t != BLOCK and not (runs / str(t)).exists()]
    assert never == [], f"{where}: never ran: {never}"
    assert doc["workflow_metadata"]["exit_code"] == 0, where
