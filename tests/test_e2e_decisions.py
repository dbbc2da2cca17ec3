"""End to end through the command line: the documented differences from TASKER 2.2 (README)."""

from __future__ import annotations

import json


def test_parallel_next_reads_the_summary_text_of_the_aggregate_d29(tasker):
    flow = tasker.write("""
        task=0
        type=parallel
        tasks=100
        next=stdout~0 failed

        task=100
        hostname=localhost
        command=true
        exec=local
        """)
    r = tasker.run(flow, "-r", "--skip-subtask-range-validation")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "'stdout~0 failed' is True" in r.stdout


def test_conditional_block_next_reads_exit_and_stderr_of_the_aggregate_d29(tasker):
    flow = tasker.write("""
        task=0
        type=conditional
        condition=true
        if_true_tasks=10,11
        if_false_tasks=12
        next=exit_1&stderr=Failed tasks: [11]

        task=1
        hostname=localhost
        command=echo
        arguments=branch @0_stdout@
        exec=local
        next=never

        task=10
        hostname=localhost
        command=true
        exec=local

        task=11
        hostname=localhost
        command=false
        exec=local

        task=12
        hostname=localhost
        command=true
        exec=local
        """)
    out = tasker.tmp / "o.json"
    r = tasker.run(flow, "-r", f"--output-json={out}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "branch Conditional TRUE branch: 1/2 successful, 1 failed" in r.stdout   # @0_stdout@ keeps its text
    assert json.loads(out.read_text())["execution_summary"]["execution_path"] == [0, 1]


def test_conditional_block_next_never_exits_0_even_after_a_failed_branch_d28(tasker):
    flow = tasker.write("""
        task=0
        type=conditional
        condition=true
        if_true_tasks=10
        if_false_tasks=11
        next=never

        task=1
        hostname=localhost
        command=echo
        arguments=not reached
        exec=local

        task=10
        hostname=localhost
        command=false
        exec=local

        task=11
        hostname=localhost
        command=true
        exec=local
        """)
    r = tasker.run(flow, "-r")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "not reached" not in r.stdout


def test_failed_and_timeout_ids_are_listed_ascending_d30(tasker):
    members = "".join(f"task={i}\nhostname=localhost\ncommand=sh\narguments=-c \"exit {code}\"\nexec=local\n\n"
                      for i, code in ((10, 0), (11, 3), (12, 0), (13, 3), (14, 3)))
    sleeper = "task=15\nhostname=localhost\ncommand=sleep\narguments=30\nexec=local\ntimeout=1\n\n"
    flow = tasker.write("task=0\ntype=parallel\ntasks=15,14,13,12,11,10\nmax_parallel=6\nnext=always\n\n"
                        "task=1\nhostname=localhost\ncommand=echo\narguments=[@0_stderr@]\nexec=local\n\n"
                        + members + sleeper)
    r = tasker.run(flow, "-r", "--skip-security-validation")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[Failed tasks: [11, 13, 14]. Timeout tasks: [15]]" in r.stdout


UNRESOLVED_LOCAL = """
    task=0
    hostname=localhost
    command=echo
    arguments=localhost
    exec=local

    task=1
    hostname=@0_stdout@
    command=echo
    arguments=ran
    exec=local

    task=2
    hostname=localhost
    command=echo
    arguments=task 1 ran on @1_hostname@
    exec=local
    """


def test_unresolved_host_of_a_local_task_fails_validation_first_d21(tasker):
    flow = tasker.write(UNRESOLVED_LOCAL)
    r = tasker.run(flow, "-r")
    assert r.returncode == 20
    assert "flow.txt:8:10: error: task 1: hostname `@0_stdout@` has an unresolved reference" in r.stderr
    assert "Executing" not in r.stdout


def test_unresolved_host_check_is_off_with_either_skip_flag_d21(tasker):
    flow = tasker.write(UNRESOLVED_LOCAL)
    for flag in ("--skip-unresolved-host-validation", "--skip-host-validation"):
        r = tasker.run(flow, "-r", flag)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "task 1 ran on localhost" in r.stdout


# ----------------------------------------------------------------- dry run (D24)


def readme_task_files() -> list[tuple[int, str]]:
    """(line, text) of every fenced block of README.md without a language tag that holds a task."""
    import re

    from support import ROOT

    text = (ROOT / "README.md").read_text()
    found = []
    for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        if not m.group(1) and re.search(r"^task=", m.group(2), re.M):
            found.append((text.count("\n", 0, m.start()) + 1, m.group(2)))
    return found


def test_the_readme_shows_task_files():
    assert len(readme_task_files()) >= 4


def test_every_example_and_every_task_file_of_the_readme_dry_runs_to_exit_0_d24(tasker):
    from support import EXAMPLES

    files = [(str(p), p) for p in sorted(EXAMPLES.glob("*.txt"))]
    files += [(f"README.md:{line}", tasker.write(text, f"readme_{line}.txt")) for line, text in readme_task_files()]
    assert len(files) >= 8
    for name, path in files:
        # the README's hosts are examples (web1.example.com ...): only their names are checked out
        r = tasker.run(path, "--skip-host-validation")
        assert r.returncode == 0, f"{name}:\n{r.stdout}{r.stderr}"
        assert "DRY RUN complete, nothing was run: the workflow would complete" in r.stdout, name
        assert "Executing" not in r.stdout, name


def test_dry_run_of_the_first_example_follows_the_success_path_d24(tasker):
    from support import EXAMPLES

    r = tasker.run(EXAMPLES / "hello.txt")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Task 1: [DRY RUN] Would execute [local]: echo task 0 said: @0_stdout@" in r.stdout
    assert "Task 1: [DRY RUN] assuming success condition 'exit_0&stdout~Hello' holds" in r.stdout
    assert "Task 2: [DRY RUN] Would execute [local]: uname -s" in r.stdout


def test_dry_run_of_routing_walks_the_success_path_with_each_loop_once_d24(tasker):
    from support import EXAMPLES

    out = tasker.tmp / "o.json"
    r = tasker.run(EXAMPLES / "routing.txt", f"--output-json={out}")
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads(out.read_text())
    assert data["execution_summary"]["execution_path"] == [0, 1, 2, 3, 4]
    assert r.stdout.count("Would execute [local]: echo round") == 1
    assert "something failed" not in r.stdout


def test_dry_run_json_says_dry_run_and_leaves_no_state_and_no_project_row_d24(tasker):
    flow = tasker.write("task=0\nhostname=localhost\ncommand=echo\narguments=hi\nexec=local\nsuccess=stdout~hi\n"
                        "\ntask=1\nhostname=localhost\ncommand=false\nexec=local\nsuccess=false\n")
    out = tasker.tmp / "o.json"
    r = tasker.run(flow, f"--output-json={out}", "--auto-recovery", "-p", "demo")
    assert r.returncode == 0, r.stdout + r.stderr     # a real run would fail at task 1 (success=false)
    assert "DRY RUN complete, nothing was run: a real run would end here with exit code 1" in r.stdout
    meta = json.loads(out.read_text())["workflow_metadata"]
    assert (meta["dry_run"], meta["status"], meta["exit_code"]) == (True, "dry_run", 0)
    tasker_dir = tasker.home / "TASKER"
    assert not list(tasker_dir.glob("recovery/*")) and not (tasker_dir / "project").exists()
    real = tasker.run(flow, "-r", f"--output-json={out}", "-p", "demo")
    assert real.returncode == 1
    assert "dry_run" not in json.loads(out.read_text())["workflow_metadata"]
    assert (tasker_dir / "project" / "demo.summary").exists()


# ----------------------------------------------------------------- @host@ and host names (D25)


def test_hostnames_members_name_their_host_on_the_console_and_in_the_json_d25(tasker):
    flow = tasker.write("""
        task=0
        type=parallel
        hostnames=localhost,127.0.0.1
        command=sh
        arguments=-c "echo on @host@; test @host@ = localhost"
        exec=local
        max_parallel=1
        next=always

        task=1
        hostname=localhost
        command=echo
        arguments=done
        exec=local
        """)
    out = tasker.tmp / "o.json"
    r = tasker.run(flow, "-r", f"--output-json={out}", "--skip-security-validation")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Task 0-100000 [localhost]: STDOUT: on localhost" in r.stdout
    assert "Task 0-100001 [127.0.0.1]: Exit code: 1" in r.stdout
    results = json.loads(out.read_text())["task_results"]
    assert {tid: res["hostname"] for tid, res in results.items()} == {
        "100000": "localhost", "100001": "127.0.0.1", "0": "parallel", "1": "localhost"}


# ----------------------------------------------------------------- argv too long (D26)


def test_an_output_too_big_for_an_argument_fails_the_task_and_the_file_reference_works_d26(tasker):
    import sys

    flow = tasker.write(f"""
        task=0
        hostname=localhost
        command={sys.executable}
        arguments=-c "print('x' * 200000)"
        exec=local

        task=1
        hostname=localhost
        command=wc
        arguments=-c @0_stdout_file@
        exec=local
        success=stdout~200001

        task=2
        hostname=localhost
        command=echo
        arguments=got @0_stdout@
        exec=local
        """)
    r = tasker.run(flow, "-r", "--skip-security-validation")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Task 1: success is True" in r.stdout           # a file also for output held in memory
    assert ("Task 2: argument 2 is 200,000 bytes after substitution, over the operating system's limit of "
            "131,072 bytes; nothing was started. Pass large output as a file: @0_stdout_file@") in r.stdout
    assert "Errno" not in r.stdout + r.stderr and "Task 2: Executing" not in r.stdout


# ----------------------------------------------------------------- line counts and numbers (D22, D23)


def test_line_counts_compare_with_every_operator_and_need_a_whole_number_d22(tasker):
    flow = tasker.write("""
        task=0
        hostname=localhost
        command=printf
        arguments="a\\nb\\nc\\n"
        exec=local
        success=stdout_count<=3&stdout_count>=3&stdout_count!=4&stderr_count<=0
        """)
    r = tasker.run(flow, "-r")
    assert r.returncode == 0, r.stdout + r.stderr
    bad = tasker.write("task=0\nhostname=localhost\ncommand=true\nexec=local\nnext=stdout_count>=2.5\n", "bad.txt")
    r = tasker.run(bad, "--validate-only")
    assert r.returncode == 20
    assert "bad.txt:5:20: error: task 0: invalid next condition: `stdout_count>=` needs a whole number" in r.stderr


def test_numbers_in_conditions_d23(tasker):
    flow = tasker.write("""
        task=0
        hostname=localhost
        command=echo
        arguments=1e3
        exec=local
        success=stdout!=1000&stdout=1e3&stdout~e

        task=1
        hostname=localhost
        command=echo
        arguments=1.5e3
        exec=local
        success=stdout=1500&stdout>999&@0_success@>0
        """)
    r = tasker.run(flow, "-r")
    assert r.returncode == 0, r.stdout + r.stderr
