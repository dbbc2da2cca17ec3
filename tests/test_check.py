"""The checker: one test per diagnostic (docs/taskfile.md; docs/command-line.md; D8, D9)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import EXAMPLES, compile_text, pretty

from tasker.diagnostics import render

GOLDEN = Path(__file__).parent / "golden"


def T(tid, **fields) -> str:
    lines = [f"task={tid}", "hostname=localhost", "command=echo", "exec=local"]
    lines += [f"{k}={v}" for k, v in fields.items()]
    return "\n".join(lines) + "\n"


def errors(text: str, **kw) -> list[str]:
    _wf, diags = compile_text(text, **kw)
    return [d.message for d in diags.errors]


def warnings(text: str, **kw) -> list[str]:
    """Each warning's message and help, as one string."""
    _wf, diags = compile_text(text, **kw)
    return [f"{d.message} {d.help or ''}" for d in diags.warnings]


def assert_error(text: str, fragment: str, line: int | None = None, **kw) -> None:
    _wf, diags = compile_text(text, **kw)
    found = [d for d in diags.errors if fragment in d.message]
    assert found, f"no error containing {fragment!r}; got {[d.message for d in diags.errors]}"
    if line is not None:
        assert found[0].span.line == line, render(found[0], None)


def assert_warning(text: str, fragment: str, **kw) -> None:
    msgs = warnings(text, **kw)
    assert any(fragment in m for m in msgs), msgs


def test_a_valid_file_has_no_diagnostics():
    for example in EXAMPLES.glob("*.txt"):
        _wf, diags = compile_text(example.read_text(), path=str(example))
        assert diags.items == [], [d.message for d in diags.items]


# ----------------------------------------------------------------- always-on rules


@pytest.mark.parametrize("text,fragment,line", [
    ("task=abc\nhostname=h\ncommand=echo\n", "is not a whole number", 1),
    (T(0) + T(0), "is defined twice", 5),
    ("MY-VAR=1\n" + T(0), "invalid global variable name", 1),
    ("X=$(whoami)\n" + T(0), "shell command syntax", 1),
    ("X=../etc\n" + T(0), "path-traversal", 1),
])
def test_rules_that_hold_even_without_validation(text, fragment, line):
    assert_error(text, fragment, line, validate=False)


def test_strict_env_only_allows_tasker_variables():
    assert_error("X=$HOME\n" + T(0, arguments="@X@"), "only TASKER_* variables", 1, strict_env=True)
    assert errors("X=$TASKER_HOME\n" + T(0, arguments="@X@"), strict_env=True,
                  environ={"TASKER_HOME": "/h"}) == []


def test_validation_errors_are_dropped_when_validation_is_skipped():
    assert errors(T(0, on_success=0), validate=False) == []


# ----------------------------------------------------------------- globals


def test_reserved_global_name_d8():
    _wf, diags = compile_text("hostname=x\n" + T(0))
    err = diags.errors[0]
    assert "has the name of a task field" in err.message and "HOSTNAME" in err.help


def test_undefined_global_in_a_task_field():
    assert_error(T(0, arguments="@NOPE@"), "undefined global variable @NOPE@", 5)


def test_undefined_global_suggests_a_close_name():
    _wf, diags = compile_text("SERVICE=x\n" + T(0, arguments="@SERVCE@"))
    assert "@SERVICE@" in diags.errors[0].help


def test_unset_environment_variable_in_a_used_global():
    assert_error("X=$NOPE_VAR/x\n" + T(0, arguments="@X@"), "unset environment variable $NOPE_VAR", 1,
                 environ={})


def test_unset_environment_variable_in_an_unused_global_is_fine():
    assert errors("X=$NOPE_VAR\n" + T(0), environ={}) == []


def test_unused_global_warns():
    assert_warning("X=1\n" + T(0), "never used")


def test_global_chains_resolve_and_count_as_used():
    wf, diags = compile_text("BASE=/opt\nCONF=@BASE@/conf\n" + T(0, arguments="@CONF@/x.cfg"))
    assert not diags.items
    assert wf.tasks[0].arguments.parts == ("/opt/conf/x.cfg",)


def test_self_reference_expands_eleven_times():
    wf, _ = compile_text("SELF=pre_@SELF@_suf\n" + T(0, arguments="@SELF@"), validate=False)
    assert wf.tasks[0].arguments.parts == ("pre_" * 11 + "@SELF@" + "_suf" * 11,)


def test_numeric_fields_accept_globals_d9():
    wf, diags = compile_text("N=3\n" + T(0, next="loop", loop="@N@"))
    assert not diags.errors and wf.tasks[0].loop == 3


# ----------------------------------------------------------------- task fields


