"""The shipped slurm exec type against a real single-node Slurm (the ``slurm`` fixture, tests/slurm.py).

tasker finds the cluster through ``SLURM_CONF`` in its environment, as a site's
clients find ``/etc/slurm/slurm.conf``.  The node is this machine, so a script
in the test's directory can record what the step saw and when it ran.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time

GONE_WITHIN = 5.0          # seconds after tasker ends in which its jobs must have left the queue
STAMPS = """#!/bin/sh
# records: start TAG TIME / end TAG TIME, with the node's clock
echo "start $1 $(date +%s.%N)" >> "$2"
sleep "$3"
echo "end $1 $(date +%s.%N)" >> "$2"
"""


def run(tasker, slurm, text, *args, timeout=300):
    return tasker.run(tasker.write(text), *args, env=slurm.environ, timeout=timeout)


def results(path) -> dict:
    return json.loads(path.read_text())["task_results"]


def wait_gone(slurm, prefix: str, limit: float) -> tuple[bool, list]:
    deadline = time.monotonic() + limit
    left = []
    while True:
        left = [job for job in slurm.jobs() if job[1].startswith(prefix)]
        if not left or time.monotonic() > deadline:
            return not left, left
        time.sleep(0.1)


def wait_running(slurm, proc: subprocess.Popen, limit: float = 120) -> tuple[str, str]:
    """(id, run prefix) of the first tasker job to be RUNNING (tasker must still run meanwhile)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for job_id, name, state in slurm.jobs():
            if name.startswith("tasker-") and state == "RUNNING":
                return job_id, name.split("-")[0] + "-" + name.split("-")[1] + "-"
        time.sleep(0.1)
    raise AssertionError(f"no tasker job ran within {limit} s: {slurm.jobs()}")


