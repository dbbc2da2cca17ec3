"""The checker: one test per diagnostic (docs/taskfile.md; docs/command-line.md; D8, D9)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import EXAMPLES, compile_text, pretty, run_vm

from tasker.check import variables
from tasker.check.model import Retry
from tasker.diagnostics import render
from tasker.ir.lower import LowerOptions, lower
from tasker.ir.plan import listing
from tasker.syntax.ast import ExitCode, Keyword, Multi, Next, Split, TaskRef, Template

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


@pytest.mark.parametrize(("fields", "logged"), [
    ({"success": "exit_abc"}, "Task 0: Success condition 'exit_abc' evaluated to: False"),
    ({"failure": "stdout~a)"}, "Task 0: Failure condition 'stdout~a)' evaluated to: False"),
    ({"next": "exit_0 &"}, "Task 0: 'exit_0 &' is False: continuing with stop, the workflow failed"),
])
def test_a_malformed_condition_kept_without_validation_is_logged_as_written(fields, logged):
    """With validation skipped the condition is false at run time, and the log quotes
    the text the user wrote so the failure can be traced back to the file."""
    r = run_vm(T(0, **fields) + T(1), validate=False)
    assert any(line.endswith(logged) for line in r.log.splitlines()), r.log


def test_a_malformed_loop_condition_kept_without_validation_is_listed_as_written():
    wf, _ = compile_text(T(0, next="loop&exit_", loop="2") + T(1), validate=False)
    assert "next iteration (while exit_)" in listing(lower(wf, LowerOptions()))


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


def _configured(names: tuple, path: str | None = "/etc/tasker/types.yaml", aliases: dict | None = None,
                searched: tuple = ("/etc/tasker/types.yaml",)):
    from tasker.runners.exectypes import ExecConfig, ExecTypes

    template = {"binary": "/bin/true", "command_template": ["{binary}", "{command}"]}
    data = {"platforms": {"linux": {n: template for n in names}}, "aliases": aliases or {}}
    exec_types = ExecTypes(environ={})
    exec_types.use_config(ExecConfig(path, data, searched))
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


# ----------------------------------------------------------------- every diagnostic, exactly
# Message, place (line:column+length), help and notes of each diagnostic, in the order found:
# a user reads all of them, and editors jump to the place.


def N(tid, **fields) -> str:
    """A command task; ``fields`` override (or, with None, drop) the defaults."""
    merged = {"hostname": "localhost", "command": "echo", "exec": "local", **fields}
    return "\n".join([f"task={tid}"] + [f"{k}={v}" for k, v in merged.items() if v is not None]) + "\n"


def described(text: str, **kw) -> list[str]:
    """``E|W line:col+length message = help [note place note]`` for each diagnostic."""
    from support import dedent

    from tasker.check.checker import CheckOptions, compile_workflow
    from tasker.syntax.taskfile import parse_taskfile

    kw.setdefault("environ", {"HOME": "/home/u"})
    _wf, diags = compile_workflow(parse_taskfile(dedent(text), "t.txt"), CheckOptions(**kw))
    out = []
    for d in diags.items:
        line = f"{d.severity[0].upper()} {d.span.line}:{d.span.col}+{d.span.length} {d.message}"
        line += f" = {d.help}" if d.help else ""
        line += "".join(f" [{s.line}:{s.col}+{s.length} {note}]" for s, note in d.related)
        out.append(line)
    return out


@pytest.mark.parametrize("text,options,expected", [
    ("hostname=x\n" + N(0), {}, [
        'E 1:1+8 global variable `hostname` has the name of a task field = a line `hostname=` before the first task= '
        'defines nothing; name the variable differently, e.g. HOSTNAME or MY_HOSTNAME',
    ]),
    ("MY-VAR=1\n" + N(0), {}, [
        'E 1:1+6 invalid global variable name `MY-VAR` = names start with a letter or _, continue with letters, '
        'digits or _, and are at most 64 characters (e.g. MY_VAR)',
    ]),
    ("A" * 64 + "=1\n" + N(0, arguments="@" + "A" * 64 + "@"), {}, []),
    ("A" * 65 + "=1\n" + N(0), {}, [
        'E 1:1+65 invalid global variable name `AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA` = '
        'names start with a letter or _, continue with letters, digits or _, and are at most 64 characters (e.g. '
        'MY_VAR)',
    ]),
    ("X=$HOME\n" + N(0, arguments="@X@"), {'strict_env': True}, [
        'E 1:3+5 global X uses environment variable $HOME; with --strict-env-validation only TASKER_* variables may '
        'be used = rename the variable to TASKER_HOME',
    ]),
    ("X=$TASKER_HOME\n" + N(0, arguments="@X@"), {'strict_env': True, 'environ': {'TASKER_HOME': '/h'}}, []),
    ("X=1\nX=2\n" + N(0, arguments="@X@"), {}, [
        'W 2:1+1 global X is defined again; the last definition wins',
    ]),
    ("X=$NOPE_A$NOPE_B\n" + N(0, arguments="@X@ @X@"), {}, [
        'E 1:1+1 global X uses unset environment variable $NOPE_A, $NOPE_B = export NOPE_A before running, or give X '
        'a literal value [6:11+3 X is used here]',
    ]),
    ("X=$NOPE_A\n" + N(0), {}, [
        'W 1:1+1 global variable X is never used',
    ]),
    ("B=@X@\nX=$NOPE_A\n" + N(0, arguments="@B@"), {}, [
        'E 2:1+1 global X uses unset environment variable $NOPE_A = export NOPE_A before running, or give X a '
        'literal value',
    ]),
    ("X=$(id)\n" + N(0, arguments="@X@"), {}, [
        'E 1:3+5 global X contains shell command syntax `$(id)` = global values are substituted into commands that '
        'run without a shell',
    ]),
    ("task=abc\nhostname=h\ncommand=echo\n", {}, [
        'E 1:6+3 task id `abc` is not a whole number = task ids are integers: task=0, task=1, ...',
    ]),
    ("task=1234567890123456789\nhostname=h\ncommand=echo\n", {}, [
        'E 1:6+19 task id 1234567890123456789 is out of range = task ids are whole numbers from 0 to 99999',
    ]),
    ("task=-1\nhostname=h\ncommand=echo\n", {}, [
        'E 1:6+2 task id -1 is negative = task ids start at 0',
    ]),
    ("task=100000\nhostname=h\ncommand=echo\n", {}, [
        'E 1:6+6 task id 100000 is too large: ids from 100000 up are reserved for the subtasks that hostnames= '
        'blocks generate',
    ]),
    ("task=99999\nhostname=h\ncommand=echo\n", {}, []),
    ("task=00000000001\nhostname=h\ncommand=echo\n", {}, [
        'E 1:6+11 task id `00000000001` is longer than 10 characters',
    ]),
    ("task=0000000000\nhostname=h\ncommand=echo\n", {}, []),
    (N(0) + N(0), {}, [
        'E 5:6+1 task 0 is defined twice = give every task its own id [1:6+1 task 0 is first defined here]',
    ]),
    (N(0, colour="red"), {}, [
        'W 5:1+6 task 0: unknown field `colour` is ignored = global variables must be defined before the first task= '
        'line; after it they define nothing',
    ]),
    (N(0, TIMOUT=5), {}, [
        'W 5:1+6 task 0: unknown field `TIMOUT` is ignored = did you mean `timeout`?',
    ]),
    (N(0, **{"Retry-X": 1}), {}, [
        'W 5:1+7 task 0: unknown field `Retry-X` is ignored',
    ]),
    (N(0, arguments="a") + "arguments=b\n", {}, [
        'W 6:1+9 task 0: `arguments` is set again; the last value wins',
    ]),
    (N(0) + "just text\n", {}, [
        "W 5:1+9 line is not a key=value pair and is ignored: 'just text'",
    ]),
    (N(0, arguments="hello # note"), {}, [
        'E 5:17+6 task 0: `arguments` contains ` #`: there are no trailing comments = put the comment on a line of '
        'its own starting with #; a # without a blank before it (a#b) is part of the value',
    ]),
    (N(0, arguments="a#b #"), {}, []),
    (N(0, timeout="1234567890123456789"), {}, [
        'E 5:9+19 task 0: timeout: the number 1234567890123456789 is out of range (at most 18 digits) = write a '
        'number of at most 18 digits',
        'W 5:9+19 task 0: timeout=1234567890123456789 is above 1000; it is lowered to 1000',
    ]),
    (N(0, sleep="1 0001234567890123456789"), {}, [
        'E 5:9+22 task 0: sleep: the number 0001234567890123456789 is out of range (at most 18 digits) = write a '
        'number of at most 18 digits',
        'E 5:7+24 task 0: sleep must be a number of seconds, got `1 0001234567890123456789` = for example sleep=1.5',
    ]),
    ("N=1234567890123456789\n" + N(0, timeout="@N@"), {}, [
        'E 6:9+3 task 0: timeout: the number 1234567890123456789 is out of range (at most 18 digits) = write a '
        'number of at most 18 digits',
        'W 6:9+3 task 0: timeout=1234567890123456789 is above 1000; it is lowered to 1000',
    ]),
    ("L=" + "x" * 1000 + "\n" + N(0, arguments="@L@" * 1000), {'security': False}, [
        'E 6:11+3000 task 0: arguments: expanding globals gives 1,003,000 characters, more than the limit of '
        '1,000,000 (chain: @L@) = use fewer or shorter globals in this field',
        'W 1:1+1 global variable L is never used',
    ]),
    ("S=@S@@S@@S@@S@\n" + N(0, arguments="@S@"), {}, [
        'E 6:11+3 task 0: arguments: expanding globals gives 3,145,728 characters, more than the limit of 1,000,000 '
        '(chain: @S@ -> @S@ -> @S@ -> @S@ -> @S@ -> @S@ -> @S@ -> @S@ -> ...) = a global that uses itself, or '
        'globals that each use another several times, grow at every step of the chain; use each global once',
    ]),
    (N(0, arguments="x @NOPE@ @task@"), {}, [
        'E 5:13+6 task 0: undefined global variable @NOPE@ in arguments = define it before the first task= line, '
        'e.g. NOPE=value',
    ]),
    ("task=0\nreturn=@NOPE@\n", {}, [
        'E 2:8+6 task 0: return must be a whole number, got `@NOPE@` = for example return=0 (success) or return=1',
    ]),
    ("SERVICE=a\nOTHER=b\n" + N(0, arguments="@SERVCE@ @OTHER@"), {}, [
        'E 7:11+8 task 0: undefined global variable @SERVCE@ in arguments = did you mean @SERVICE@?',
        'W 1:1+7 global variable SERVICE is never used',
    ]),
    (N(0, arguments="@host@"), {}, [
        "E 5:11+6 task 0: undefined global variable @host@ in arguments = @host@ is defined only inside a hostnames= "
        "block, where it is each member's host name",
    ]),
    (N(0, host="x"), {}, [
        'W 5:1+4 task 0: unknown field `host` is ignored = global variables must be defined before the first task= '
        'line; after it they define nothing',
    ]),
])
def test_exact_diagnostics_of_globals_ids_keys_and_expansion(text, options, expected):
    assert described(text, **options) == expected


@pytest.mark.parametrize("text,options,expected", [
    (N(0, success="exit_0,stdout~x"), {}, [
        'E 5:9+15 task 0: invalid success condition: `exit_0,stdout~x` is not an exit-code test = `,` does not '
        'combine conditions: write `|` for or, `&` for and',
    ]),
    ("C=exit_0,\n" + N(0, success="@C@"), {}, [
        'E 6:9+3 task 0: invalid success condition: `exit_0,` is not an exit-code test = `,` does not combine '
        'conditions: write `|` for or, `&` for and',
    ]),
    (N(0, next="loop&((exit_0)", loop=2), {}, [
        'E 5:6+14 task 0: invalid condition after next=loop&: missing `)` = close every `(` with a `)`',
    ]),
    (N(0, next=" Loop & exit_0", loop=2), {}, []),
    (N(0, next="5"), {}, [
        'E 5:6+1 task 0: next=5 is not allowed = to jump to task 5, write on_success=5 (or on_failure=5)',
    ]),
    (N(0, on_success="x"), {}, [
        'E 5:12+1 task 0: on_success must be a task id, got `x` = write the id of a later task, e.g. on_success=1',
    ]),
    (N(0, next="loop", loop="abc"), {}, [
        'E 6:6+3 task 0: loop must be a whole number from 1 to 1000, got `abc` = for example loop=3 together with '
        'next=loop',
    ]),
    (N(0, stdout_split="space"), {}, [
        'E 5:14+5 task 0: stdout_split must be DELIMITER,INDEX, got `space` = for example stdout_split=space,0 '
        '(delimiters: space, whitespace, tab, newline, comma, semicolon, semi, colon, pipe, or any text)',
    ]),
    (N(0, stdout_split="space,0"), {}, []),
    (N(0, stdout_split="space,-1"), {}, [
        'W 5:14+8 task 0: stdout_split index -1 is negative; the output is left unchanged',
    ]),
    (N(0, stderr_split="a,b,1"), {}, [
        'E 5:14+5 task 0: stderr_split must be DELIMITER,INDEX, got `a,b,1` = for example stderr_split=space,0 '
        '(delimiters: space, whitespace, tab, newline, comma, semicolon, semi, colon, pipe, or any text)',
    ]),
    (N(0, timeout="abc"), {}, [
        'E 5:9+3 task 0: timeout must be a whole number of seconds, got `abc` = for example timeout=30',
    ]),
    (N(0, timeout="2"), {}, [
        'W 5:9+1 task 0: timeout=2 is below 5; it is raised to 5',
    ]),
    (N(0, timeout="5", sleep="0"), {}, []),
    (N(0, timeout="1000"), {}, []),
    (N(0, timeout="1001"), {}, [
        'W 5:9+4 task 0: timeout=1001 is above 1000; it is lowered to 1000',
    ]),
    (N(0, sleep="soon"), {}, [
        'E 5:7+4 task 0: sleep must be a number of seconds, got `soon` = for example sleep=1.5',
    ]),
    (N(0, sleep="-0.5"), {}, [
        'W 5:7+4 task 0: sleep=-0.5 is below 0',
    ]),
    (N(0, sleep="@0_stdout@", timeout="@0_stdout@"), {}, []),
    ("task=0\nhostname=h\ntimeout=5\n", {}, [
        'E 1:6+1 task 0: missing `command` = every command task needs command=, e.g. command=echo',
        'E 3:1+7 task 0: timeout needs a command',
    ]),
    (N(0, exec="ftp"), {}, [
        'W 4:6+3 task 0: exec type `ftp` is not one of local, shell, pbrun, p7s, wwrs, ssh = it must be defined in '
        'the exec-type configuration',
    ]),
    (N(0, exec="ssh"), {}, []),
    (N(0, exec=" "), {}, []),
    (N(0, exec="@0_stdout@"), {}, []),
    (N(0, success="exit_0", failure="exit_1"), {}, [
        'E 6:1+7 task 0: success= and failure= cannot be used together = failure=COND means success=NOT COND: keep '
        'one of them',
    ]),
    (N(0, loop_break="exit_0"), {}, [
        'W 5:1+10 task 0: loop_break without loop has no effect',
    ]),
    (N(0, stdout_count="1", stderr_count="2"), {}, [
        'W 5:1+12 task 0: `stdout_count` has no effect = count lines in a condition instead, e.g. '
        'success=stdout_count>2',
        'W 6:1+12 task 0: `stderr_count` has no effect = count lines in a condition instead, e.g. '
        'success=stderr_count>2',
    ]),
    (N(0, condition="all_success", failure="min_success=2", loop_break="any_success", next="loop", loop=2), {}, [
        'E 5:11+11 task 0: `all_success` counts subtasks; it only applies to the success= or next= of parallel and '
        'conditional blocks',
        'E 6:9+13 task 0: `min_success=2` counts subtasks; it only applies to the success= or next= of parallel and '
        'conditional blocks',
        'E 7:12+11 task 0: `any_success` counts subtasks; it only applies to the success= or next= of parallel and '
        'conditional blocks',
    ]),
    (N(0, next="majority_success"), {}, [
        'E 5:6+16 task 0: `majority_success` counts subtasks; it only applies to the success= or next= of parallel '
        'and conditional blocks',
    ]),
    (N(0, next="loop", loop="0"), {}, [
        'E 6:6+1 task 0: loop must be from 1 to 1000, got 0',
    ]),
    (N(0, next="loop", loop="1001"), {}, [
        'E 6:6+4 task 0: loop must be from 1 to 1000, got 1001',
    ]),
    (N(0, next="loop", loop="101"), {}, [
        'W 6:6+3 task 0: loop=101 is unusually large',
    ]),
    (N(0, next="loop", loop="100"), {}, []),
    (N(0, next="loop", loop="1000"), {}, [
        'W 6:6+4 task 0: loop=1000 is unusually large',
    ]),
    (N(0, next="loop", loop="1"), {}, []),
    (N(0, loop="3", next="never"), {}, [
        'E 5:1+4 task 0: loop= needs next=loop = add next=loop (or next=loop&CONDITION to stop early)',
    ]),
    (N(0, next="never", on_failure=1) + N(1), {}, [
        'E 5:1+4 task 0: next= cannot be combined with on_failure= = use on_success=/on_failure= alone, or next= '
        'alone; for a block threshold with jumps write success=min_success=N with on_success/on_failure',
    ]),
    (N(0, next="never", on_success=1, on_failure=1) + N(1), {}, [
        'E 5:1+4 task 0: next= cannot be combined with on_success= = use on_success=/on_failure= alone, or next= '
        'alone; for a block threshold with jumps write success=min_success=N with on_success/on_failure',
    ]),
    (N(0, next="loop"), {}, [
        'E 5:6+4 task 0: next=loop needs loop=N = for example loop=3',
    ]),
    (N(1, on_success=1) + N(2), {}, [
        'E 5:12+1 task 1: on_success=1 jumps backwards = jumps go forward only: the target must be greater than 1; '
        'use next=loop to repeat a task',
    ]),
    (N(1, on_failure=0) + N(0), {}, [
        'E 5:12+1 task 1: on_failure=0 jumps backwards = jumps go forward only: the target must be greater than 1; '
        'use next=loop to repeat a task',
    ]),
    (N(0, on_failure=9) + N(1) + N(2) + N(3) + N(4) + N(5), {}, [
        'E 5:12+1 task 0: on_failure=9 names a task that does not exist = defined tasks nearby: 3, 4, 5',
    ]),
    (N(0, arguments="@7_stdout@ and @0_exit@", command="@8_stdout@"), {}, [
        'E 3:9+10 task 0: @8_stdout@ refers to task 8, which does not exist = defined tasks nearby: 0',
        'E 5:11+10 task 0: @7_stdout@ refers to task 7, which does not exist = defined tasks nearby: 0',
    ]),
    ("X=@7_stdout@\n" + N(0, arguments="@X@"), {}, [
        'E 6:11+3 task 0: @7_stdout@ refers to task 7, which does not exist = defined tasks nearby: 0',
    ]),
    (N(0, stdout_split="@7_stdout@,1"), {}, [
        'E 5:14+12 task 0: @7_stdout@ refers to task 7, which does not exist = defined tasks nearby: 0',
    ]),
    (N(0, arguments="@0_bogus@"), {}, [
        'W 5:11+9 task 0: @0_bogus@ is not a task result and stays as text = results are _stdout, _stderr, _exit, '
        '_success, _stdout_file ...',
    ]),
    (N(0, stdout_split="@0_bogus@,1"), {}, [
        'W 5:14+11 task 0: @0_bogus@ is not a task result and stays as text = results are _stdout, _stderr, _exit, '
        '_success, _stdout_file ...',
    ]),
    (N(0, success="@0_bogus@=1"), {}, []),
    (N(0, hostname="h;x", command="echo;", arguments="$(id)"), {}, [
        "E 2:10+3 task 0: hostname contains the shell character ';' = a host name has letters, digits, dots and "
        "dashes only",
        "E 3:9+5 task 0: command contains the shell character ';' = command is the program only; put its arguments "
        "in arguments=, or use exec=shell for shell syntax",
        'E 5:11+5 task 0: arguments contains shell command syntax `$(id)` = exec=local starts the program directly, '
        'without a shell: no shell would interpret this text. Use exec=shell if one should',
    ]),
    (N(0, exec="shell", arguments="$(date) | tr a b"), {}, []),
    (N(0, arguments="$(id)"), {'security': False}, []),
    ("task=0\nreturn=abc\n", {}, [
        'E 2:8+3 task 0: return must be a whole number, got `abc` = for example return=0 (success) or return=1',
    ]),
    ("task=0\nreturn=-3\n", {}, [
        'W 2:8+2 task 0: return=-3 is negative; the exit status is taken modulo 256',
    ]),
    ("task=0\nreturn=0\ntimeout=5\n", {}, [
        'E 3:1+7 task 0: a return task cannot have `timeout` = timeout only applies to tasks with a command',
    ]),
    ("task=0\ntype=wibble\nhostname=h\ncommand=c\n", {}, [
        'W 2:6+6 task 0: unknown type `wibble`; the task runs as a normal task = type is parallel, conditional or '
        'decision',
    ]),
    ("task=0\ntype=wibble\nreturn=0\n", {}, [
        'W 2:6+6 task 0: unknown type `wibble`; the task runs as a normal task = type is parallel, conditional or '
        'decision',
    ]),
    ("task=0\ntype=\nhostname=h\ncommand=c\n", {}, []),
    ("task=0\n", {}, [
        'E 1:6+1 task 0: missing `hostname` = every command task needs hostname=, e.g. hostname=localhost',
        'E 1:6+1 task 0: missing `command` = every command task needs command=, e.g. command=echo',
    ]),
    (N(0, success="exit_0|bogus"), {}, [
        'E 5:16+5 task 0: invalid success condition: unknown condition `bogus` = expected exit_N, exit_not_0, '
        'stdout~TEXT, stderr~TEXT, stdout_count>N, a comparison such as @3_stdout@=ready or exit<2, true or false',
    ]),
    (N(0, condition="exit_0|"), {'validate': False}, []),
])
def test_exact_diagnostics_of_task_fields(text, options, expected):
    assert described(text, **options) == expected


@pytest.mark.parametrize("text,options,expected", [
    (P(0), {}, [
        'E 1:6+1 task 0: a parallel block needs tasks= or hostnames= = for example tasks=10,11,12 or '
        'hostnames=web1,web2',
    ]),
    (P(0, tasks="100", hostnames="a,b", command="echo") + N(100), {}, [
        'E 4:1+9 task 0: a parallel block takes either tasks= or hostnames=, not both',
        'W 3:7+3 task 0: tasks lists 100, outside the conventional range 0-99 = renumber the subtasks, or pass '
        '--skip-subtask-range-validation',
    ]),
    (P(0, tasks=" "), {}, [
        'E 3:7+1 task 0: tasks= is empty = list the task ids to run',
    ]),
    (P(0, hostnames="a", command="echo"), {}, [
        'E 3:11+1 task 0: hostnames= needs at least 2 hosts = for a single host write a normal task with hostname=',
    ]),
    (P(0, hostnames="a,,b", command="echo"), {}, []),
    (P(0, hostnames=",".join(f"h{i}" for i in range(1001)), command="echo"), {}, [
        'E 3:11+4895 task 0: hostnames= lists 1001 hosts; the limit is 1000 = split the hosts over several parallel '
        'blocks',
    ]),
    (P(0, hostnames="a, -b ,999.1.1.1,c.,255.255.255.255,h_1," + "x" * 64, command="echo"), {}, [
        'E 3:14+2 task 0: `-b` is not a valid host name or IPv4 address',
        'E 3:18+9 task 0: `999.1.1.1` is not a valid host name or IPv4 address',
        'E 3:47+3 task 0: `h_1` is not a valid host name or IPv4 address',
        'E 3:51+64 task 0: `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx` is not a valid host '
        'name or IPv4 address',
    ]),
    (P(0, hostnames="a,b"), {}, [
        'E 1:6+1 task 0: a hostnames= block needs command= (run on every host) = for example command=uptime',
    ]),
    (P(0, tasks="100", failure="exit_1") + N(100), {}, [
        'E 4:1+7 task 0: a parallel block cannot have `failure` = a block succeeds by its subtasks: use '
        'success=min_success=N, all_success ...',
        'W 3:7+3 task 0: tasks lists 100, outside the conventional range 0-99 = renumber the subtasks, or pass '
        '--skip-subtask-range-validation',
    ]),
    (P(0, tasks="100", success="exit_0") + N(100), {}, [
        'E 4:9+6 task 0: success= of a parallel block must count its subtasks = use all_success, any_success, '
        'majority_success, min_success=N, max_success=N, min_failed=N or max_failed=N',
        'W 3:7+3 task 0: tasks lists 100, outside the conventional range 0-99 = renumber the subtasks, or pass '
        '--skip-subtask-range-validation',
    ]),
    (P(0, tasks="100", success="exit_0,") + N(100), {}, [
        'E 4:9+7 task 0: invalid success condition: `exit_0,` is not an exit-code test = `,` does not combine '
        'conditions: write `|` for or, `&` for and',
        'W 3:7+3 task 0: tasks lists 100, outside the conventional range 0-99 = renumber the subtasks, or pass '
        '--skip-subtask-range-validation',
    ]),
    (P(0, tasks="100", success="min_success=1 & all_success") + N(100), {}, [
        'W 3:7+3 task 0: tasks lists 100, outside the conventional range 0-99 = renumber the subtasks, or pass '
        '--skip-subtask-range-validation',
    ]),
    (P(0, tasks="100", next="loop") + N(100), {}, [
        "E 4:6+4 task 0: a parallel block cannot loop (next=loop) = loop inside the subtasks' own commands, or "
        "repeat the block with a jump",
        'W 3:7+3 task 0: tasks lists 100, outside the conventional range 0-99 = renumber the subtasks, or pass '
        '--skip-subtask-range-validation',
    ]),
    (P(0, tasks="100", timeout="5") + N(100), {}, [
        'E 4:1+7 task 0: a parallel block cannot have `timeout` = set timeout= on the tasks the block runs',
        'W 3:7+3 task 0: tasks lists 100, outside the conventional range 0-99 = renumber the subtasks, or pass '
        '--skip-subtask-range-validation',
    ]),
    (P(0, tasks="100, x ,101") + N(100) + N(101), {}, [
        'E 3:12+1 task 0: tasks lists `x`, which is not a task id = list task ids separated by commas, e.g. 10,11,12',
        'W 3:7+11 task 0: tasks lists 100, 101, outside the conventional range 0-99 = renumber the subtasks, or pass '
        '--skip-subtask-range-validation',
    ]),
    (P(0, tasks="100", max_parallel="x") + N(100), {}, [
        'E 4:14+1 task 0: max_parallel must be a whole number of at least 1, got `x` = for example max_parallel=8',
        'W 3:7+3 task 0: tasks lists 100, outside the conventional range 0-99 = renumber the subtasks, or pass '
        '--skip-subtask-range-validation',
    ]),
    (P(0, tasks="100", max_parallel="0") + N(100), {}, [
        'E 4:14+1 task 0: max_parallel must be a whole number of at least 1, got `0` = for example max_parallel=8',
        'W 3:7+3 task 0: tasks lists 100, outside the conventional range 0-99 = renumber the subtasks, or pass '
        '--skip-subtask-range-validation',
    ]),
    (P(0, tasks="100,101", max_parallel="3") + N(100) + N(101), {}, [
        'W 4:14+1 task 0: max_parallel=3 is more than the 2 subtasks',
        'W 3:7+7 task 0: tasks lists 100, 101, outside the conventional range 0-99 = renumber the subtasks, or pass '
        '--skip-subtask-range-validation',
    ]),
    (P(0, tasks="100,101", max_parallel="2") + N(100) + N(101), {}, [
        'W 3:7+7 task 0: tasks lists 100, 101, outside the conventional range 0-99 = renumber the subtasks, or pass '
        '--skip-subtask-range-validation',
    ]),
    (P(0, hostnames="a,b", command="c", max_parallel="3"), {}, [
        'W 5:14+1 task 0: max_parallel=3 is more than the 2 subtasks',
    ]),
    ("task=0\ntype=conditional\n", {}, [
        'E 1:6+1 task 0: a conditional block needs condition= = for example condition=@0_exit@=0',
        'E 1:6+1 task 0: a conditional block needs a non-empty if_true_tasks= = for example if_true_tasks=10,11',
        'E 1:6+1 task 0: a conditional block needs a non-empty if_false_tasks= = for example if_false_tasks=10,11',
    ]),
    ("task=0\ntype=conditional\ncondition=true\nif_true_tasks=\nif_false_tasks=1\nfailure=exit_1\n"
     "success=exit_0\n" + N(1), {}, [
        'E 4:15+1 task 0: a conditional block needs a non-empty if_true_tasks= = for example if_true_tasks=10,11',
        'E 6:1+7 task 0: a conditional block cannot have `failure` = a block succeeds by its branch tasks: use '
        'success=all_success, min_success=N ...',
        'E 7:9+6 task 0: success= of a conditional block must count its subtasks = use all_success, any_success, '
        'majority_success, min_success=N, max_success=N, min_failed=N or max_failed=N',
        'E 6:1+7 task 0: success= and failure= cannot be used together = failure=COND means success=NOT COND: keep '
        'one of them',
    ]),
    ("task=0\ntype=conditional\ncondition=true\nif_true_tasks=1\nif_false_tasks=2\nsuccess=all_success\n"
     + N(1) + N(2), {}, []),
    ("task=0\ntype=decision\n", {}, [
        'E 1:6+1 task 0: a decision block needs exactly one of success= or failure= = write the condition once, as '
        'success=COND (or failure=COND)',
        'W 1:6+1 task 0: decision block without on_success, on_failure or next = without routing the flow continues '
        'at the next task either way',
    ]),
    ("task=0\ntype=decision\nsuccess=true\nfailure=false\n", {}, [
        'E 4:1+7 task 0: a decision block needs exactly one of success= or failure= = write the condition once, as '
        'success=COND (or failure=COND)',
        'W 1:6+1 task 0: decision block without on_success, on_failure or next = without routing the flow continues '
        'at the next task either way',
    ]),
    ("task=0\ntype=decision\nfailure=true\ncommand=echo\nhostname=h\narguments=x\nexec=local\nstdout_split=a,1\n"
     "stderr_split=a,1\nstdout_count=1\nstderr_count=1\non_success=1\n" + N(1), {}, [
        'E 4:1+7 task 0: a decision block cannot have `command` = a decision runs no command; put the command in a '
        'task before it',
        'E 5:1+8 task 0: a decision block cannot have `hostname` = a decision runs no command; put the command in a '
        'task before it',
        'E 6:1+9 task 0: a decision block cannot have `arguments` = a decision runs no command; put the command in a '
        'task before it',
        'W 7:1+4 task 0: `exec` has no effect on a decision block',
        'W 8:1+12 task 0: `stdout_split` has no effect on a decision block',
        'W 9:1+12 task 0: `stderr_split` has no effect on a decision block',
        'W 10:1+12 task 0: `stdout_count` has no effect on a decision block',
        'W 11:1+12 task 0: `stderr_count` has no effect on a decision block',
    ]),
    ("task=0\ntype=decision\nsuccess=true\nnext=never\n", {}, []),
    (P(1, tasks="100,101,199,200,99") + N(99) + N(100) + N(101) + N(199) + N(200), {}, [
        'W 3:7+18 task 1: tasks lists 200, 99, outside the conventional range 100-199 = renumber the subtasks, or '
        'pass --skip-subtask-range-validation',
    ]),
    (P(1, tasks="100") + N(100), {'subtask_range': False}, []),
    (P(10, tasks="1000") + N(1000), {}, []),
    (P(9, tasks="900,999") + N(900) + N(999), {}, []),
    (P(9, tasks="5") + N(5), {}, [
        'W 3:7+1 task 9: tasks lists 5, outside the conventional range 900-999 = renumber the subtasks, or pass '
        '--skip-subtask-range-validation',
        'E 1:6+1 Task sequence has gaps: task 5 is followed by task 9; tasks 6..8 do not exist = after task 5 the '
        'flow continues at task 6, so task 9 would never run: renumber it to 6, or route to it with on_success=9',
        'W 1:6+1 task 9 is never reached = no task continues to it, jumps to it or runs it in a block',
    ]),
    (P(10, tasks="5") + N(5), {}, [
        'E 1:6+2 Task sequence has gaps: task 5 is followed by task 10; tasks 6..9 do not exist = after task 5 the '
        'flow continues at task 6, so task 10 would never run: renumber it to 6, or route to it with on_success=10',
        'W 1:6+2 task 10 is never reached = no task continues to it, jumps to it or runs it in a block',
    ]),
    (P(0, tasks="0,5"), {}, [
        'E 3:7+3 task 0: tasks lists the block itself',
        'E 3:7+3 task 0: tasks lists task 5, which does not exist = defined tasks nearby: 0',
    ]),
    (P(0, tasks="1") + P(1, tasks="2") + N(2), {}, [
        'E 3:7+1 task 0: tasks lists task 1, which is a parallel block; blocks do not nest',
        'W 6:7+1 task 1: tasks lists 2, outside the conventional range 100-199 = renumber the subtasks, or pass '
        '--skip-subtask-range-validation',
    ]),
    (P(0, tasks="100") + N(100, on_success=101, next="never", on_failure=102, loop=2, loop_break="exit_0")
     + N(101) + N(102), {}, [
        'E 11:1+4 task 100: loop= needs next=loop = add next=loop (or next=loop&CONDITION to stop early)',
        'E 9:1+4 task 100: next= cannot be combined with on_success= = use on_success=/on_failure= alone, or next= '
        'alone; for a block threshold with jumps write success=min_success=N with on_success/on_failure',
        'E 9:1+4 task 100: `next` is not allowed on a task that block 0 runs = a block decides the flow after its '
        'subtasks: move the routing to the block',
        'E 8:1+10 task 100: `on_success` is not allowed on a task that block 0 runs = a block decides the flow after '
        'its subtasks: move the routing to the block',
        'E 10:1+10 task 100: `on_failure` is not allowed on a task that block 0 runs = a block decides the flow '
        'after its subtasks: move the routing to the block',
        'E 11:1+4 task 100: `loop` is not allowed on a task that block 0 runs = a block decides the flow after its '
        'subtasks: move the routing to the block',
        'E 12:1+10 task 100: `loop_break` is not allowed on a task that block 0 runs = a block decides the flow '
        'after its subtasks: move the routing to the block',
        'W 3:7+3 task 0: tasks lists 100, outside the conventional range 0-99 = renumber the subtasks, or pass '
        '--skip-subtask-range-validation',
    ]),
    ("task=0\ntype=conditional\ncondition=true\nif_true_tasks=100\nif_false_tasks=101\n" + N(100) + N(101), {}, [
        'W 4:15+3 task 0: if_true_tasks lists 100, outside the conventional range 0-99 = renumber the subtasks, or '
        'pass --skip-subtask-range-validation',
        'W 5:16+3 task 0: if_false_tasks lists 101, outside the conventional range 0-99 = renumber the subtasks, or '
        'pass --skip-subtask-range-validation',
    ]),
    (P(0, hostnames="a,b", command="c") + P(1, tasks="100000"), {}, [
        'E 7:7+6 task 1: tasks lists task 100000, which does not exist = defined tasks nearby: 0, 1',
        'W 7:7+6 task 1: tasks lists 100000, outside the conventional range 100-199 = renumber the subtasks, or pass '
        '--skip-subtask-range-validation',
    ]),
    (N(0) + N(1) + N(3), {}, [
        'E 9:6+1 Task sequence has gaps: task 1 is followed by task 3; task 2 does not exist = after task 1 the flow '
        'continues at task 2, so task 3 would never run: renumber it to 2, or route to it with on_success=3',
        'W 9:6+1 task 3 is never reached = no task continues to it, jumps to it or runs it in a block',
    ]),
    (N(0) + N(1) + N(4), {}, [
        'E 9:6+1 Task sequence has gaps: task 1 is followed by task 4; tasks 2..3 do not exist = after task 1 the '
        'flow continues at task 2, so task 4 would never run: renumber it to 2, or route to it with on_success=4',
        'W 9:6+1 task 4 is never reached = no task continues to it, jumps to it or runs it in a block',
    ]),
    (N(0) + N(2), {}, [
        'E 5:6+1 Task sequence has gaps: task 0 is followed by task 2; task 1 does not exist = after task 0 the flow '
        'continues at task 1, so task 2 would never run: renumber it to 1, or route to it with on_success=2',
        'W 5:6+1 task 2 is never reached = no task continues to it, jumps to it or runs it in a block',
    ]),
    (N(0, on_success=2) + N(2), {}, []),
    (N(0, next="never") + N(2), {}, [
        'W 6:6+1 task 2 is never reached = no task continues to it, jumps to it or runs it in a block',
    ]),
    (N(0) + N(89), {}, [
        'E 5:6+2 Task sequence has gaps: task 0 is followed by task 89; tasks 1..88 do not exist = after task 0 the '
        'flow continues at task 1, so task 89 would never run: renumber it to 1, or route to it with on_success=89',
        'W 5:6+2 task 89 is never reached = no task continues to it, jumps to it or runs it in a block',
    ]),
    (N(0) + N(90), {}, [
        'W 5:6+2 task 90 is never reached = no task continues to it, jumps to it or runs it in a block',
    ]),
    (N(0) + N(999), {}, [
        'W 5:6+3 task 999 is never reached = no task continues to it, jumps to it or runs it in a block',
    ]),
    (N(0) + N(1000), {}, [
        'E 5:6+4 Task sequence has gaps: task 0 is followed by task 1000; tasks 1..999 do not exist = after task 0 '
        'the flow continues at task 1, so task 1000 would never run: renumber it to 1, or route to it with '
        'on_success=1000',
        'W 5:6+4 task 1000 is never reached = no task continues to it, jumps to it or runs it in a block',
    ]),
    (N(0) + "task=1\nreturn=0\n" + N(7), {}, [
        'W 7:6+1 task 7 is never reached = no task continues to it, jumps to it or runs it in a block',
    ]),
    (N(0) + N(1, arguments="@5_stdout@") + N(5), {}, [
        'W 10:6+1 task 5 is never reached = no task continues to it, jumps to it or runs it in a block',
    ]),
    (N(0, next="never") + N(1), {}, [
        'W 6:6+1 task 1 is never reached = no task continues to it, jumps to it or runs it in a block',
    ]),
    (N(0, on_success=2, on_failure=3) + N(1) + N(2, next="never") + N(3), {}, []),
    (P(0, hostnames="a,b", command="echo", next="never") + N(1), {}, [
        'W 6:6+1 task 1 is never reached = no task continues to it, jumps to it or runs it in a block',
    ]),
    (P(0, tasks="1", retry_count="3") + N(1), {}, []),
    (P(0, tasks="1", retry_failed="true") + N(1), {}, []),
    (P(0, tasks="1", retry_failed="TRUE ", retry_delay="0") + N(1), {}, []),
    (P(0, tasks="1", retry_failed="false", retry_delay="5") + N(1), {}, []),
    (P(0, tasks="1", retry_failed="yes") + N(1), {}, [
        'E 4:14+3 task 0: retry_failed must be true or false, got `yes`',
    ]),
    (P(0, tasks="1", retry_count="0") + N(1), {}, [
        'E 4:13+1 task 0: retry_count must be a whole number from 1 to 1000, got `0`',
    ]),
    (P(0, tasks="1", retry_count="1") + N(1), {}, []),
    (P(0, tasks="1", retry_count="1000") + N(1), {}, [
        'W 4:13+4 task 0: retry_count=1000 is unusually large',
    ]),
    (P(0, tasks="1", retry_count="1001") + N(1), {}, [
        'E 4:13+4 task 0: retry_count must be a whole number from 1 to 1000, got `1001`',
    ]),
    (P(0, tasks="1", retry_count="100") + N(1), {}, []),
    (P(0, tasks="1", retry_count="101") + N(1), {}, [
        'W 4:13+3 task 0: retry_count=101 is unusually large',
    ]),
    (P(0, tasks="1", retry_count="2", retry_delay="-1") + N(1), {}, [
        'E 5:13+2 task 0: retry_delay must be a whole number of at least 0, got `-1`',
    ]),
    (P(0, tasks="1", retry_count="2", retry_delay="300") + N(1), {}, []),
    (P(0, tasks="1", retry_count="2", retry_delay="301") + N(1), {}, [
        'W 5:13+3 task 0: retry_delay=301 is unusually large',
    ]),
    (P(0, tasks="1", retry_count="2", retry_delay="x") + N(1), {}, [
        'E 5:13+1 task 0: retry_delay must be a whole number of at least 0, got `x`',
    ]),
    (P(0, tasks="1", retry_count="@0_stdout@", retry_delay="@0_exit@") + N(1), {}, []),
    (N(0, retry_delay="3", retry_failed="true"), {}, [
        'W 6:1+12 task 0: retry_failed, retry_delay only apply to parallel and conditional blocks and are ignored '
        'here',
    ]),
])
def test_exact_diagnostics_of_blocks_and_the_sequence(text, options, expected):
    assert described(text, **options) == expected


# ----------------------------------------------------------------- the typed workflow


def typed(text: str, **kw):
    wf, diags = compile_text(text, **kw)
    return wf, [d.message for d in diags.items]


def test_hostnames_members_get_their_host_and_id_and_the_block_fields():
    wf, msgs = typed(N(0) + P(1, hostnames="a, b", command="run-@host@", arguments="@host@ @0_stdout@ @task@",
                              exec="ssh", timeout="30", success="exit_0"), validate=False)
    assert msgs == []
    block = wf.tasks[1]
    assert block.members == (110000, 110001)
    assert block.success is None                  # a per-host condition moves to the members
    for sid, host in ((110000, "a"), (110001, "b")):
        sub = wf.tasks[sid]
        assert (sub.kind, sub.parent, sub.span) == ("normal", 1, block.span)
        assert (sub.hostname.parts, sub.command.parts, sub.exec, sub.timeout) == ((host,), (f"run-{host}",),
                                                                                  block.exec, block.timeout)
        first, ref, last = sub.arguments.parts
        assert (first, ref.text, last) == (f"{host} ", "@0_stdout@", f" {sid}")
        assert sub.success == ExitCode(0)


def test_hostnames_members_keep_fields_without_placeholders_and_the_block_keeps_counting_conditions():
    wf, msgs = typed(N(0) + P(1, hostnames="a,b", command="c", arguments="@0_stdout@", success="all_success"))
    assert msgs == []
    assert wf.tasks[1].success == Multi("all_success")
    sub = wf.tasks[110001]
    assert sub.success is None
    assert sub.arguments is wf.tasks[1].arguments and sub.command is wf.tasks[1].command
    wf, _ = typed(P(0, hostnames="a,b"), validate=False)     # no command, no arguments
    assert (wf.tasks[100000].command, wf.tasks[100000].arguments.parts) == (None, ())


def test_hostnames_members_are_capped_and_not_generated_for_a_tasks_list():
    wf, _ = typed(P(0, hostnames=",".join(f"h{i}" for i in range(1001)), command="c"), validate=False)
    assert len(wf.tasks[0].members) == 1000 and wf.tasks[0].members[-1] == 100999
    assert wf.tasks[100999].hostname.parts == ("h999",)
    wf, _ = typed(P(0, tasks="1", hostnames="a,b", command="c") + N(1), validate=False)
    assert wf.tasks[0].members == (1,) and sorted(wf.tasks) == [0, 1]


@pytest.mark.parametrize("fields,retry", [
    ({"retry_count": "3"}, Retry(3, 1)),
    ({"retry_failed": "true"}, Retry(1, 1)),
    ({"retry_failed": " TRUE ", "retry_delay": "0"}, Retry(1, 0)),
    ({"retry_failed": "false", "retry_delay": "5"}, None),
    ({"retry_failed": "false", "retry_count": "2"}, Retry(2, 1)),
    ({"retry_delay": "5"}, None),
    ({"retry_count": "@0_stdout@"}, Retry(Template((TaskRef(0, "stdout", "@0_stdout@"),)), 1)),
    ({"retry_count": "x"}, Retry(Template(("x",)), 1)),      # as written: validation reports it
    ({"retry_count": "0", "retry_delay": "-1"}, Retry(Template(("0",)), Template(("-1",)))),
])
def test_retry_of_a_block(fields, retry):
    wf, _ = typed(N(0) + P(1, tasks="2", **fields) + N(2), validate=False)
    assert wf.tasks[1].retry == retry


def test_retry_fields_of_a_command_task_are_ignored():
    wf, _ = typed(N(0, retry_count="3", retry_failed="true"), validate=False)
    assert wf.tasks[0].retry is None


@pytest.mark.parametrize("value,expected", [
    ("LOOP", Next("loop", None)),
    ("Always", Next("always", None)),
    ("never", Next("never", None)),
    ("loop & exit_0", Next("loop", ExitCode(0))),
    ("7", Next("jump", 7)),
    ("success", Next("condition", Keyword("success"))),
    ("exit_0", Next("condition", ExitCode(0))),
])
def test_next_of_a_command_task(value, expected):
    wf, _ = typed(N(0, next=value, loop=2), validate=False)
    assert wf.tasks[0].next == expected


def test_next_success_of_a_block_means_all_subtasks_succeeded():
    wf, msgs = typed(P(1, tasks="100", next="Success") + N(100))
    assert msgs == [] and wf.tasks[1].next == Next("condition", Multi("all_success"))


@pytest.mark.parametrize("text,kind", [
    ("task=0\ntype= Parallel \nreturn=0\n", "parallel"),
    ("task=0\ntype=DECISION\nreturn=0\n", "decision"),
    ("task=0\ntype=conditional\nreturn=0\n", "conditional"),
    ("task=0\ntype=wibble\nreturn=0\n", "return"),
    ("task=0\nreturn=3\ncommand=echo\n", "normal"),
])
def test_kind_of_a_task(text, kind):
    wf, _ = typed(text, validate=False)
    assert wf.tasks[0].kind == kind


def test_values_of_typed_fields():
    wf, _ = typed(N(0, next="loop", loop="3", max_parallel="4", stdout_split=" tab ,-2", stderr_split="x,0")
                  + "task=1\nreturn= 3 \n", validate=False)
    task = wf.tasks[0]
    assert (task.loop, task.stdout_split, task.stderr_split) == (3, Split("tab", -2), Split("x", 0))
    assert wf.tasks[1].return_value == "3"


def test_a_global_whose_environment_variable_is_unset_takes_the_saved_value():
    from support import dedent

    from tasker.check.checker import CheckOptions, compile_workflow
    from tasker.syntax.taskfile import parse_taskfile

    tree = parse_taskfile(dedent("X=$A/$B\nY=$A\n" + N(0, arguments="@X@ @Y@")), "t.txt")
    wf, diags = compile_workflow(tree, CheckOptions(environ={"A": "a"}, saved_globals={"X": "saved", "Y": "old"}))
    assert diags.items == []
    assert (wf.globals["X"].value, wf.globals["Y"].value) == ("saved", "a")
    assert wf.unset_env == {"X": ["B"]}
    assert wf.tasks[0].arguments.parts == ("saved a",)


def test_skipped_validation_drops_every_warning_and_validation_error():
    text = "X=1\nX=2\n" + N(0, retry_count="3", colour="red") + "stray line\n" + N(2, arguments="@NOPE@")
    assert typed(text, validate=False)[1] == []


_LONGEST_HOST = ".".join(["a" * 63] * 3 + ["a" * 61])       # 253 characters, the most DNS allows


@pytest.mark.parametrize("host,valid", [
    ("255.255.255.255", True), ("0.0.0.0", True), ("256.1.1.1", False), ("1.2.3.300", False),
    ("web1.example.com", True), ("web1.example.com.", True), ("a-b", True), ("a..b", False), ("-a", False),
    ("a-", False), ("h_1", False), ("SRV-X", True), ("a" * 63, True), ("a" * 64, False),
    (_LONGEST_HOST, True), (_LONGEST_HOST + "b", False),
    ("@0_stdout@", True), ("db-@0_stdout@.example.com", True),     # resolved when the block runs
])
def test_host_names_of_a_hostnames_block(host, valid):
    msgs = errors(N(0) + P(1, hostnames=f"ok,{host}", command="c"))
    assert msgs == ([] if valid else [f"task 1: `{host}` is not a valid host name or IPv4 address"])


@pytest.mark.parametrize("text,options,expected", [
    ("SERVER=@HOSTNAME@\n" + N(0, hostname="@SERVER@") + N(1, hostname=" db-@0_stdout@ ", exec="ssh")
     + P(2, hostnames="a,@1_STDOUT@,b@X@", command="c"), {'unresolved_hosts': True, 'validate': False}, [
        'E 3:10+8 task 0: hostname `@SERVER@` has an unresolved reference: @HOSTNAME@ is not a defined global '
        'variable = host names are checked before anything runs; pass --skip-unresolved-host-validation to leave '
        'such hosts unchecked',
        'E 7:11+13 task 1: hostname `db-@0_stdout@` has an unresolved reference: @0_stdout@ is a task result, known '
        'only at run time = host names are checked before anything runs; pass --skip-unresolved-host-validation to '
        'leave such hosts unchecked',
        'E 12:11+17 task 2: hostnames entry `@1_STDOUT@` has an unresolved reference: @1_STDOUT@ is a task result, '
        'known only at run time = host names are checked before anything runs; pass '
        '--skip-unresolved-host-validation to leave such hosts unchecked',
        'E 12:11+17 task 2: hostnames entry `b@X@` has an unresolved reference: @X@ is not a defined global variable '
        '= host names are checked before anything runs; pass --skip-unresolved-host-validation to leave such hosts '
        'unchecked',
    ]),
    ("task=0\nhostname=@0_stdout@\nreturn=0\n" + N(1, hostname="web-1"),
     {'unresolved_hosts': True, 'validate': False}, []),
    (N(0, hostname="@0_stdout@"), {'validate': False}, []),
    (N(0, timeout="2.5"), {}, [
        'E 5:9+3 task 0: timeout must be a whole number of seconds, got `2.5` = for example timeout=30',
    ]),
])
def test_exact_diagnostics_of_unresolved_hosts_and_whole_seconds(text, options, expected):
    assert described(text, **options) == expected


@pytest.mark.parametrize("text,options,expected", [
    ("X=$NOPE\nB=@X@\n" + N(0), {}, [
        'W 1:1+1 global variable X is never used',
        'W 2:1+1 global variable B is never used',
    ]),
    (N(0, command="echo hi"), {}, [
        "W 3:9+7 task 0: command 'echo hi' contains a space: the whole text is the program name = put the program in "
        "command= and the rest in arguments=",
    ]),
    (P(0, hostnames="a,b", command="c") + N(1, on_success=100000), {}, [
        'E 9:12+6 task 1: on_success=100000 names a task that does not exist = defined tasks nearby: 0, 1',
    ]),
    (N(0, on_failure=2) + N(2), {}, []),
    (N(0, on_failure=5) + N(1) + N(5), {}, []),
    (N(0, on_success=5) + N(1) + N(5), {}, []),
    (P(0, tasks="5") + N(5), {}, []),
    ("task=0\ntype=conditional\ncondition=true\nif_true_tasks=1\nif_false_tasks=7\n" + N(1) + N(7), {}, []),
    (P(1, tasks="100,101", max_parallel="5") + N(100) + N(101, next="loop", loop=2), {}, [
        'W 4:14+1 task 1: max_parallel=5 is more than the 2 subtasks',
        'E 13:1+4 task 101: `next` is not allowed on a task that block 1 runs = a block decides the flow after its '
        'subtasks: move the routing to the block',
        'E 14:1+4 task 101: `loop` is not allowed on a task that block 1 runs = a block decides the flow after its '
        'subtasks: move the routing to the block',
    ]),
])
def test_exact_diagnostics_of_references_between_tasks_and_globals(text, options, expected):
    assert described(text, **options) == expected


def test_exec_type_aliases_match_whatever_their_case_and_unknown_types_name_the_configuration():
    exec_types = _configured(("ssh",), aliases={"Secure": "ssh"})
    assert not check_with("task=0\nhostname=h\ncommand=c\nexec=SECURE\n", exec_types).items
    searched = ("./types.yaml", "/etc/tasker/types.yaml")
    [error] = check_with("task=0\nhostname=h\ncommand=c\nexec=zzz\n", _configured((), None, searched=searched)).errors
    assert error.help == ("no exec-type configuration was found (searched: ./types.yaml, /etc/tasker/types.yaml), so "
                          "only local exists; another configuration is chosen with --exec-config FILE")


# ------------------------------------------------------------ expanding @NAME@ globals

@pytest.mark.parametrize(("text", "expected"), [
    ("@A@ and @UNDEFINED@", "1 and @UNDEFINED@"),   # an undefined name stays as written
    ("only @UNDEFINED@ here", "only @UNDEFINED@ here"),
    ("@B@", "1"),                                    # a chain: B names A
    ("no references", "no references"),
])
def test_expand_globals(text, expected):
    assert variables.expand_globals(text, {"A": "1", "B": "@A@"}) == expected


def test_expand_globals_stops_at_a_global_that_names_itself():
    assert variables.expand_globals("x @A@", {"A": "@A@"}) == "x @A@"


def test_expand_globals_allows_exactly_the_limit():
    limit = variables.MAX_EXPANSION
    assert len(variables.expand_globals("@A@", {"A": "x" * limit})) == limit
    with pytest.raises(variables.ExpansionTooLarge):
        variables.expand_globals("@A@", {"A": "x" * (limit + 1)})


def test_expand_globals_leaves_a_long_text_with_only_undefined_names_alone():
    text = "@UNDEFINED@" + "x" * variables.MAX_EXPANSION
    assert variables.expand_globals(text, {"A": "1"}) == text


@pytest.mark.parametrize(("steps", "shown"), [
    (8, "@N0@ -> @N1@ -> @N2@ -> @N3@ -> @N4@ -> @N5@ -> @N6@ -> @N7@)"),
    (9, "@N0@ -> @N1@ -> @N2@ -> @N3@ -> @N4@ -> @N5@ -> @N6@ -> @N7@ -> ...)"),
])
def test_expansion_too_large_names_up_to_eight_steps(steps, shown):
    error = variables.ExpansionTooLarge([f"N{i}" for i in range(steps)], 2_000_000)
    assert str(error) == ("expanding globals gives 2,000,000 characters, more than the limit of 1,000,000 "
                          f"(chain: {shown}")
