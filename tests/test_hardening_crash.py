"""Hostile or careless input never crashes tasker: each case ends with a clear message and its exit code."""

from __future__ import annotations

import contextlib
import json

import pytest

from tasker.runners.base import Cancel
from tasker.runners.process import ProcessRunner


def no_traceback(result) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stdout[-3000:] + result.stderr[-3000:]


def local_task(tid: int, command: str, arguments: str = "", *extra: str) -> str:
    lines = [f"task={tid}", "hostname=localhost", "exec=local", f"command={command}"]
    if arguments:
        lines.append(f"arguments={arguments}")
    return "\n".join([*lines, *extra]) + "\n"


# ----------------------------------------------------------------- values the OS cannot take


def test_nul_byte_in_output_fails_the_next_task_like_a_spawn_error(tasker):
    data = tasker.tmp / "nul.bin"
    data.write_bytes(b"a\0b")
    flow = tasker.write(local_task(0, "cat", str(data)) + local_task(1, "echo", "@0_stdout@"))
    for args in (("-r",), ("-r", "--auto-recovery"), ("-r", "--auto-recovery")):   # then twice resumed
        r = tasker.run(flow, *args)
        no_traceback(r)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "Task 1: could not start" in r.stdout and "NUL byte" in r.stdout


@pytest.mark.parametrize("argv", [["echo", "a\0b"], ["ec\0ho"], ["echo", "\ud800"], [""]])
def test_runner_refuses_what_the_os_cannot_take(argv):
    cancel = Cancel()
    try:
        result = ProcessRunner().run(argv, 30, cancel)
    finally:
        cancel.close()
    assert result.exit_code == 1 and result.error.startswith("cannot start the command")


def test_runner_refuses_an_environment_with_a_nul_byte():
    cancel = Cancel()
    try:
        result = ProcessRunner(env={"A": "x\0y"}).run(["true"], 30, cancel)
    finally:
        cancel.close()
    assert result.exit_code == 1 and "environment variable 'A'" in result.error


# ----------------------------------------------------------------- deep condition nesting


def nested(depth: int, atom: str = "exit_1") -> str:
    """``exit_1|(exit_1&(exit_1|(... exit_0)))``: ``depth`` levels of alternating parentheses."""
    text = "exit_0"
    for level in range(depth):
        text = f"{atom}{'|' if level % 2 == 0 else '&'}({text})"
    return text


def test_nesting_at_the_limit_runs_through_every_stage(tasker):
    from tasker.syntax.condlex import MAX_NESTING

    flow = tasker.write(local_task(0, "true", "", f"success={nested(MAX_NESTING, 'exit_0')}",
                                       f"next={nested(MAX_NESTING, 'exit_0')}")
                        + local_task(1, "true", "", f"condition={nested(MAX_NESTING, '@0_exit@=1')}"))
    out = tasker.tmp / "out.json"
    r = tasker.run(flow, "-r", "--auto-recovery", f"--output-json={out}")
    no_traceback(r)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    for fmt in ("text", "dot", "mermaid"):
        r = tasker.run(flow, "-y", "--show-plan", f"--plan-format={fmt}")
        no_traceback(r)
        assert r.returncode == 0


def test_nesting_beyond_the_limit_is_a_diagnostic(tasker):
    from tasker.syntax.condlex import MAX_NESTING

    flow = tasker.write(local_task(0, "true", "", f"success={nested(MAX_NESTING + 1)}"))
    r = tasker.run(flow, "--validate-only")
    no_traceback(r)
    assert r.returncode == 20
    assert "flow.txt:5:" in r.stderr + r.stdout and f"nested more than {MAX_NESTING} deep" in r.stdout + r.stderr


