"""What the command line tells a user: errors once, early warnings, counts, the way on after an edit."""

from __future__ import annotations

import json
from pathlib import Path

TASK = "task=0\nhostname=localhost\ncommand=echo\narguments=hi\nexec=local\n"
FAILING = ("task=0\nhostname=localhost\ncommand=true\nexec=local\n\n"
           "task=1\nhostname=localhost\ncommand=false\nexec=local\n")


def log_text(tasker) -> str:
    return "".join(p.read_text() for p in (tasker.home / "TASKER" / "log").glob("*.log"))


def test_a_fatal_error_is_said_once_on_the_terminal_and_kept_in_the_log(tasker):
    r = tasker.run(tasker.write(TASK), "--start-from=7", "-r")
    assert r.returncode == 12
    assert (r.stdout + r.stderr).count("defines no task 7") == 1, r.stdout + r.stderr
    assert "FAILURE: exit code 12" in r.stdout
    assert "FAILURE: exit code 12 (tasker: --start-from=7" in log_text(tasker)


def test_a_timeout_option_out_of_range_is_reported_at_the_start(tasker):
    r = tasker.run(tasker.write(TASK), "-o", "2", "--validate-only")
    assert r.returncode == 0
    assert "-o/--timeout 2 is outside 5..1000 s; tasks without their own timeout= get 5 s" in r.stdout
    r = tasker.run(tasker.write(TASK), "--timeout", "5000", "-r")
    assert r.returncode == 0
    assert r.stdout.count("outside 5..1000") == 1   # once at the start, not again at the task
    assert r.stdout.index("outside 5..1000") < r.stdout.index("Executing")


def test_validation_counts_tasks_as_written_and_generated_members_apart(tasker):
    r = tasker.run(tasker.write(TASK), "--validate-only")
    assert "Task validation passed: 1 task\n" in r.stdout
    blocks = ("task=0\ntype=parallel\nhostnames=localhost,127.0.0.1,127.0.0.2\ncommand=echo\nexec=local\n"
              "next=success\n\ntask=1\nhostname=localhost\ncommand=echo\nexec=local\n")
    r = tasker.run(tasker.write(blocks, "b.txt"), "--validate-only", "--skip-host-validation")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Task validation passed: 2 tasks (+ 3 generated members of hostnames= blocks)" in r.stdout


def edited_after_failure(tasker) -> Path:
    path = tasker.write(FAILING)
    assert tasker.run(path, "-r", "--auto-recovery").returncode == 1
    path.write_text(FAILING.replace("command=false", "command=echo"))
    return path


def test_an_edited_task_file_names_the_changed_task_and_the_ways_on(tasker):
    path = edited_after_failure(tasker)
    r = tasker.run(path, "-r", "--auto-recovery")
    assert r.returncode == 12
    state = next((tasker.home / "TASKER" / "recovery").glob("*.recovery.json"))
    assert "(task 1 changed)" in r.stderr and str(state) in r.stderr
    assert "--start-from=N" in r.stderr and "--discard-recovery" in r.stderr


def test_a_state_without_task_fingerprints_says_the_file_hash_differs(tasker):
    path = tasker.write(FAILING)
    assert tasker.run(path, "-r", "--auto-recovery").returncode == 1
    state = next((tasker.home / "TASKER" / "recovery").glob("*.recovery.json"))
    data = json.loads(state.read_text())
    del data["task_text_hashes"], data["global_hashes"]   # as older versions wrote it
    state.write_text(json.dumps(data))
    path.write_text(FAILING.replace("command=false", "command=echo"))
    r = tasker.run(path, "-r", "--auto-recovery")
    assert r.returncode == 12 and "(its hash differs)" in r.stderr


def test_start_from_runs_an_edited_file_by_hand(tasker):
    path = edited_after_failure(tasker)
    r = tasker.run(path, "-r", "--auto-recovery", "--start-from=1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "does not fit this task file" in r.stdout and "Task 0:" not in r.stdout


def test_discard_recovery_deletes_the_state_and_starts_from_the_beginning(tasker):
    path = edited_after_failure(tasker)
    recovery = tasker.home / "TASKER" / "recovery"
    r = tasker.run(path, "-r", "--auto-recovery", "--discard-recovery")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "deleted the recovery state" in r.stdout and "Task 0: Executing" in r.stdout
    assert not list(recovery.glob("*.recovery.json*"))


def test_discard_recovery_without_auto_recovery_deletes_the_state_too(tasker):
    path = edited_after_failure(tasker)
    r = tasker.run(path, "-r", "--discard-recovery")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not list((tasker.home / "TASKER" / "recovery").glob("*.recovery.json*"))


def test_discard_recovery_is_refused_in_the_file_header(tasker):
    r = tasker.run(tasker.write("--discard-recovery\n" + TASK), "--validate-only")
    assert r.returncode == 20


def test_a_bare_output_json_says_it_turns_on_recovery_and_where_the_json_goes(tasker):
    r = tasker.run(tasker.write(TASK), "-r", "--output-json")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert "--output-json turns on --auto-recovery: state in " in lines[0]
    written = next((tasker.home / "TASKER" / "output").glob("*.json"))
    assert r.stdout.count(str(written)) == 2      # at the start and at the end
    assert str(written) in lines[-3] or str(written) in "\n".join(lines[-4:])


def test_nothing_writes_ansi_escapes_to_a_pipe(tasker):
    r = tasker.run(tasker.write(FAILING), "-r", env={"NO_COLOR": "1"})
    assert "\x1b[" not in r.stdout + r.stderr
    r = tasker.run(tasker.write(FAILING), "-r")
    assert "\x1b[" not in r.stdout + r.stderr and "\r" not in r.stdout