@pytest.mark.parametrize("text,fragment,line", [
    ("task=0\ncommand=echo\n", "missing `hostname`", 1),
    ("task=0\nhostname=h\n", "missing `command`", 1),
    ("task=-1\nhostname=h\ncommand=echo\n", "is negative", 1),
    ("task=100000\nhostname=h\ncommand=echo\n", "reserved", 1),
    (T(0, arguments="hello # note"), "no trailing comments", 5),
    (T(0, timeout="abc"), "timeout must be a whole number", 5),
    (T(0, sleep="soon"), "sleep must be a number", 5),
    (T(0, success="exit_0", failure="exit_1"), "cannot be used together", 6),
    (T(0, success="exit_0,stdout~x"), "invalid success condition", 5),
    (T(0, condition="((exit_0)"), "invalid condition condition", 5),
    (T(0, next="5"), "next=5 is not allowed", 5),
    (T(0, next="never", on_success=1) + T(1), "cannot be combined with on_success", 5),
    (T(0, on_success="x"), "must be a task id", 5),
    (T(1, on_success=0) + T(0), "jumps backwards", 5),
    (T(0, on_failure=7), "does not exist", 5),
    (T(0, loop=3), "loop= needs next=loop", 5),
    (T(0, next="loop", loop=0), "loop must be from 1 to 1000", 6),
    (T(0, next="loop", loop="abc"), "whole number from 1 to 1000", 6),
    (T(0, next="loop"), "next=loop needs loop=N", 5),
    (T(0, success="all_success"), "counts subtasks", 5),
    (T(0, arguments="@7_stdout@"), "refers to task 7, which does not exist", 5),
    ("task=0\nreturn=abc\n", "return must be a whole number", 2),
    ("task=0\nreturn=0\ntimeout=5\n", "a return task cannot have `timeout`", 3),
    (T(0, stdout_split="space"), "must be DELIMITER,INDEX", 5),
])
def test_field_errors(text, fragment, line):
    assert_error(text, fragment, line)


@pytest.mark.parametrize("text,fragment", [
    (T(0, colour="red"), "unknown field `colour`"),
    (T(0, timout=5), "did you mean `timeout`"),
    (T(0, timeout=2), "below 5"),
    (T(0, timeout=5000), "above 1000"),
    (T(0, exec="ftp"), "is not one of"),
    (T(0, stdout_count=3), "has no effect"),
    (T(0, retry_count=2), "only apply to parallel and conditional blocks"),
    (T(0, arguments="x") + "task=1\nthis is not a pair\nreturn=0\n", "not a key=value pair"),
    (T(0) + T(1) + "task=5\nreturn=0\n", "never reached"),
    (T(0, sleep=-1), "below 0"),
])
def test_warnings(text, fragment):
    assert_warning(text, fragment)


def test_repeated_key_warns_and_the_last_value_wins():
    wf, diags = compile_text(T(0, arguments="a") + "arguments=b\n")
    assert any("set again" in d.message for d in diags.warnings)
    assert wf.tasks[0].arguments.parts == ("b",)


# ----------------------------------------------------------------- blocks


def P(tid, **fields) -> str:
    lines = [f"task={tid}", "type=parallel"] + [f"{k}={v}" for k, v in fields.items()]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text,fragment", [
    (P(0), "needs tasks= or hostnames="),
    (P(0, tasks="100", hostnames="a,b", command="echo"), "either tasks= or hostnames="),
    (P(0, tasks="100", timeout=5) + T(100), "cannot have `timeout`"),
    (P(0, tasks="100", failure="exit_1") + T(100), "cannot have `failure`"),
    (P(0, tasks="100", success="exit_0") + T(100), "must count its subtasks"),
    (P(0, tasks="100", next="loop") + T(100), "cannot loop"),
    (P(0, tasks="100,x") + T(100), "not a task id"),
    (P(0, tasks="0"), "lists the block itself"),
    (P(0, tasks="100") , "which does not exist"),
    (P(0, tasks="100") + T(100, on_success=101) + T(101), "is not allowed on a task that block 0 runs"),
    (P(0, tasks="100") + T(100, next="loop", loop=2), "`loop` is not allowed"),
    (P(0, tasks="1") + P(1, tasks="100") + T(100), "blocks do not nest"),
    (P(0, tasks="100", max_parallel=0) + T(100), "max_parallel must be"),
    (P(0, hostnames="a", command="echo"), "at least 2 hosts"),
    (P(0, hostnames="a,b"), "needs command="),
    (P(0, hostnames="a,999.1.1.1", command="echo"), "not a valid host name"),
    (P(0, hostnames="a,-b", command="echo"), "not a valid host name"),
    (P(0, hostnames=",".join(f"h{i}" for i in range(1001)), command="echo"), "the limit is 1000"),
    ("task=0\ntype=conditional\nif_true_tasks=100\nif_false_tasks=101\n" + T(100) + T(101),
     "needs condition="),
    ("task=0\ntype=conditional\ncondition=true\nif_true_tasks=\nif_false_tasks=101\n" + T(101),
     "non-empty if_true_tasks="),
    ("task=0\ntype=conditional\ncondition=true\nif_true_tasks=100\nif_false_tasks=101\nsuccess=exit_0\n"
     + T(100) + T(101), "must count its subtasks"),
    ("task=0\ntype=decision\n", "exactly one of success= or failure="),
    ("task=0\ntype=decision\nsuccess=true\nfailure=false\n", "exactly one of success= or failure="),
    ("task=0\ntype=decision\nsuccess=true\ncommand=echo\n", "cannot have `command`"),
    ("task=0\ntype=decision\nsuccess=true\ntimeout=5\n", "cannot have `timeout`"),
])
def test_block_errors(text, fragment):
    assert_error(text, fragment)