@pytest.mark.parametrize("depth", [350, 1000, 5000])
def test_deep_nesting_never_crashes_even_without_validation(tasker, depth):
    flow = tasker.write(local_task(0, "true", "", f"success={nested(depth)}", f"next={nested(depth)}"))
    for args in (("--validate-only",), ("-y", "--show-plan", "--skip-validation"), ("-r", "--skip-validation")):
        r = tasker.run(flow, *args)
        no_traceback(r)
        # 20: invalid; 1: the run fails (the condition is false); a dry run may also end 0
        assert r.returncode in ((1, 20) if "-r" in args or "--validate-only" in args else (0, 1)), \
            r.stdout[-2000:] + r.stderr[-2000:]


# ----------------------------------------------------------------- numbers too long to convert

HUGE = "9" * 5000     # Python refuses to convert more than 4,300 digits


@pytest.mark.parametrize("lines", [
    [f"task={HUGE}", "hostname=localhost", "command=true"],
    *(["task=0", "hostname=localhost", "command=true", f"{key}={HUGE}"]
      for key in ("timeout", "loop", "on_success", "on_failure", "return", "max_parallel", "retry_count",
                  "retry_delay", "sleep", "next", "stdout_split=space,", "stderr_split=comma,")),
    *(["task=0", "hostname=localhost", "command=true", f"success={cond}"]
      for cond in (f"exit_{HUGE}", f"stdout_count>{HUGE}", f"@{HUGE}_exit@=0", f"exit_0|exit_{HUGE}")),
    ["task=0", "type=parallel", f"tasks=1,{HUGE}", "next=min_success=" + HUGE, "task=1", "hostname=localhost",
     "command=true"],
    ["task=0", "hostname=localhost", "command=true", f"arguments=@{HUGE}_stdout@"],
    ["task=0", f"hostname={HUGE}.1.1.1", "command=true"],
    [f"N={HUGE}", "task=0", "hostname=localhost", "command=true", "timeout=@N@"],
], ids=lambda lines: next((line.split("=")[0] for line in reversed(lines) if HUGE in line), "?"))
def test_huge_numbers_in_a_task_file_are_diagnostics(tasker, lines):
    lines = [line + HUGE if line.endswith("split=space,") or line.endswith("split=comma,") else line
             for line in lines]
    flow = tasker.write("\n".join(lines) + "\n")
    r = tasker.run(flow, "--validate-only")
    no_traceback(r)
    assert r.returncode == 20, r.stdout[-2000:] + r.stderr[-2000:]
    assert len(r.stdout + r.stderr) < 200_000     # a diagnostic, not an echo of every digit


@pytest.mark.parametrize("flag", ["--timeout", "--start-from"])
def test_huge_numbers_on_the_command_line_are_usage_errors(tasker, flag):
    flow = tasker.write(local_task(0, "true"))
    r = tasker.run(flow, f"{flag}={HUGE}")
    no_traceback(r)
    assert r.returncode == 2 and "5000 digits" in r.stderr


def test_huge_numbers_in_task_output_are_values_not_crashes(tasker):
    digits = tasker.tmp / "digits"
    digits.write_text(HUGE + "\n")
    flow = tasker.write(local_task(0, "cat", str(digits))
                        + local_task(1, "true", "", "timeout=@0_stdout@", "sleep=0", "success=exit_0")
                        + "task=2\ntype=parallel\ntasks=10\nretry_failed=true\nretry_count=@0_stdout@\n"
                        + local_task(10, "true", "", "timeout=@0_stdout@")
                        + "task=3\nreturn=@0_stdout@\n")
    r = tasker.run(flow, "-r", "--skip-validation")
    no_traceback(r)
    assert r.returncode == 50, r.stdout[-3000:] + r.stderr[-3000:]   # an invalid return value


def test_an_infinite_sleep_waits_until_cancelled():
    import threading

    from tasker.runners.base import SystemClock

    cancel = Cancel()
    timer = threading.Timer(0.2, cancel.set, (15,))
    timer.start()
    try:
        assert SystemClock().sleep(float("inf"), cancel) is False
    finally:
        timer.cancel()
        cancel.close()


# ----------------------------------------------------------------- a reader that went away (EPIPE)


