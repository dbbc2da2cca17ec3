"""The command line: options, file-defined arguments and their merge, exit codes (docs/command-line.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tasker import __version__
from tasker.cli.main import header_tokens, parse_settings

TASK = "task=0\nhostname=localhost\ncommand=echo\narguments=hi\nexec=local\n"


def test_version(tasker):
    r = tasker.run("-V")
    assert (r.returncode, r.stdout.strip()) == (0, f"TASKER v{__version__}")


def test_help_exits_0(tasker):
    r = tasker.run("--help")
    assert r.returncode == 0 and "--validate-only" in r.stdout


def test_missing_task_file_exits_1_with_a_message(tasker):
    r = tasker.run("nope.txt")
    assert r.returncode == 1
    assert "task file not found: nope.txt" in r.stderr


def test_a_directory_is_not_a_task_file(tasker):
    r = tasker.run(".")
    assert r.returncode == 1 and "is a directory" in r.stderr


@pytest.mark.parametrize("args", [[], ["--bogus", "f.txt"], ["f.txt", "--start-from=x"],
                                  ["f.txt", "--log-level=LOUD"], ["a.txt", "b.txt"]])
def test_usage_errors_exit_2(tasker, args):
    tasker.write(TASK, "f.txt")
    r = tasker.run(*args)
    assert r.returncode == 2
    assert "usage: tasker" in r.stderr


def test_unambiguous_prefixes_are_accepted(tasker):
    # --validate is --validate-only: it validates and runs nothing, even with -r
    marker = tasker.tmp / "ran"
    f = tasker.write(f"task=0\nhostname=localhost\ncommand=touch\narguments={marker}\nexec=local\n")
    r = tasker.run(f, "--validate", "-r")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Validation complete" in r.stdout and "Executing" not in r.stdout
    assert not marker.exists()


def test_timeout_and_connection_test_options_are_accepted_d19(tasker):
    f = tasker.write(TASK)
    assert tasker.run(f, "-o", "30", "-c", "--validate-only").returncode == 0
    # -o is the default task timeout: a task without timeout= is killed after it
    slow = tasker.write("task=0\nhostname=localhost\ncommand=sleep\narguments=60\nexec=local\n", "slow.txt")
    r = tasker.run(slow, "-o", "5", "-c", "-r", timeout=120)
    assert r.returncode == 124, r.stdout + r.stderr
    assert "Timeout after 5 seconds" in r.stdout


def test_validate_only_passes_and_fails(tasker):
    assert tasker.run(tasker.write(TASK), "--validate-only").returncode == 0
    bad = tasker.write("task=0\nhostname=localhost\ncommand=echo\ntimeout=soon\n", "bad.txt")
    r = tasker.run(bad, "--validate-only")
    assert r.returncode == 20
    assert "bad.txt:4:9: error: task 0: timeout must be a whole number" in r.stderr
    assert "^~~~" in r.stderr


def test_no_tasks_exits_24(tasker):
    assert tasker.run(tasker.write("X=1\n# nothing else\n"), "--validate-only").returncode == 24


def test_start_from_an_undefined_task_exits_12(tasker):
    r = tasker.run(tasker.write(TASK), "--start-from=7", "-r")
    assert r.returncode == 12
    assert "defines no task 7" in r.stderr


def test_invalid_type_option_exits_2(tasker):
    r = tasker.run(tasker.write(TASK), "-t", "carrier-pigeon", "--validate-only")
    assert r.returncode == 2 and "invalid choice" in r.stderr


# ----------------------------------------------------------------- file-defined arguments


def test_header_tokens_stop_at_the_first_key_value_line():
    text = "# c\n--log-level=DEBUG\nfree text\n-r\nX=1\n--auto-recovery\ntask=0\n"
    assert [t for _, t in header_tokens(text)] == ["--log-level=DEBUG", "-r"]


@pytest.mark.parametrize("flag", ["--help", "-h", "--version", "-V", "--force-instance"])
def test_cli_only_flags_in_the_file_exit_20(tasker, flag):
    r = tasker.run(tasker.write(f"{flag}\n" + TASK), "--validate-only")
    assert r.returncode == 20
    assert f"`{flag}` is not allowed in a task file" in r.stderr


def test_single_dash_long_option_in_the_file_exits_2(tasker):
    r = tasker.run(tasker.write("-auto-recovery\n" + TASK), "--validate-only")
    assert r.returncode == 2
    assert "two dashes" in r.stderr


def test_security_sensitive_flag_in_the_file_is_applied_with_a_warning_d19(tasker):
    text = "--skip-security-validation\n" + TASK.replace("arguments=hi", "arguments=$(whoami)")
    r = tasker.run(tasker.write(text), "--validate-only")
    assert r.returncode == 0
    assert "security-sensitive flag --skip-security-validation" in r.stderr


def test_unknown_header_tokens_are_ignored(tasker):
    assert tasker.run(tasker.write("--no-such-option=1\n--log-level = DEBUG\n" + TASK),
                      "--validate-only").returncode == 0


def test_invalid_header_value_is_a_usage_error(tasker):
    assert tasker.run(tasker.write("--log-level=LOUD\n" + TASK), "--validate-only").returncode == 2


def settings(tmp_path, header: str, argv: list[str]):
    path = tmp_path / "f.txt"
    path.write_text(header + TASK)
    return parse_settings([str(path), *argv], {})


def test_flags_are_ored_and_values_prefer_the_command_line(tmp_path):
    s = settings(tmp_path, "--log-level=DEBUG\n--no-task-backup\n-r\n", ["--log-level=WARN"])
    assert (s.log_level, s.no_task_backup, s.run) == ("WARN", True, True)
    s = settings(tmp_path, "--log-level=DEBUG\n", [])
    assert s.log_level == "DEBUG"


def test_debug_only_raises_an_info_level(tmp_path):
    assert settings(tmp_path, "", ["-d"]).log_level == "DEBUG"
    assert settings(tmp_path, "", ["-d", "--log-level=WARN"]).log_level == "WARN"


def test_output_json_as_the_last_header_token_works(tmp_path):
    s = settings(tmp_path, "--auto-recovery\n--output-json\n", [])
    assert s.output_json and s.recovery


def test_show_effective_args(tasker):
    r = tasker.run(tasker.write("--log-level=DEBUG\n" + TASK), "--show-effective-args", "-p", "demo")
    assert r.returncode == 0
    assert "--log-level=DEBUG" in r.stdout and "--project=demo" in r.stdout


# ----------------------------------------------------------------- a real run


def test_a_run_writes_the_log_and_the_json(tasker):
    f = tasker.write(TASK + "\ntask=1\nhostname=localhost\ncommand=false\nexec=local\n")
    out = tasker.tmp / "out.json"
    r = tasker.run(f, "-r", f"--output-json={out}")
    assert r.returncode == 1
    data = json.loads(out.read_text())
    assert data["workflow_metadata"]["status"] == "failed"
    assert data["execution_summary"]["execution_path"] == [0, 1]
    assert data["task_results"]["0"]["stdout"] == "hi\n"
    logs = list((tasker.home / "TASKER" / "log").glob("flow_*.log"))
    assert len(logs) == 1 and "Task 0: Executing [local]: echo hi" in logs[0].read_text()
    backups = list((tasker.home / "TASKER" / "backup").glob("flow.txt_*"))
    assert len(backups) == 1


def test_a_dry_run_writes_no_log_file(tasker):
    r = tasker.run(tasker.write(TASK))
    assert r.returncode == 0 and "[DRY RUN]" in r.stdout
    assert not (tasker.home / "TASKER" / "log").exists()


def test_unwritable_log_dir_exits_1(tasker):
    blocker = tasker.tmp / "file"
    blocker.write_text("")
    r = tasker.run(tasker.write(TASK), "-r", "-l", str(blocker / "sub"))
    assert r.returncode == 1 and "cannot create log directory" in r.stderr


def test_show_plan_prompts_and_cancels_on_eof(tasker):
    r = tasker.run(tasker.write(TASK), "--show-plan", "-r", input="")
    assert r.returncode == 0
    assert "exec    [local] echo hi" in r.stdout and "Proceed with execution? [y/N]" in r.stdout
    assert "Executing" not in r.stdout


def test_show_plan_runs_after_yes(tasker):
    r = tasker.run(tasker.write(TASK), "--show-plan", "-r", input="maybe\ny\n")
    assert r.returncode == 0 and "Task 0: Executing" in r.stdout


# ----------------------------------------------------------------- the option parser (argparse conventions)


@pytest.mark.parametrize("argv,expected", [
    (["f.txt", "-r"], {"run": True}),
    (["-ry", "f.txt"], {"run": True, "yes": True}),
    (["-l", "/x", "f.txt"], {"log_dir": "/x"}),
    (["-l/x", "f.txt"], {"log_dir": "/x"}),
    (["--log-dir=/x", "f.txt"], {"log_dir": "/x"}),
    (["--log-dir", "/x", "f.txt"], {"log_dir": "/x"}),
    (["--log-l=warn", "f.txt"], {"log_level": "WARN"}),
    (["--start-from", "-1", "f.txt"], {"start_from": -1}),
    (["f.txt", "--output-json"], {"output_json": "\0auto"}),
    (["--output-json", "o.json", "f.txt"], {"output_json": "o.json"}),
    (["--plan-format=DOT", "f.txt"], {"plan_format": "dot"}),
    (["--", "-weird.txt"], {}),
])
def test_option_parser(argv, expected):
    from tasker.cli.options import parse

    given, rest = parse(argv)
    assert given == expected
    assert len(rest) == 1


@pytest.mark.parametrize("argv,message", [
    (["f.txt", "--skip"], "ambiguous option: --skip could match"),
    (["f.txt", "-l"], "argument -l/--log-dir: expected one argument"),
    (["f.txt", "--start-from=x"], "invalid int value: 'x'"),
    (["f.txt", "--plan-format=png"], "invalid choice: 'png'"),
    (["f.txt", "-r=1"], "ignored explicit argument"),
    (["f.txt", "-Z"], "unrecognized arguments: -Z"),
])
def test_option_parser_errors(argv, message):
    from tasker.cli.options import UsageError, parse

    with pytest.raises(UsageError) as info:
        parse(argv)
    assert message in str(info.value)


def test_backups_keep_each_distinct_version_once(tmp_path):
    from tasker.report.files import backup_task_file

    flow = tmp_path / "flow.txt"
    flow.write_bytes(b"task=0\n")
    os.utime(flow, (1_000_000_000, 1_000_000_000))
    first = backup_task_file(str(tmp_path), str(flow), b"task=0\n", "20260101_000000")
    assert first is not None and Path(first).read_bytes() == b"task=0\n"
    assert int(os.stat(first).st_mtime) == 1_000_000_000        # like cp -p
    assert backup_task_file(str(tmp_path), str(flow), b"task=0\n", "20260101_000001") is None
    second = backup_task_file(str(tmp_path), str(flow), b"task=1\n", "20260101_000000")
    assert second is not None and second != first                # same stamp: a suffix, not an overwrite
    assert Path(first).read_bytes() == b"task=0\n" and Path(second).read_bytes() == b"task=1\n"
    assert len(os.listdir(tmp_path / "backup")) == 2


def test_a_mistyped_option_gets_a_suggestion(tasker):
    r = tasker.run(tasker.write(TASK), "--validate-onyl")
    assert r.returncode == 2
    assert "unrecognized arguments: --validate-onyl" in r.stderr
    assert "did you mean `--validate-only`?" in r.stderr


def test_a_single_dash_long_option_gets_the_two_dash_suggestion():
    from tasker.cli.options import UsageError, parse

    with pytest.raises(UsageError) as info:
        parse(["f.txt", "-skip-validation"])
    assert "did you mean `--skip-validation`?" in str(info.value)


def test_output_json_that_took_the_task_file_says_so(tasker):
    f = tasker.write(TASK, "flow.txt")
    r = tasker.run("--output-json", f, "--validate-only")
    assert r.returncode == 2
    assert "the following arguments are required: task_file" in r.stderr
    assert f"`--output-json` took `{f}` as the path of the JSON file" in r.stderr
    assert "--output-json=PATH" in r.stderr and f"tasker {f} --output-json" in r.stderr


def test_output_json_with_an_equals_sign_or_after_the_task_file_works(tmp_path):
    from tasker.cli.options import parse

    assert parse(["--output-json=o.json", "flow.txt"]) == ({"output_json": "o.json"}, ["flow.txt"])
    assert parse(["flow.txt", "--output-json", "-r"]) == ({"output_json": "\0auto", "run": True}, ["flow.txt"])


def test_help_lists_every_option_of_the_table(tasker):
    from tasker.cli.options import OPTIONS

    r = tasker.run("-h")
    assert r.returncode == 0 and r.stdout.startswith("usage: tasker [options] TASK_FILE")
    assert all(o.long in r.stdout for o in OPTIONS)


def test_a_bug_in_tasker_ends_with_one_line_and_exit_1_and_tasker_debug_shows_the_traceback(monkeypatch, capsys):
    from tasker.cli import main as cli

    def broken(argv):
        raise KeyError("no such thing")

    monkeypatch.setattr(cli, "_main", broken)
    monkeypatch.delenv("TASKER_DEBUG", raising=False)
    assert cli.main(["flow.txt"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "tasker: internal error: KeyError: 'no such thing'"
    assert "TASKER_DEBUG=1" in err and "Traceback" not in err
    monkeypatch.setenv("TASKER_DEBUG", "1")
    with pytest.raises(KeyError):
        cli.main(["flow.txt"])