def test_subtask_range_warning_is_one_per_list():
    msgs = warnings(P(1, tasks="10,11") + T(10) + T(11))
    assert sum("outside the conventional range" in m for m in msgs) == 1


def test_decision_without_routing_warns():
    assert_warning("task=0\ntype=decision\nsuccess=true\n", "without on_success")


def test_hostnames_block_generates_subtasks():
    wf, diags = compile_text(P(2, hostnames="a, b ,c", command="echo", arguments="id @task@"))
    assert not diags.errors
    assert wf.tasks[2].members == (120000, 120001, 120002)
    assert wf.tasks[120001].hostname.parts == ("b",)
    assert wf.tasks[120001].arguments.parts == ("id 120001",)


# ----------------------------------------------------------------- sequence


def test_gap_in_the_sequence_is_an_error():
    assert_error(T(0) + T(1) + T(3), "Task sequence has gaps", 9)


@pytest.mark.parametrize("text", [
    T(0, on_success=5) + T(5),                          # a routed task may be followed by a gap
    T(0) + T(1, arguments="@5_stdout@") + T(5),          # b is referenced
    T(0) + T(95),                                        # 90..99 error handlers
    T(0) + T(150),                                       # 100..999 subtask ranges
    T(0) + "task=1\nreturn=0\n" + T(7),                 # return ends the flow
])
def test_gaps_that_are_allowed(text):
    assert not any("gaps" in m for m in errors(text))


# ----------------------------------------------------------------- security (docs/command-line.md)


@pytest.mark.parametrize("field,value,fragment", [
    ("arguments", "test $(whoami) injection", "shell command syntax"),
    ("arguments", "a; rm -rf /tmp/x", "shell command syntax"),
    ("arguments", "`id`", "shell command syntax"),
    ("arguments", "../../etc/hosts", "path-traversal"),
    ("arguments", "x" * 2001, "the limit is 2000"),
    ("command", "echo;", "shell character"),
    ("hostname", "host;x", "shell character"),
])
def test_security_errors(field, value, fragment):
    text = f"task=0\nhostname=localhost\ncommand=echo\nexec=local\n{field}={value}\n"
    assert_error(text, fragment)


def test_security_checks_relax_for_exec_shell():
    assert errors("task=0\nhostname=localhost\ncommand=echo\nexec=shell\narguments=$(date) | tr a b\n") == []


def test_security_checks_can_be_skipped():
    text = T(0, arguments="$(whoami)")
    assert errors(text, security=False) == []


def test_pipe_to_a_harmless_program_is_not_injection():
    assert errors(T(0, command="sh", arguments='-c "echo a | tr a b"')) == []


# ----------------------------------------------------------------- diagnostics format


def test_diagnostic_renders_like_a_compiler():
    text = T(0, timeout="soon")
    _wf, diags = compile_text(text, path="flow.txt")
    out = render(diags.errors[0], text.split("\n"))
    lines = out.splitlines()
    assert lines[0] == "flow.txt:5:9: error: task 0: timeout must be a whole number of seconds, got `soon`"
    assert lines[1] == "5 | timeout=soon"
    assert lines[2] == "  |         ^~~~"
    assert lines[3].strip() == "= help: for example timeout=30"


