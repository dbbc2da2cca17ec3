"""Host validation (docs/command-line.md, docs/exec-types.md, D20) with stand-in exec types.

The exec types here run ``fakeremote HOST COMMAND ARGS...``: a script that logs
``HOST COMMAND ARGS`` to a file and then runs the command locally, like a
remote-execution tool would on HOST.  So the tests see which validation tests
ran, for which host, and how often.  ssh against a real sshd: test_ssh.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasker.cli.hostcheck import POOL
from tasker.report.private import pid_alive

FAKEREMOTE = """#!/bin/sh
host=$1; shift
echo "$host $*" >> "{log}"
if [ "$1" = sleep ]; then echo $$ >> "{pids}"; fi
if [ -n "{gauge}" ]; then
    # Concurrency gauge: stay in the check until {gauge_pool} checks are in flight together, or every
    # one of the {gauge_total} checks has started, or 10 s passed; record start and end times.
    mkdir -p "{gauge}"; start=$(date +%s.%N); touch "{gauge}/$$"; echo $$ >> "{gauge}.started"
    waited=0
    while [ "$(ls "{gauge}" | wc -l)" -lt {gauge_pool} ] && [ "$(wc -l < "{gauge}.started")" -lt {gauge_total} ] \
            && [ $waited -lt 200 ]; do
        sleep 0.05; waited=$((waited + 1))
    done
    ls "{gauge}" | wc -l >> "{gauge}.counts"
    rm -f "{gauge}/$$"; echo "$start $(date +%s.%N)" >> "{gauge}.times"