def run_with_closed_stdout(tasker, *args: str, stderr_too: bool = False) -> tuple[int, str]:
    """Run tasker with stdout (and maybe stderr) a pipe whose reader is already gone."""
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        err = write_end if stderr_too else subprocess.PIPE
        proc = subprocess.run([sys.executable, "-m", "tasker", *args], stdout=write_end, stderr=err,
                              env=tasker.env(), cwd=tasker.tmp, timeout=120)
    finally:
        os.close(write_end)
    return proc.returncode, (proc.stderr or b"").decode()


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["--show-effective-args", "flow.txt"],
                                  ["--validate-only", "flow.txt"], ["--show-recovery-info", "flow.txt"]])
def test_closed_stdout_is_not_a_traceback(tasker, args):
    tasker.write(local_task(0, "true"))
    _code, err = run_with_closed_stdout(tasker, *args)
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_closed_console_keeps_the_run_and_its_exit_code(tasker):
    flow = tasker.write(local_task(0, "echo", "one") + local_task(1, "false") + local_task(2, "echo", "two"))
    code, _err = run_with_closed_stdout(tasker, "-r", str(flow), stderr_too=True)
    assert code == 1
    logs = list((tasker.home / "TASKER" / "log").glob("flow_*.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    assert "Task 1: Exit code: 1" in text and "FAILURE: exit code 1" in text


# ----------------------------------------------------------------- reports that cannot be written


@pytest.mark.parametrize("failing", [False, True])
def test_unwritable_project_summary_warns_and_keeps_exit_code_and_alert(tasker, failing):
    (tasker.home / "TASKER").mkdir()
    (tasker.home / "TASKER" / "project").write_text("a file where the directory should be\n")
    marker = tasker.tmp / "alerted"
    script = tasker.tmp / "alert.sh"
    script.write_text(f"#!/bin/sh\necho \"$TASKER_EXIT_CODE\" > {marker}\n")
    flow = tasker.write(local_task(0, "false" if failing else "true"))
    r = tasker.run(flow, "-r", "-p", "proj", f"--alert-on-failure={script}")
    no_traceback(r)
    assert r.returncode == (1 if failing else 0), r.stdout + r.stderr
    assert "could not write the project summary" in r.stdout
    if failing:
        assert marker.read_text().strip() == "1"
    else:
        assert not marker.exists()


# ----------------------------------------------------------------- damaged recovery files


def _set(path: str, value):
    """A mutator that sets the dotted ``path`` of the state to ``value``."""
    def apply(doc):
        *parents, last = path.split(".")
        node = doc
        for name in parents:
            node = node.setdefault(name, {}) if isinstance(node, dict) else node[int(name)]
        node[last] = value
        return doc
    return apply


def _raw(text: str):
    return lambda _doc: text


def _replace_number(path: str, literal: str):
    """Set ``path`` to a marker, then swap the marker for a JSON literal json.dumps cannot write."""
    def apply(doc):
        return json.dumps(_set(path, "@@MARK@@")(doc)).replace('"@@MARK@@"', literal)
    return apply


REC = "task_results.0"
DAMAGE = {
    "results-list": _set("task_results", []),
    "results-string": _set("task_results", "x"),
    "results-null": _set("task_results", None),
    "record-string": _set(REC, "x"),
    "record-list": _set(REC, [1, 2]),
    "exit-1e400": _replace_number(f"{REC}.exit_code", "1e400"),
    "exit-infinity": _replace_number(f"{REC}.exit_code", "Infinity"),
    "exit-nan": _replace_number(f"{REC}.exit_code", "NaN"),
    "exit-5000-digits": _replace_number(f"{REC}.exit_code", HUGE),
    "exit-30-digits": _set(f"{REC}.exit_code", 10 ** 30),
    "exit-text": _set(f"{REC}.exit_code", "one"),
    "exit-object": _set(f"{REC}.exit_code", {}),
    "stdout-number": _set(f"{REC}.stdout", 5),
    "success-text": _set(f"{REC}.success", "yes"),
    "start-text": _set(f"{REC}.start", "noon"),
    "start-1e400": _replace_number(f"{REC}.start", "1e400"),
    "counts-text": _set(f"{REC}.counts", "ab"),
    "counts-items": _set(f"{REC}.counts", [1, "x"]),
    "result-key": _set("task_results.abc", {"exit_code": 0}),
    "path-string": _set("execution_path", "0"),
    "path-null-item": _set("execution_path", [None]),
    "path-float": _set("execution_path", [1.5]),
    "metadata-list": _set("global_vars_metadata", []),
    "metadata-item": _set("global_vars_metadata", {"X": "env"}),
    "globals-list": _set("global_vars", []),
    "globals-object": _set("global_vars", {"X": {"a": 1}}),
    "failure-string": _set("failure_info", "boom"),
    "failure-list": _set("failure_info", []),
    "failure-task": _set("failure_info", {"task_id": "x", "exit_code": 1, "error": "e"}),
    "last-ok-text": _set("last_successful_task", "x"),
    "next-list": _set("intended_next_task", []),
    "hash-number": _set("task_file_hash", 5),
    "vm-list": _set("vm", []),
    "vm-branch-list": _set("vm.branch", []),
    "vm-branch-value": _set("vm.branch", {"1": 5}),
    "vm-loops-value": _set("vm.loops", {"0": 5}),
    "vm-loops-short": _set("vm.loops", {"0": [1]}),
    "vm-loops-key": _set("vm.loops", {"x": [1, 1, False]}),
    "vm-final-string": _set("vm.final", "x"),
    "vm-final-short": _set("vm.final", [1]),
    "vm-subtasks-string": _set("vm.subtasks", {"1": "abc"}),
    "vm-subtasks-null": _set("vm.subtasks", {"1": [None]}),
    "vm-fork-done-pair": _set("vm.fork_done", {"1": [[1]]}),
    "vm-fork-done-id": _set("vm.fork_done", {"1": [["x", {}]]}),
    "vm-members-record": _set("vm.members", {"1": [[1, "rec"]]}),
    "vm-pc-number": _set("vm.pc", 5),
    "vm-pc-unknown": _set("vm.pc", "nowhere"),
    "vm-steps-text": _set("vm.steps", "x"),
    "vm-steps-1e400": _replace_number("vm.steps", "1e400"),
    "vm-in-flight-text": _set("vm.in_flight", "0"),
    "vm-in-flight-huge": _set("vm.in_flight", 10 ** 20),
    "vm-resumed-number": _set("vm.resumed_from", 5),
    "old-format-next": lambda doc: {k: v for k, v in _set("intended_next_task", "x")(doc).items() if k != "vm"},
    "old-format-last-ok": lambda doc: json.dumps({k: v for k, v in _set("last_successful_task", "@@M@@")(doc).items()
                                                  if k != "vm"}).replace('"@@M@@"', "1e400"),
    "document-list": _raw("[]"),
    "document-null": _raw("null"),
    "document-string": _raw('"state"'),
    "nested-100000": _raw("[" * 100_000 + "]" * 100_000),
    "nested-object": _raw('{"a":' * 100_000 + "1" + "}" * 100_000),
    "truncated": lambda doc: json.dumps(doc)[: len(json.dumps(doc)) // 2],
    "empty": _raw(""),
    "not-utf8": _raw("\udcff"),
    "version-number": _set("version", 1.0),
    "no-version": lambda doc: {k: v for k, v in doc.items() if k != "version"},
}


@pytest.fixture
def damaged_state(tasker):
    """A kept recovery state (task 1 failed) and a function that writes a damaged copy of it."""
    import json as _json

    flow = tasker.write(local_task(0, "true") + local_task(1, "false") + local_task(2, "true"))
    first = tasker.run(flow, "-r", "--auto-recovery")
    assert first.returncode == 1, first.stdout[-2000:]
    (state,) = (tasker.home / "TASKER" / "recovery").glob("*.recovery.json")
    good = state.read_text()

    def damage(name: str) -> None:
        out = DAMAGE[name](_json.loads(good))
        text = out if isinstance(out, str) else _json.dumps(out)
        state.write_bytes(text.encode("utf-8", "surrogateescape"))
    return flow, damage


def test_every_damaged_recovery_file_is_refused_with_exit_12(tasker, damaged_state, capsys, monkeypatch):
    """In process (fast): each variant, resumed and described, ends with exit 12 or a description."""
    from tasker.cli.main import main

    flow, damage = damaged_state
    monkeypatch.setenv("HOME", str(tasker.home))
    monkeypatch.chdir(tasker.tmp)
    assert len(DAMAGE) >= 40
    wrong = {}
    for name in DAMAGE:
        damage(name)
        try:
            code = main(["-r", "--auto-recovery", str(flow)])
            info = main(["--show-recovery-info", str(flow)])
        except BaseException as exc:
            wrong[name] = f"{type(exc).__name__}: {str(exc)[:200]}"
            continue
        out = capsys.readouterr()
        if code != 12 or info != 0 or "cannot resume" not in out.out + out.err:
            wrong[name] = f"exit {code}/{info}: {(out.out + out.err)[-300:]}"
    assert not wrong, wrong


@pytest.mark.parametrize("name", ["exit-1e400", "vm-branch-list", "nested-100000", "results-list"])
def test_damaged_recovery_file_end_to_end(tasker, damaged_state, name):
    flow, damage = damaged_state
    damage(name)
    for args in (("-r", "--auto-recovery"), ("--show-recovery-info",)):
        r = tasker.run(flow, *args)
        no_traceback(r)
        assert r.returncode == (12 if "-r" in args else 0), r.stdout[-2000:] + r.stderr[-2000:]


# ----------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs (root only); grown to 16 MiB by calling the returned function."""
    import os
    import subprocess

    path = tmp_path / "small"
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")

    def grow() -> None:
        subprocess.run(["mount", "-o", "remount,size=16m", str(path)], check=True)
    try:
        yield path, grow
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_full_disk_while_checkpointing_stops_cleanly_and_resumes_later(tasker, small_disk):
    import sys

    disk, grow = small_disk
    out = tasker.tmp / "ran"
    out.mkdir()
    members = [200 + i for i in range(20)]
    text = local_task(0, "true") + f"task=1\ntype=parallel\nmax_parallel=4\ntasks={','.join(map(str, members))}\n"
    for sid in members:
        text += local_task(sid, sys.executable, f"-c \"print('x' * 6000); open('{out}/{sid}', 'a').write('1')\"")
    flow = tasker.write(text + local_task(2, "true"))
    r = tasker.run(flow, "-r", "--auto-recovery", "-l", disk)
    no_traceback(r)
    assert r.returncode == 1, r.stdout[-3000:]
    assert r.stdout.count("could not write the recovery state") >= 1
    assert "No space left on device" in r.stdout
    recovery = disk / "recovery"
    assert not list(recovery.glob("*.tmp")), list(recovery.iterdir())
    (state,) = recovery.glob("*.recovery.json")
    json.loads(state.read_text())          # the last good state, whole
    grow()
    r = tasker.run(flow, "-r", "--auto-recovery", "-l", disk)
    no_traceback(r)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "Resuming from" in r.stdout
    assert sorted(int(p.name) for p in out.iterdir()) == members
    assert not list(recovery.iterdir())


def test_log_file_that_stops_taking_lines_is_said_once_on_the_console():
    import io

    from tasker.report.log import Log

    console = io.StringIO()
    log = Log(stream=console)
    log.open("/dev/full")       # every write fails with ENOSPC
    try:
        for n in range(3):
            log.info(f"line {n}")
    finally:
        with contextlib.suppress(OSError):
            log.close()
    text = console.getvalue()
    assert text.count("could not write the log file /dev/full") == 1
    assert all(f"line {n}" in text for n in range(3))


# ----------------------------------------------------------------- globals that explode


@pytest.mark.parametrize("globals_", [
    ["S=@S@@S@@S@@S@@S@@S@@S@@S@"],
    ["A=@B@@B@@B@@B@", "B=@C@@C@@C@@C@", "C=@A@@A@@A@@A@"],
    ["S=" + "x" * 1000, "T=" + "@S@" * 300, "U=@T@@T@@T@@T@"],
], ids=["self", "cycle", "fan-out"])
def test_exploding_globals_are_capped_with_the_chain(tasker, globals_):
    flow = tasker.write("\n".join(globals_) + "\n" + local_task(0, "echo", "@" + globals_[-1].split("=")[0] + "@"))
    r = tasker.run(flow, "--validate-only", timeout=60)
    no_traceback(r)
    assert r.returncode == 20, r.stdout[-2000:] + r.stderr[-2000:]
    assert "more than the limit of 1,000,000" in r.stderr + r.stdout and "(chain: @" in r.stderr + r.stdout


def test_many_uses_of_a_long_global_on_one_line_are_capped(tasker):
    flow = tasker.write("S=" + "x" * 1000 + "\n" + local_task(0, "echo", "@S@" * 2000))
    r = tasker.run(flow, "--validate-only")
    no_traceback(r)
    assert r.returncode == 20 and "more than the limit" in r.stderr + r.stdout


def test_expand_globals_stops_before_building_a_huge_text():
    from tasker.check.variables import MAX_EXPANSION, ExpansionTooLarge, expand_globals

    values = {"S": "@S@" * 8}
    with pytest.raises(ExpansionTooLarge) as info:
        expand_globals("@S@", values)
    assert info.value.chain[0] == "S" and info.value.size <= 8 * MAX_EXPANSION
    assert expand_globals("@A@", {"A": "@B@", "B": "done"}) == "done"


# ----------------------------------------------------------------- long conditions parse in linear time


@pytest.mark.parametrize("joiner,atom", [("|", "exit_0"), ("&", "stdout~a"), ("|", "stdout~\"a|b\"&exit_0")])
def test_long_conditions_copy_each_item_a_bounded_number_of_times(monkeypatch, joiner, atom):
    """Counted, not timed: every AnyOf/AllOf built while parsing, and how many items each held."""
    from tasker.syntax import condition
    from tasker.syntax.ast import AllOf, AnyOf

    built = []
    for cls in (AnyOf, AllOf):
        def counting(self, items, *args, _init=cls.__init__, **kwargs):
            built.append(len(items))
            _init(self, items, *args, **kwargs)
        monkeypatch.setattr(cls, "__init__", counting)
    n = 5000
    text = joiner.join([atom] * n)
    condition._parse(text)
    assert sum(built) <= 3 * n, f"{len(built)} nodes built holding {sum(built)} items for {n} atoms"
    monkeypatch.undo()
    tree = condition._parse(text)
    assert condition._parse(condition.show(tree)) == tree


# ----------------------------------------------------------------- splitting a spilled output


def spilled(tmp_path, text: str):
    from tasker.runners.output import Output

    path = tmp_path / f"spill{len(list(tmp_path.iterdir()))}"
    path.write_text(text)
    return Output(path=str(path), size=path.stat().st_size)


def _split(out, delimiter: str, index: int):
    from tasker.syntax.ast import Split
    from tasker.vm.split import apply_split

    return apply_split(out, Split(delimiter, index))


def test_split_of_a_spilled_output_gives_the_same_field_as_in_memory(tmp_path):
    from tasker.runners.output import Output

    mib = 1024 * 1024
    # delimiters right at and around the 1 MiB read boundaries, runs of blanks across them
    text = ("a" * (mib - 3) + "   b,c;" + "x" * (mib + 5) + " \t d" + "y" * 700_000 + ",last\n")
    cases = [("space", i) for i in range(5)] + [("whitespace", i) for i in range(5)] + \
            [("comma", 0), ("comma", 1), ("comma", 2), ("comma", 9), ("semicolon", 1), ("newline", 0),
             ("(,)", 1), ("(,)", 2), ("(,)", 3), ("b(,)?c", 1), ("zzz", 0), ("zzz", 1), ("d", 1),
             ("c(Q)?;", 1), ("c(Q)?;", 2)]
    for delimiter, index in cases:
        expected = _split(Output(text), delimiter, index)
        got = _split(spilled(tmp_path, text), delimiter, index)
        want = expected.text() if expected.text() != text else None
        assert (got.text() if got.text() != text else None) == want, (delimiter, index)


def test_a_large_field_of_a_spilled_output_goes_to_a_private_file_beside_it(tmp_path):
    import os

    from tasker.runners.output import SPILL_THRESHOLD

    head = "\u00e9" * 10 + "a" * (3 * SPILL_THRESHOLD)       # over several read chunks; 2-byte characters
    out = spilled(tmp_path, head + ",tail")
    field = _split(out, "comma", 0)
    assert field.spilled and field.path.startswith(out.path + ".field")
    assert os.stat(field.path).st_mode & 0o777 == 0o600
    assert field.size == len(head.encode()) == os.path.getsize(field.path)
    assert field.text() == head


def test_a_run_of_blanks_across_a_read_boundary_is_one_delimiter(tmp_path):
    mib = 1024 * 1024
    out = spilled(tmp_path, "a" * (mib - 2) + "    b \t\n c")     # the blanks straddle the first 1 MiB read
    assert _split(out, "whitespace", 1).text() == "b"
    assert _split(out, "whitespace", 2).text() == "c"


def test_a_field_file_name_already_taken_is_skipped(tmp_path, monkeypatch):
    import os

    from tasker.runners.output import SPILL_THRESHOLD

    out = spilled(tmp_path, "a" * (SPILL_THRESHOLD + 1) + ",b")
    (tmp_path / "spill0.field000000").write_text("someone else's")
    draws = iter([b"\0\0\0", b"\1\1\1"])
    monkeypatch.setattr(os, "urandom", lambda n: next(draws))
    field = _split(out, "comma", 0)
    assert field.path == str(tmp_path / "spill0.field010101")
    assert (tmp_path / "spill0.field000000").read_text() == "someone else's"


def test_a_field_up_to_the_spill_threshold_stays_in_memory(tmp_path):
    from tasker.runners.output import SPILL_THRESHOLD

    at = _split(spilled(tmp_path, "a" * SPILL_THRESHOLD + ",b"), "comma", 0)
    assert not at.spilled and at.text() == "a" * SPILL_THRESHOLD
    over = _split(spilled(tmp_path, "a" * (SPILL_THRESHOLD + 1) + ",b"), "comma", 0)
    assert over.spilled and over.text() == "a" * (SPILL_THRESHOLD + 1)


def test_a_split_of_a_spilled_output_past_its_last_field_leaves_no_file(tmp_path):
    out = spilled(tmp_path, "x" * (3 * 1024 * 1024) + ",y")
    assert _split(out, "comma", 5) is out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spill0"]


def test_split_of_a_large_spilled_output_streams(tmp_path):
    import tracemalloc

    size = 48 * 1024 * 1024
    line = "field0 field1 " + "z" * 50 + "\n"
    out = spilled(tmp_path, line * (size // len(line)) + "tail")
    tracemalloc.start()
    try:
        first = _split(out, "space", 1)
        big = _split(out, "comma", 0)          # no comma: the whole output is the only piece
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first.text() == "field1"
    assert big.size == out.size
    assert peak < 16 * 1024 * 1024, f"peak {peak} bytes for a {out.size}-byte output"


def test_leading_zeros_do_not_count_as_digits(tasker):
    from tasker.numbers import OutOfRange, whole

    assert whole("0" * 5000 + "7") == 7 and whole(" -" + "0" * 30 + "12 ") == -12
    with pytest.raises(OutOfRange):
        whole("1" * 19)
    flow = tasker.write(local_task(0, "true", "", "timeout=" + "0" * 5000 + "30", "success=exit_" + "0" * 5000))
    r = tasker.run(flow, "--validate-only")
    no_traceback(r)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