def test_all_problems_are_collected():
    assert len(errors(T(0, timeout="x", sleep="y", on_success="z"))) == 3


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.txt")))
def test_golden_checked_ast(example):
    wf, _ = compile_text((EXAMPLES / example).read_text(), path=f"examples/{example}")
    text = pretty(wf.tasks, spans=False) + "\n"
    golden = GOLDEN / (example[:-4] + ".checked")
    if os.environ.get("TASKER_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), f"checked AST of {example} changed; TASKER_UPDATE_GOLDEN=1 rewrites it"


def _configured(names: tuple, path: str | None = "/etc/tasker/types.yaml", aliases: dict | None = None):
    from tasker.runners.exectypes import ExecConfig, ExecTypes

    template = {"binary": "/bin/true", "command_template": ["{binary}", "{command}"]}
    data = {"platforms": {"linux": {n: template for n in names}}, "aliases": aliases or {}}
    exec_types = ExecTypes(environ={})
    exec_types.use_config(ExecConfig(path, data, ("/etc/tasker/types.yaml",)))
    return exec_types


def check_with(text: str, exec_types):
    from support import dedent

    from tasker.check.checker import CheckOptions, compile_workflow
    from tasker.syntax.taskfile import parse_taskfile

    return compile_workflow(parse_taskfile(dedent(text), "t.txt"), CheckOptions(exec_types=exec_types))[1]


def test_unknown_exec_type_is_an_error_with_a_guess_and_the_configuration_read():
    diags = check_with("task=0\nhostname=h\ncommand=c\nexec=lokal\n", _configured(("ssh", "pbrun")))
    [error] = diags.errors
    assert error.message == "task 0: unknown exec type `lokal`"
    assert (error.span.line, error.span.col) == (4, 6)
    assert error.help.startswith("did you mean `local`? the exec types configured in /etc/tasker/types.yaml "
                                 "are local, pbrun, ssh")


def test_configured_types_aliases_and_globals_are_accepted():
    exec_types = _configured(("ssh",), aliases={"secure": "ssh"})
    text = "MODE=SSH\ntask=0\nhostname=h\ncommand=c\nexec=@MODE@\n\ntask=1\nhostname=h\ncommand=c\nexec=secure\n" \
           "\ntask=2\nhostname=h\ncommand=c\nexec=@0_stdout@\n"
    assert not check_with(text, exec_types).errors


def test_unknown_exec_type_without_any_configuration_says_what_was_searched():
    [error] = check_with("task=0\nhostname=h\ncommand=c\nexec=ssh\n", _configured((), path=None)).errors
    assert "no exec-type configuration was found (searched: /etc/tasker/types.yaml)" in error.help


def test_local_needs_no_configuration_file():
    class Unread:
        @property
        def config(self):
            raise AssertionError("the configuration was read for exec=local")

    assert not check_with("task=0\nhostname=h\ncommand=c\nexec=LOCAL\n", Unread()).errors


def unresolved_host_errors(text: str, **kw) -> list:
    from support import dedent

    from tasker.check.checker import CheckOptions, compile_workflow
    from tasker.syntax.taskfile import parse_taskfile

    options = CheckOptions(unresolved_hosts=True, **kw)
    return compile_workflow(parse_taskfile(dedent(text), "t.txt"), options)[1].errors


def test_unresolved_host_references_are_errors_for_every_exec_type_d21():
    text = ("SERVER=@HOSTNAME@\n"
            "task=0\nhostname=@SERVER@\ncommand=c\nexec=local\n\n"
            "task=1\nhostname=db-@0_stdout@\ncommand=c\nexec=ssh\n\n"
            "task=2\ntype=parallel\nhostnames=a,@1_STDOUT@\ncommand=c\nexec=local\n")
    errors = unresolved_host_errors(text)
    assert [(e.span.line, e.message) for e in errors] == [
        (3, "task 0: hostname `@SERVER@` has an unresolved reference: @HOSTNAME@ is not a defined global variable"),
        (8, "task 1: hostname `db-@0_stdout@` has an unresolved reference: @0_stdout@ is a task result, "
            "known only at run time"),
        (14, "task 2: hostnames entry `@1_STDOUT@` has an unresolved reference: @1_STDOUT@ is a task result, "
             "known only at run time"),
    ]
    assert "--skip-unresolved-host-validation" in errors[0].help


def test_unresolved_host_check_runs_without_task_validation_and_only_when_asked_d21():
    text = "task=0\nhostname=@0_stdout@\ncommand=c\nexec=local\n"
    assert unresolved_host_errors(text, validate=False)
    assert not errors(text)                      # off: host validation is skipped, or the flag given
    assert not unresolved_host_errors("G=web1\ntask=0\nhostname=@G@\ncommand=c\nexec=local\n")


def test_host_placeholder_is_defined_only_in_hostnames_blocks_d25():
    wf, diags = compile_text("task=0\ntype=parallel\nhostnames=a,b\ncommand=echo\narguments=@host@\nexec=local\n"
                             "next=never\n")
    assert not diags.has_errors(), [d.message for d in diags.errors]
    assert [wf.tasks[sid].arguments.literal() for sid in (100000, 100001)] == ["a", "b"]
    _wf, diags = compile_text(T(0, arguments="@host@"))
    [error] = diags.errors
    assert "undefined global variable @host@" in error.message and "hostnames= block" in error.help