fi
exec "$@"
"""

TYPES = """
platforms:
  linux:
    default_validation_timeout: 10
    fake:
      binary: {script}
      command_template: ["{{binary}}", "{{hostname}}", "{{command}}", "{{arguments_split}}"]
      validation_test: {{command: echo, arguments: OK, expected_exit: 0, expected_output: OK}}
    fake2:
      binary: {script}
      command_template: ["{{binary}}", "{{hostname}}", "{{command}}", "{{arguments_split}}"]
      validation_test: {{command: echo, arguments: OK2, expected_output: OK2}}
    failing:
      binary: {script}
      command_template: ["{{binary}}", "{{hostname}}", "{{command}}", "{{arguments_split}}"]
      validation_test: {{command: "false", expected_exit: 0}}
    wrongoutput:
      binary: {script}
      command_template: ["{{binary}}", "{{hostname}}", "{{command}}", "{{arguments_split}}"]
      validation_test: {{command: echo, arguments: NOPE, expected_exit: 0, expected_output: OK}}
    hanging:
      binary: {script}
      command_template: ["{{binary}}", "{{hostname}}", "{{command}}", "{{arguments_split}}"]
      validation_test: {{command: sleep, arguments: "60", expected_exit: 0, timeout: 2}}
    hanging_long:
      binary: {script}
      command_template: ["{{binary}}", "{{hostname}}", "{{command}}", "{{arguments_split}}"]
      validation_test: {{command: sleep, arguments: "60", expected_exit: 0, timeout: 300}}
    notest:
      binary: {script}
      command_template: ["{{binary}}", "{{hostname}}", "{{command}}", "{{arguments_split}}"]
    missing:
      binary: /no/such/remote-tool
      command_template: ["{{binary}}", "{{hostname}}", "{{command}}", "{{arguments_split}}"]
      validation_test: {{command: echo, arguments: OK, expected_output: OK}}
{hooks}
"""


class Remote:
    """A stand-in remote-execution tool plus an exec-type config that uses it."""

    def __init__(self, tmp: Path, tasker) -> None:
        self.tmp = tmp
        self.tasker = tasker
        self.log = tmp / "remote.log"
        self.pids = tmp / "remote.pids"
        self.script = tmp / "fakeremote"
        self.gauge = ""
        self.config = tmp / "types.yaml"
        self.configure()

    def configure(self, hooks: str = "", gauge: str = "", gauge_total: int = 0) -> None:
        self.script.write_text(FAKEREMOTE.format(log=self.log, pids=self.pids, gauge=gauge, gauge_pool=POOL,
                                                 gauge_total=gauge_total))
        self.script.chmod(0o755)
        self.config.write_text(TYPES.format(script=self.script, hooks=hooks))

    def calls(self) -> list[str]:
        return sorted(self.log.read_text().splitlines()) if self.log.exists() else []

    def run(self, text: str, *args: str, env: dict | None = None, timeout: float = 60):
        flow = self.tasker.write(text)
        return self.tasker.run(flow, "--exec-config", self.config, *args, env=env, timeout=timeout)


@pytest.fixture
def remote(tmp_path, tasker) -> Remote:
    return Remote(tmp_path, tasker)


def task(tid: int, host: str, exec_type: str, command: str = "echo", arguments: str = "hi") -> str:
    return f"task={tid}\nhostname={host}\ncommand={command}\narguments={arguments}\nexec={exec_type}\n\n"


def wait_gone(pids: list[int], seconds: float = 5) -> list[int]:
    deadline = time.monotonic() + seconds
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if pid_alive(p)]


# ----------------------------------------------------------------- passing


def test_validation_passes_and_runs_each_test_once_per_host_and_exec_type(remote):
    flow = (task(0, "127.0.0.1", "fake") + task(1, "127.0.0.1", "fake") + task(2, "127.0.0.1", "fake2")
            + task(3, "localhost", "fake") + task(4, "no-such-host.invalid", "local"))
    r = remote.run(flow, "--validate-only")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Host validation passed" in r.stdout
    assert remote.calls() == ["127.0.0.1 echo OK", "127.0.0.1 echo OK2", "localhost echo OK"]


def test_an_exec_type_without_validation_test_passes_after_name_resolution(remote):
    r = remote.run(task(0, "localhost", "notest"), "--validate-only")
    assert r.returncode == 0, r.stdout + r.stderr
    assert remote.calls() == []


def test_local_tasks_are_never_validated(remote):
    r = remote.run(task(0, "no-such-host.invalid", "local"), "--validate-only")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Validating" not in r.stdout


def test_host_validation_runs_in_dry_runs_before_anything_else(remote):
    r = remote.run(task(0, "127.0.0.1", "failing") + task(1, "127.0.0.1", "local", "echo", "ran"))
    assert r.returncode == 61
    assert "DRY RUN" not in r.stdout


def test_a_real_run_validates_then_runs_on_the_host(remote):
    r = remote.run(task(0, "127.0.0.1", "fake", "echo", "hello"), "-r")
    assert r.returncode == 0, r.stdout + r.stderr
    assert remote.calls() == ["127.0.0.1 echo OK", "127.0.0.1 echo hello"]


# ----------------------------------------------------------------- failures and their exit codes


def test_a_name_that_does_not_resolve_exits_21_and_names_the_host(remote):
    r = remote.run(task(0, "no-such-host.invalid", "fake"), "--validate-only")
    assert r.returncode == 21
    assert "name does not resolve for no-such-host.invalid" in r.stderr
    assert "no-such-host.invalid" in r.stdout          # the log line with the detail
    assert remote.calls() == []                        # no connection test for an unknown name


def test_a_failing_validation_test_exits_61_naming_host_and_exec_type(remote):
    r = remote.run(task(0, "127.0.0.1", "failing"), "--validate-only")
    assert r.returncode == 61
    assert "connection test failed for 127.0.0.1" in r.stderr
    assert "127.0.0.1: connection test failed: failing: exit code 1, expected 0" in r.stdout
    assert remote.calls() == ["127.0.0.1 false"]


def test_validation_test_output_must_contain_expected_output(remote):
    r = remote.run(task(0, "127.0.0.1", "wrongoutput"), "--validate-only")
    assert r.returncode == 61
    assert "does not contain 'OK'" in r.stdout


def test_a_hanging_validation_test_is_killed_after_its_timeout(remote):
    start = time.monotonic()
    r = remote.run(task(0, "127.0.0.1", "hanging"), "--validate-only")
    elapsed = time.monotonic() - start
    assert r.returncode == 61
    assert "no answer within 2 s" in r.stdout
    # The test sleeps 60 s unless it is killed; the margin is for a loaded machine (measured: 13 s
    # for the whole run with four busy loops beside the suite on 2 cores).
    assert elapsed < 45, elapsed
    pids = [int(p) for p in remote.pids.read_text().split()]
    assert wait_gone(pids) == [], "the validation test's process survived its timeout"


def test_validation_test_timeout_env_overrides_the_configured_timeout(remote):
    start = time.monotonic()
    r = remote.run(task(0, "127.0.0.1", "hanging_long"), "--validate-only", env={"VALIDATION_TEST_TIMEOUT": "1"})
    assert r.returncode == 61
    assert "no answer within 1 s" in r.stdout
    assert time.monotonic() - start < 1 + 10


def test_a_missing_exec_type_program_exits_61(remote):
    r = remote.run(task(0, "127.0.0.1", "missing"), "--validate-only")
    assert r.returncode == 61
    assert "needs '/no/such/remote-tool', which is not installed" in r.stderr


def test_an_exec_type_missing_from_the_config_is_a_validation_error_at_its_line(remote):
    r = remote.run(task(0, "127.0.0.1", "fake") + task(1, "127.0.0.1", "fak3"), "--validate-only")
    assert r.returncode == 20
    assert "flow.txt:11:6: error: task 1: unknown exec type `fak3`" in r.stderr
    assert f"did you mean `fake`? the exec types configured in {remote.config} are " in r.stderr
    assert "Validating" not in r.stdout          # found before any host is checked


def test_an_exec_type_missing_from_the_config_fails_at_run_time_without_validation(remote):
    r = remote.run(task(0, "127.0.0.1", "telnet"), "-r", "--skip-validation")
    assert r.returncode == 20
    assert "exec type 'telnet' is not configured" in r.stdout


def test_connection_failure_wins_over_dns_failure_61_before_21(remote):
    r = remote.run(task(0, "no-such-host.invalid", "fake") + task(1, "127.0.0.1", "failing"), "--validate-only")
    assert r.returncode == 61
    assert "connection test failed for 127.0.0.1" in r.stderr
    assert "name does not resolve for no-such-host.invalid" in r.stderr


# ----------------------------------------------------------------- optional hooks (D20)

REACH = """
host_validation:
  reachability:
    command: ["/bin/sh", "-c", "test \\"$0\\" != 127.0.0.2", "{hostname}"]
