"""Behaviour the README promises, each checked end to end with the real command line."""

from __future__ import annotations

import datetime
import json
import stat
import sys
import time

import pytest

LOCAL = "task={tid}\nhostname=localhost\ncommand={command}\narguments={arguments}\nexec=local\n\n"


def local(tid: int, command: str, arguments: str = "") -> str:
    return LOCAL.format(tid=tid, command=command, arguments=arguments)


# ----------------------------------------------------------------- exec-type configuration


TYPES = """
platforms:
  linux:
    local:
      command_template: ["{{command}}", "{{arguments_split}}"]
    tagged:
      binary: {binary}
      command_template: ["{{binary}}", "{{hostname}}", "{{command}}", "{{arguments_split}}"]
"""

WRAPPER = '#!/bin/sh\nhost=$1; shift\necho "via-wrapper $host"\nexec "$@"\n'


def wrapper_config(tasker, binary: str | None = None):
    script = tasker.tmp / "wrapper"
    script.write_text(WRAPPER)
    script.chmod(0o755)
    config = tasker.tmp / "types.yaml"
    config.write_text(TYPES.format(binary=binary or script))
    return config


def test_tasker_exec_config_selects_the_configuration(tasker):
    config = wrapper_config(tasker)
    flow = tasker.write("task=0\nhostname=localhost\ncommand=echo\narguments=hi\nexec=tagged\n")
    r = tasker.run(flow, "-r", "--skip-host-validation", env={"TASKER_EXEC_CONFIG": str(config)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"Executing [tagged]: {tasker.tmp / 'wrapper'} localhost echo hi" in r.stdout
    # without it the shipped configuration has no such type
    r = tasker.run(flow, "-r", "--skip-host-validation")
    assert r.returncode == 20 and "tagged" in r.stdout + r.stderr


def test_exec_config_option_wins_over_the_environment(tasker):
    config = wrapper_config(tasker)
    broken = tasker.tmp / "other.yaml"
    broken.write_text("platforms: {linux: {}}\n")
    flow = tasker.write("task=0\nhostname=localhost\ncommand=echo\narguments=hi\nexec=tagged\n")
    r = tasker.run(flow, "-r", "--skip-host-validation", "--exec-config", config,
                   env={"TASKER_EXEC_CONFIG": str(broken)})
    assert r.returncode == 0, r.stdout + r.stderr


def test_skip_command_validation_skips_the_installed_program_check(tasker):
    config = wrapper_config(tasker, binary="/no/such/remote-tool")
    flow = tasker.write("task=0\nhostname=127.0.0.1\ncommand=echo\narguments=hi\nexec=tagged\n")
    r = tasker.run(flow, "--validate-only", "--exec-config", config)
    assert r.returncode == 61, r.stdout + r.stderr
    assert "/no/such/remote-tool" in r.stdout + r.stderr
    r = tasker.run(flow, "--validate-only", "--exec-config", config, "--skip-command-validation")
    assert r.returncode == 0, r.stdout + r.stderr


def test_skip_validation_skips_host_validation(tasker):
    config = wrapper_config(tasker)
    flow = tasker.write("task=0\nhostname=no-such-host.invalid\ncommand=echo\narguments=hi\nexec=tagged\n")
    r = tasker.run(flow, "--validate-only", "--exec-config", config)
    assert r.returncode == 21, r.stdout + r.stderr
    r = tasker.run(flow, "-r", "--exec-config", config, "--skip-validation")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Executing [tagged]" in r.stdout
    assert "STDOUT: via-wrapper no-such-host.invalid" in r.stdout   # it ran, unvalidated


def test_skip_validation_skips_task_validation(tasker):
    # task 0 routes to a task that does not exist: an error of task validation
    flow = tasker.write(local(0, "echo", "ran").replace("exec=local\n", "exec=local\non_success=7\n"))
    assert tasker.run(flow, "--validate-only").returncode == 20
    r = tasker.run(flow, "-r", "--skip-validation")
    assert "Task 0: Executing" in r.stdout, r.stdout + r.stderr


# ----------------------------------------------------------------- -y and --show-plan


def test_yes_answers_the_show_plan_question(tasker):
    marker = tasker.tmp / "ran"
    flow = tasker.write(local(0, "touch", str(marker)))
    r = tasker.run(flow, "--show-plan", "-r", "-y", input="")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Task 0: Executing" in r.stdout and marker.exists()
    assert "Proceed with execution? [y/N]: y (--yes)" in r.stdout   # answered by -y, not by the input


# ----------------------------------------------------------------- result variables


def test_duration_start_and_end_time_variables(tasker):
    out = tasker.tmp / "times.txt"
    nap = "-c \"import time; time.sleep(0.3)\""
    report = f"-c \"open('{out}', 'w').write('@0_duration@|@0_start_time@|@0_end_time@')\""
    flow = tasker.write(local(0, sys.executable, nap) + local(1, sys.executable, report))
    before = time.time()
    r = tasker.run(flow, "-r")
    after = time.time()
    assert r.returncode == 0, r.stdout + r.stderr
    duration, start, end = out.read_text().split("|")
    assert 0.3 <= float(duration) < after - before
    fmt = "%Y-%m-%dT%H:%M:%S"
    t0 = datetime.datetime.strptime(start, fmt).timestamp()
    t1 = datetime.datetime.strptime(end, fmt).timestamp()
    assert int(before) - 1 <= t0 <= t1 <= after + 1


# ----------------------------------------------------------------- large task ids and files


def test_task_ids_above_9999_run(tasker):
    flow = tasker.write(local(10000, "echo", "a").replace("exec=local\n", "exec=local\non_success=99999\n")
                        + local(99999, "echo", "b"))
    r = tasker.run(flow, "-r")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Task 10000: Executing" in r.stdout and "Task 99999: Executing" in r.stdout


def test_task_ids_from_100000_are_reserved(tasker):
    r = tasker.run(tasker.write(local(100000, "echo", "a")), "--validate-only")
    assert r.returncode == 20, r.stdout + r.stderr
    assert "100000" in r.stdout + r.stderr


def test_a_20000_task_file_validates(tasker):
    text = "GREETING=hello\n\n" + "".join(
        f"task={i}\nhostname=localhost\ncommand=echo\narguments=@GREETING@ {i}\nexec=local\n"
        f"success=exit_0&stdout~{i}\n\n" for i in range(20_000))
    r = tasker.run(tasker.write(text), "--validate-only", timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "20000 tasks" in r.stdout


# ----------------------------------------------------------------- files a run leaves


def test_bare_output_json_writes_under_home_tasker_output(tasker):
    flow = tasker.write(local(0, "echo", "hi"))
    r = tasker.run(flow, "-r", "--output-json")
    assert r.returncode == 0, r.stdout + r.stderr
    files = list((tasker.home / "TASKER" / "output").glob("*.json"))
    assert len(files) == 1, r.stdout
    data = json.loads(files[0].read_text())
    assert data["execution_summary"]["execution_path"] == [0]
    assert data["task_results"]["0"]["stdout"] == "hi\n"


def test_the_task_file_backup_has_mode_600(tasker):
    flow = tasker.write(local(0, "true"))
    flow.chmod(0o644)
    assert tasker.run(flow, "-r").returncode == 0
    [backup] = list((tasker.home / "TASKER" / "backup").iterdir())
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert backup.read_text() == flow.read_text()


@pytest.mark.parametrize("how", ["task timeout", "-o"])
def test_recovery_state_is_kept_after_a_timeout(tasker, how):
    out = tasker.tmp / "after.txt"
    slow = local(0, "sleep", "60")
    args = ["-r", "--auto-recovery"]
    if how == "task timeout":
        slow = slow.replace("exec=local\n", "exec=local\ntimeout=1\n")
    else:
        args += ["-o", "5"]
    flow = tasker.write(slow + local(1, "touch", str(out)))
    r = tasker.run(*[flow, *args], timeout=120)
    assert r.returncode == 124, r.stdout + r.stderr
    states = list((tasker.home / "TASKER" / "recovery").glob("*.recovery.json"))
    assert len(states) == 1
    assert json.loads(states[0].read_text())["execution_path"] == [0]
    assert not out.exists()
