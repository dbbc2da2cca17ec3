"""A task's output substituted into later arguments is data: never $-expanded, unquoted or re-split
beyond plain blank splitting outside quotes; a host name from a substitution is checked before use."""

from __future__ import annotations

import sys

from tasker.runners.exectypes import Arguments, ExecTypes, Value, argument_words

HOSTILE = "$SECRET_TOKEN ${PATH} it's \"a  b\" \\x *"


def words(text: str, *values: str) -> list[str]:
    marked = text
    for i in range(len(values)):
        marked = marked.replace(f"@{i}@", f"\ufdd0{i}\ufdd1")
    return argument_words(marked, list(values))


def test_a_reference_outside_quotes_splits_on_blanks_and_joins_the_text_around_it():
    assert words("--name=@0@", "a b") == ["--name=a", "b"]
    assert words("x@0@y", " a  b ") == ["x", "a", "b", "y"]
    assert words("pre @0@ post", "") == ["pre", "post"]
    assert words("@0@", "   ") == []


def test_a_reference_inside_quotes_stays_in_its_word():
    assert words('"--name=@0@"', "a  b") == ["--name=a  b"]
    assert words("'@0@'", "") == [""]


def test_characters_of_a_value_are_never_interpreted():
    assert words("@0@", HOSTILE) == ["$SECRET_TOKEN", "${PATH}", "it's", '"a', 'b"', "\\x", "*"]
    assert words('"@0@"', HOSTILE) == [HOSTILE]


def test_env_is_expanded_in_the_files_text_only():
    types = ExecTypes(environ={"HOME": "/home/u", "SECRET_TOKEN": "leak"})
    args = Arguments(["$HOME ", Value("$SECRET_TOKEN it's"), ' "$HOME"'])
    assert types.argv("local", "h", "echo", args) == ["echo", "/home/u", "$SECRET_TOKEN", "it's", "/home/u"]


def test_marker_characters_written_in_the_file_stay_text_and_never_take_a_values_place():
    types = ExecTypes(environ={})
    mark = "x\ufdd00\ufdd1y"            # what a value's place looks like inside tasker
    args = Arguments([f"{mark} '{mark}' ", Value("v w")])
    assert types.argv("local", "h", "echo", args) == ["echo", mark, mark, "v", "w"]


def test_a_backslash_before_a_value_escapes_nothing_and_never_leaves_the_values_place_behind():
    types = ExecTypes(environ={})
    assert types.argv("local", "h", "echo", Arguments(["\\", Value("v w")])) == ["echo", "v", "w"]
    assert types.argv("local", "h", "echo", Arguments(["a\\", Value("v w"), "b"])) == ["echo", "av", "wb"]
    assert types.argv("local", "h", "echo", Arguments(['"\\', Value("v"), '"'])) == ["echo", "\\v"]  # as in sh
    assert types.argv("local", "h", "echo", Arguments(["\\\\", Value("v")])) == ["echo", "\\v"]


def test_end_to_end_output_cannot_read_taskers_environment_nor_break_quoting(tasker):
    produced = tasker.tmp / "produced"
    produced.write_text(HOSTILE)
    flow = tasker.write(f"""
        task=0
        hostname=localhost
        command=cat
        arguments={produced}
        exec=local

        task=1
        hostname=localhost
        command={sys.executable}
        arguments=-c "import sys; print(sys.argv[1:])" --v=@0_stdout@ "--q=@0_stdout@"
        exec=local
        """)
    r = tasker.run(flow, "-r", env={"SECRET_TOKEN": "t0psecret-value"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "t0psecret-value" not in r.stdout + r.stderr
    expected = ["--v=$SECRET_TOKEN", "${PATH}", "it's", '"a', 'b"', "\\x", "*", "--q=" + HOSTILE]
    assert f"STDOUT: {expected!r}" in r.stdout, r.stdout


def fake_p7s(tasker):
    """A ``p7s`` on PATH that records each argv it gets."""
    bin_dir = tasker.tmp / "bin"
    bin_dir.mkdir()
    calls = tasker.tmp / "p7s-calls"
    script = bin_dir / "p7s"
    script.write_text(f"#!{sys.executable}\nimport sys\nopen({str(calls)!r}, 'a').write(repr(sys.argv) + '\\n')\n"
                      "print('OK')\n")
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}, calls


def test_a_host_name_from_output_is_checked_before_use(tasker):
    env, calls = fake_p7s(tasker)
    for hostile in ("-oProxyCommand=touch /tmp/pwned", "web1;reboot"):
        calls.unlink(missing_ok=True)
        (tasker.tmp / "host").write_text(hostile)
        flow = tasker.write(f"""
            task=0
            hostname=localhost
            command=cat
            arguments={tasker.tmp / 'host'}
            exec=local

            task=1
            hostname=@0_stdout@
            command=uptime
            exec=p7s
            """)
        r = tasker.run(flow, "-r", "--skip-unresolved-host-validation", env=env)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "Task 1: refused: hostname" in r.stdout
        assert not calls.exists(), calls.read_text()
        assert "Traceback" not in r.stdout + r.stderr
    (tasker.tmp / "host").write_text("web1")
    r = tasker.run(flow, "-r", "--skip-unresolved-host-validation", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "'web1', 'uptime'" in calls.read_text()


def test_a_static_host_name_starting_with_a_dash_is_refused_in_any_case(tasker):
    env, calls = fake_p7s(tasker)
    flow = tasker.write("""
        task=0
        hostname=-oProxyCommand=x
        command=uptime
        exec=p7s
        """)
    r = tasker.run(flow, "-r", "--skip-host-validation", env=env)
    assert r.returncode == 20 and "starts with '-'" in r.stdout + r.stderr
    r = tasker.run(flow, "-r", "--skip-validation", env=env)
    assert r.returncode == 1 and "Task 0: refused: hostname" in r.stdout
    assert not calls.exists()