"""


def test_reachability_hook_failure_exits_60(remote):
    remote.configure(hooks=REACH)
    r = remote.run(task(0, "127.0.0.2", "fake") + task(1, "127.0.0.1", "fake"), "--validate-only")
    assert r.returncode == 60
    assert "unreachable for 127.0.0.2" in r.stderr
    assert remote.calls() == ["127.0.0.1 echo OK"]    # no connection test on an unreachable host


def test_unreachable_wins_over_dns_failure_and_loses_to_connection_failure(remote):
    remote.configure(hooks=REACH)
    both = task(0, "127.0.0.2", "fake") + task(1, "no-such-host.invalid", "fake")
    assert remote.run(both, "--validate-only").returncode == 60
    assert remote.run(both + task(2, "127.0.0.1", "failing"), "--validate-only").returncode == 61


def test_resolve_hook_names_the_host_to_use_for_the_test_and_the_run(remote):
    remote.configure(hooks="""
host_validation:
  resolve:
    command: ["/bin/sh", "-c", "test \\"$0\\" = db-alias.invalid && echo 127.0.0.1", "{hostname}"]
""")
    r = remote.run(task(0, "db-alias.invalid", "fake", "echo", "hello") + "task=1\nhostname=localhost\n"
                   "command=echo\narguments=@0_hostname@\nexec=local\n", "-r")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "db-alias.invalid resolved to 127.0.0.1" in r.stdout
    assert remote.calls() == ["127.0.0.1 echo OK", "127.0.0.1 echo hello"]
    assert "STDOUT: 127.0.0.1" in r.stdout            # @0_hostname@ is the resolved name (docs/command-line.md)


def test_resolve_hook_that_does_not_know_the_name_still_exits_21(remote):
    remote.configure(hooks='host_validation:\n  resolve:\n    command: ["/bin/false", "{hostname}"]\n')
    r = remote.run(task(0, "db-alias.invalid", "fake"), "--validate-only")
    assert r.returncode == 21
    assert "unknown to the system resolver and the resolve hook" in r.stdout


# ----------------------------------------------------------------- options


def test_skip_host_validation_skips_everything(remote):
    r = remote.run(task(0, "no-such-host.invalid", "failing"), "--validate-only", "--skip-host-validation")
    assert r.returncode == 0, r.stdout + r.stderr
    assert remote.calls() == []


def test_unresolved_host_names_exit_20_unless_skip_unresolved(remote):
    flow = task(0, "localhost", "local", "echo", "127.0.0.1") + task(1, "@0_stdout@", "fake")
    r = remote.run(flow, "--validate-only")
    assert r.returncode == 20
    assert "flow.txt:8:10: error: task 1: hostname `@0_stdout@` has an unresolved reference" in r.stderr
    assert "--skip-unresolved-host-validation" in r.stderr
    r = remote.run(flow, "--validate-only", "--skip-unresolved-host-validation")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "host '@0_stdout@' is resolved at run time; not validated" in r.stdout
    assert remote.calls() == []


def test_skip_unresolved_tolerates_only_the_unresolved_hosts(remote):
    flow = task(0, "@1_stdout@", "fake") + task(1, "127.0.0.1", "failing")
    assert remote.run(flow, "--validate-only", "--skip-unresolved-host-validation").returncode == 61


def test_skip_unresolved_has_no_effect_with_skip_host_validation(remote):
    r = remote.run(task(0, "@0_stdout@", "fake"), "--validate-only", "--skip-host-validation",
                   "--skip-unresolved-host-validation")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "--skip-unresolved-host-validation has no effect" in r.stdout


@pytest.mark.parametrize("exec_type, code", [("fake", 0), ("failing", 61)])
def test_connection_test_option_is_accepted_and_tests_always_run_d19(remote, exec_type, code):
    for args in (["-c"], []):
        r = remote.run(task(0, "127.0.0.1", exec_type), "--validate-only", *args)
        assert r.returncode == code, (args, r.stdout + r.stderr)
    assert len(remote.calls()) == 2


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The largest number of (start, end) intervals that are open at one moment."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda e: (e[0], e[1]))   # at a tie an end closes before a start opens
    open_now = peak = 0
    for _, step in events:
        open_now += step
        peak = max(peak, open_now)
    return peak


def test_max_overlap_counts_intervals_open_together():
    assert max_overlap([(0, 1), (1, 2), (2, 3)]) == 1
    assert max_overlap([(0, 3), (1, 2), (1.5, 4), (5, 6)]) == 3


def test_the_pool_checks_hosts_concurrently_but_at_most_pool_at_a_time(remote, tmp_path):
    # Each check waits for POOL peers (see FAKEREMOTE), so with a working pool POOL checks are in
    # flight together; the overlap is measured from the start and end times the checks recorded.
    # A generous validation time limit: on a loaded machine 36 checks may take a while to start.
    gauge = tmp_path / "gauge"
    total = POOL * 2 + 4
    remote.configure(gauge=str(gauge), gauge_total=total)
    hosts = ",".join(f"127.0.1.{i}" for i in range(1, total + 1))
    flow = f"task=0\ntype=parallel\nhostnames={hosts}\ncommand=echo\narguments=hi\nexec=fake\n"
    r = remote.run(flow, "--validate-only", env={"VALIDATION_TEST_TIMEOUT": "300"}, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(remote.calls()) == total
    times = [tuple(map(float, line.split())) for line in Path(f"{gauge}.times").read_text().splitlines()]
    assert len(times) == total
    assert max_overlap(times) == POOL == 16     # the number the README and docs promise
    assert max(int(c) for c in Path(f"{gauge}.counts").read_text().split()) <= POOL


def test_ctrl_c_during_host_validation_stops_the_running_tests(remote, tasker):
    flow = tasker.write(task(0, "127.0.0.1", "hanging_long"))
    proc = subprocess.Popen([sys.executable, "-m", "tasker", str(flow), "--exec-config", str(remote.config),
                             "--validate-only"], env=tasker.env(), cwd=tasker.tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not (remote.pids.exists() and remote.pids.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert remote.pids.exists(), "the validation test never started"
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert wait_gone([int(p) for p in remote.pids.read_text().split()]) == []


@pytest.mark.parametrize("how", ["-t", "env"])
def test_tasks_without_exec_are_validated_with_the_default_exec_type(remote, how):
    flow = "task=0\nhostname=127.0.0.1\ncommand=echo\narguments=hi\n"
    args, env = (["-t", "failing"], None) if how == "-t" else ([], {"TASK_EXECUTOR_TYPE": "failing"})
    r = remote.run(flow, "--validate-only", *args, env=env)
    assert r.returncode == 61, r.stdout + r.stderr
    assert remote.calls() == ["127.0.0.1 false"]


def test_a_check_that_breaks_fails_its_host_instead_of_passing_it():
    from tasker.cli.hostcheck import HostValidation

    class Broken(HostValidation):
        def check_host(self, host, types):
            if host == "b":
                raise RuntimeError("boom")
            return []

    failures = Broken(None, None, None, None).check_hosts({"a": {"x"}, "b": {"x"}})
    assert [(kind, host) for kind, host, _ in failures] == [("connection", "b")]
    assert "boom" in failures[0][2]