def start(tasker, slurm, text, *args) -> subprocess.Popen:
    flow = tasker.write(text)
    return subprocess.Popen([sys.executable, "-m", "tasker", str(flow), *args], cwd=tasker.tmp,
                            env=tasker.env(slurm.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def test_a_sequence_of_slurm_tasks_routes_on_their_output(slurm, tasker, tmp_path):
    out = tmp_path / "out.json"
    text = f"""
        task=0
        hostname={slurm.node}
        command=sh
        arguments=-c "echo ready; echo 'to stderr' >&2; exit 3"
        exec=slurm
        success=exit_3&stdout~ready&stderr~stderr
        on_success=1
        on_failure=9

        task=1
        hostname=any
        command=echo
        arguments=got @0_stdout@
        exec=slurm
        success=stdout~got ready

        task=2
        hostname={slurm.node}
        command=sh
        arguments=-c "exit 4"
        exec=slurm
        success=exit_4
        on_success=3
        on_failure=9

        task=3
        hostname=any
        command=uname
        arguments=-n
        exec=slurm
        next=never

        task=9
        hostname=localhost
        command=false
        exec=local
        """
    r = run(tasker, slurm, text, "-r", "--output-json", out)
    assert r.returncode == 0, r.stdout + r.stderr
    got = results(out)
    # stdout, stderr and exit code are the command's own: no "srun: error: ... Exited with exit code 3"
    assert (got["0"]["exit_code"], got["0"]["stdout"], got["0"]["stderr"]) == (3, "ready\n", "to stderr\n")
    assert got["1"]["stdout"] == "got ready\n"
    assert (got["2"]["exit_code"], got["2"]["stderr"]) == (4, "")
    assert got["3"]["stdout"].strip() == slurm.node
    assert "9" not in got
    assert f"--nodelist={slurm.node}" in r.stdout


def test_hostile_words_reach_the_program_unchanged(slurm, tasker, tmp_path):
    out = tmp_path / "out.json"
    words = ["a  b", "it's", 'say "hi"', "$TASKER_TEST_UNSET", "x; y", "a;b", "*", "~", "a|b", "", " lead",
             "line one\nline two"]
    text = r"""
        task=0
        hostname=localhost
        command=printf
        arguments="line one\nline two"
        exec=local

        task=1
        hostname=any
        command=printf
        arguments="<%s>\n" "a  b" "it's" 'say "hi"' $TASKER_TEST_UNSET "x; y" a\;b '*' ~ "a|b" "" \ lead "@0_stdout@"
        exec=slurm
        """
    r = run(tasker, slurm, text, "-r", "--output-json", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert results(out)["1"]["stdout"] == "".join(f"<{w}>\n" for w in words)


def test_a_50_member_block_at_max_parallel_10_runs_50_steps_at_most_10_at_once(slurm, tasker, tmp_path):
    script = tmp_path / "stamps.sh"
    script.write_text(STAMPS)
    script.chmod(0o755)
    log = tmp_path / "events.log"
    members = "".join(f"task={100 + i}\nhostname=any\ncommand={script}\narguments=m{i} {log} 1\nexec=slurm\n\n"
                      for i in range(50))
    text = (f"task=1\ntype=parallel\ntasks={','.join(str(100 + i) for i in range(50))}\nmax_parallel=10\n\n"
            "task=2\nhostname=localhost\ncommand=echo\narguments=@1_success_count@ of @1_total_count@\n"
            f"exec=local\nnext=never\n\n{members}")
    seen: list[int] = []
    stop = threading.Event()

    def watch_queue() -> None:    # jobs queued or running at once, as Slurm sees them
        while not stop.is_set():
            out = slurm.run("squeue", "-h", "-t", "PD,R", "-o", "%j").stdout.split()
            seen.append(sum(1 for name in out if name.startswith("tasker-")))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch_queue, daemon=True)
    watcher.start()
    out = tmp_path / "out.json"
    try:
        r = run(tasker, slurm, text, "-r", "--skip-subtask-range-validation", "--output-json", out, timeout=600)
    finally:
        stop.set()
        watcher.join(30)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert results(out)["2"]["stdout"] == "50 of 50\n"
    events = []
    for line in log.read_text().splitlines():
        kind, _tag, stamp = line.split()
        events.append((float(stamp), 1 if kind == "start" else -1))
    assert sum(1 for _t, d in events if d == 1) == 50
    running = peak = 0
    for _t, delta in sorted(events):
        running += delta
        peak = max(peak, running)
    assert 2 <= peak <= 10, peak
    assert max(seen, default=0) <= 10, seen


def test_a_timeout_cancels_the_job_on_the_cluster(slurm, tasker):
    text = f"task=0\nhostname={slurm.node}\ncommand=sleep\narguments=300\ntimeout=5\nexec=slurm\n"
    r = run(tasker, slurm, text, "-r", "--log-level=DEBUG")
    assert r.returncode == 124, r.stdout + r.stderr
    assert "Timeout after 5 seconds" in r.stdout
    names = re.findall(r"Slurm job (tasker-[0-9a-f]+-)\S+, time limit 1 min", r.stdout)
    assert names, r.stdout
    assert f"sent SIGKILL to Slurm job {names[0]}" in r.stdout
    gone, left = wait_gone(slurm, names[0], GONE_WITHIN)
    assert gone, left


def test_sigterm_cancels_the_running_job_on_the_cluster(slurm, tasker):
    text = f"task=0\nhostname={slurm.node}\ncommand=sleep\narguments=300\nexec=slurm\n"
    proc = start(tasker, slurm, text, "-r")
    try:
        _job, prefix = wait_running(slurm, proc)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, output
    gone, left = wait_gone(slurm, prefix, GONE_WITHIN)
    assert gone, left


def test_a_resume_after_kill_9_cancels_the_old_job_and_reruns_the_step(slurm, tasker, tmp_path):
    script = tmp_path / "step.sh"
    script.write_text(f"#!/bin/sh\nif [ -f {tmp_path}/flag ]; then echo second; exit 0; fi\n"
                      f"touch {tmp_path}/started\nexec sleep 300\n")
    script.chmod(0o755)
    text = f"task=0\nhostname={slurm.node}\ncommand={script}\nexec=slurm\n"
    proc = start(tasker, slurm, text, "-r", "--auto-recovery")
    try:
        old, prefix = wait_running(slurm, proc)
        deadline = time.monotonic() + 120
        while not (tmp_path / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.kill()                       # no chance to cancel anything
        proc.wait()
        time.sleep(1)
        assert (old, "RUNNING") in [(job[0], job[2]) for job in slurm.jobs()]     # the step outlived tasker
        (tmp_path / "flag").write_text("")
        out = tmp_path / "out.json"
        r = run(tasker, slurm, text, "-r", "--auto-recovery", "--output-json", out)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Cancelled 1 Slurm job(s) still queued or running from the previous attempt" in r.stdout
    assert f"(run {prefix.split('-')[1]}): {old}" in r.stdout
    assert "task 0 was running when the previous run stopped: it runs again" in r.stdout
    assert results(out)["0"]["stdout"] == "second\n"
    gone, left = wait_gone(slurm, prefix, GONE_WITHIN)
    assert gone, left


def test_an_unknown_node_fails_host_validation_with_21(slurm, tasker):
    text = "task=0\nhostname=no-such-node\ncommand=true\nexec=slurm\n"
    r = run(tasker, slurm, text, "-r")
    assert r.returncode == 21, r.stdout + r.stderr
    assert "no-such-node" in r.stdout + r.stderr
    assert "not a node of the Slurm cluster" in r.stdout


def test_a_drained_node_fails_host_validation_with_61_and_any_needs_a_node_that_is_up(slurm, tasker):
    drain = slurm.run("scontrol", "update", f"nodename={slurm.node}", "state=drain", "reason=tasker-test")
    assert drain.returncode == 0, drain.stderr
    try:
        r = run(tasker, slurm, f"task=0\nhostname={slurm.node}\ncommand=true\nexec=slurm\n", "-r")
        assert r.returncode == 61, r.stdout + r.stderr
        assert "node is not up (sinfo state: drain)" in r.stdout
        r = run(tasker, slurm, "task=0\nhostname=any\ncommand=true\nexec=slurm\n", "-r")
        assert r.returncode == 61, r.stdout + r.stderr
        assert "no node is up" in r.stdout
    finally:
        slurm.run("scontrol", "update", f"nodename={slurm.node}", "state=resume")
    # on a loaded machine slurmd may answer late (state idle*): wait for the node, as a site would
    assert slurm.wait_idle(), "the node did not come back after state=resume"
    r = run(tasker, slurm, f"task=0\nhostname={slurm.node}\ncommand=true\nexec=slurm\n", "-r")
    assert r.returncode == 0, r.stdout + r.stderr


def test_srun_failures_exit_255_with_sruns_message_as_stderr(slurm, tasker, tmp_path):
    config = tmp_path / "types.yaml"
    config.write_text("platforms:\n  linux:\n    slurm:\n      binary: srun\n      runner: slurm\n"
                      "      slurm:\n        partition: no-such-partition\n")
    out = tmp_path / "out.json"
    r = run(tasker, slurm, "task=0\nhostname=any\ncommand=true\nexec=slurm\n", "-r", "--skip-host-validation",
            "--exec-config", config, "--output-json", out)
    assert r.returncode == 255, r.stdout + r.stderr
    assert "invalid partition" in results(out)["0"]["stderr"].lower()
