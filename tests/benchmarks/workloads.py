"""The benchmark workloads W1-W6: task files, and the floor each is measured against.

A *floor* is the cheapest way this machine can do the same work (a plain
Python loop of ``subprocess.run``, ``xargs -P``, a producer writing to a temp
file, a one-pass parser, ``python -c pass``); tasker's targets are ratios
against it.  ``generate`` writes the task files into a directory and returns
one ``Workload`` per file.  Standard library only.

=====  ==========================================================================
W1     N sequential tasks running ``/bin/true`` (100, 500, 2000)
W2     N chained ``echo`` tasks, task i reads ``@<i-1>_stdout@``, with
       ``success=exit_0&stdout~x`` (500)
W3     one parallel block of N x ``sleep 0.2`` at ``max_parallel=50``, as
       ``tasks=`` (``w3_par``) and as ``hostnames=`` (``w3_hosts``) (200, 1000)
W4     one task printing M MiB, as one line and as 100-byte lines (``_lines``);
       ``w4_ref`` adds tasks reading ``@0_stdout_file@`` and ``@0_stdout@`` (100, 1000)
W5     ``--validate-only`` on N tasks with globals, conditions and routing
       (1000, 5000, 9999, 20000)
W6     ``--validate-only`` on a one-task file: start-up
=====  ==========================================================================
"""

from __future__ import annotations

import math
import os
import stat
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FLOORS = os.path.join(HERE, "floors.py")
MIB = 1024 * 1024

SLEEP = 0.2          # W3: seconds each member sleeps
MAX_PARALLEL = 50    # W3: members at once
SUBTASK_BASE = 1000  # W3: member ids start here, clear of the block (task 0)

# Sizes: the full set, and the --quick subset (no 1000 MiB output, no 20000-task file).
FULL = {"w1": [100, 500, 2000], "w2": [500], "w3": [200, 1000], "w4": [100, 1000], "w5": [1000, 5000, 9999, 20000]}
QUICK = {"w1": [100, 500, 2000], "w2": [500], "w3": [200, 1000], "w4": [100], "w5": [1000, 5000, 9999]}


class Workload:
    """One task file to measure: how tasker runs it and what it is compared with."""

    def __init__(self, name: str, path: str, mode: str, floors: list[tuple[str, list[str]]],
                 sample: bool = False, note: str = "", ideal: float | None = None, tasks: int | None = None) -> None:
        self.name = name          # file stem, e.g. w3_par_200
        self.path = path
        self.mode = mode          # "run" (-r) or "validate" (--validate-only)
        self.floors = floors      # [(label, argv), ...]; the first is the main floor
        self.sample = sample      # sample the process tree's RSS from /proc (W4)
        self.note = note
        self.ideal = ideal        # W3: the wall time of perfect scheduling, ceil(N/50) x 0.2 s
        self.tasks = tasks        # W5: the task count, for a time per task

    def __repr__(self) -> str:
        return f"Workload({self.name!r}, {self.mode})"


def _task(tid: int, command: str, arguments: str | None = None, *extra: str) -> str:
    lines = [f"task={tid}", "hostname=localhost", f"command={command}"]
    if arguments is not None:
        lines.append(f"arguments={arguments}")
    lines.append("exec=local")
    lines.extend(extra)
    return "\n".join(lines) + "\n\n"


def _write(directory: str, name: str, text: str) -> str:
    path = os.path.join(directory, name + ".txt")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path


def _py(*args: str) -> list[str]:
    return [sys.executable, FLOORS, *args]


# ---------------------------------------------------------------- W1, W2: process start-up


def w1(directory: str, n: int) -> Workload:
    name = f"w1_seq_{n}"
    text = f"# W1: {n} sequential tasks running /bin/true\n\n" + "".join(_task(i, "/bin/true") for i in range(n))
    return Workload(name, _write(directory, name, text), "run", [("subprocess.run loop", _py("spawn", str(n)))])


def w2(directory: str, n: int) -> Workload:
    name = f"w2_flow_{n}"
    parts = [f"# W2: {n} echo tasks, each passing the previous output on\n\n"]
    for i in range(n):
        extra = ["success=exit_0&stdout~x"] + (["next=never"] if i == n - 1 else [])
        parts.append(_task(i, "echo", "x0" if i == 0 else f"x{i} @{i - 1}_stdout@", *extra))
    return Workload(name, _write(directory, name, "".join(parts)), "run",
                    [("subprocess.run chain", _py("chain", str(n)))])


# ---------------------------------------------------------------- W3: a wide parallel block


def _w3_floor(n: int) -> list[tuple[str, list[str]]]:
    script = f"seq {n} | xargs -P {MAX_PARALLEL} -I{{}} sleep {SLEEP:g}"
    return [(f"xargs -P {MAX_PARALLEL}", ["sh", "-c", script])]


def _w3_ideal(n: int) -> float:
    return math.ceil(n / MAX_PARALLEL) * SLEEP


def w3_tasks(directory: str, n: int) -> Workload:
    name = f"w3_par_{n}"
    ids = range(SUBTASK_BASE, SUBTASK_BASE + n)
    head = (f"# W3: one parallel block, {n} members sleeping {SLEEP:g}s, max_parallel={MAX_PARALLEL}\n\n"
            f"task=0\ntype=parallel\ntasks={','.join(map(str, ids))}\nmax_parallel={MAX_PARALLEL}\nnext=never\n\n")
    text = head + "".join(_task(i, "sleep", f"{SLEEP:g}") for i in ids)
    return Workload(name, _write(directory, name, text), "run", _w3_floor(n), ideal=_w3_ideal(n))


def w3_hosts(directory: str, n: int) -> Workload:
    name = f"w3_hosts_{n}"
    hosts = ",".join(f"bench-host-{i:05d}" for i in range(n))
    text = (f"# W3: one parallel block over {n} host names (run locally), sleeping {SLEEP:g}s\n\n"
            f"task=0\ntype=parallel\nhostnames={hosts}\ncommand=sleep\narguments={SLEEP:g}\nexec=local\n"
            f"max_parallel={MAX_PARALLEL}\nnext=never\n")
    return Workload(name, _write(directory, name, text), "run", _w3_floor(n), ideal=_w3_ideal(n))


# ---------------------------------------------------------------- W4: large output

# BYTES [lines]: BYTES times 'x' on one line, or in lines of 99 'x' and a newline.
PRODUCER = """#!/bin/sh
# Writes exactly $1 bytes to stdout: one line of 'x' (no newline), or with
# "lines" 100-byte lines (99 x and a newline), the last one cut short.
n=$1
if [ "${2:-}" = lines ]; then
    line=$(printf '%099d' 0 | tr 0 x)
    yes "$line" | head -c "$n"
else
    head -c "$n" /dev/zero | tr '\\000' x
fi
"""


def producer(directory: str) -> str:
    """Write the W4 producer script into ``directory``; its absolute path."""
    path = os.path.abspath(os.path.join(directory, "produce.sh"))
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(PRODUCER)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def w4(directory: str, mib: int, lines: bool = False, nbytes: int | None = None) -> list[Workload]:
    """``w4_out`` and ``w4_ref`` for M MiB (``nbytes`` overrides the size, for tests).

    ``w4_ref`` task 1 counts the spill file's bytes (``@0_stdout_file@`` is
    empty unless the output spilled, past 1 MiB); task 2 puts ``@0_stdout@``
    on a command line, which only works if substitution of a spilled output
    is capped (the whole of it would fail with E2BIG).
    """
    size = nbytes if nbytes is not None else mib * MIB
    prog = producer(directory)
    args = f"{size}" + (" lines" if lines else "")
    suffix = f"{mib}" + ("_lines" if lines else "")
    shape = "100-byte lines" if lines else "one line"
    first = _task(0, prog, args)
    out_text = f"# W4: one task printing {size} bytes as {shape}\n\n" + first.rstrip("\n") + "\nnext=never\n"
    ref_text = (f"# W4: {size} bytes as {shape}, then tasks reading the spilled output\n\n" + first
                + _task(1, "wc", "-c @0_stdout_file@", f"success=exit_0&stdout~{size}")
                + _task(2, "/bin/true", "@0_stdout@", "next=never"))
    floor_script = f'f=$(mktemp) && {prog} {args} > "$f"; rc=$?; rm -f "$f"; exit $rc'
    floor = [("producer > temp file", ["sh", "-c", floor_script])]
    made = []
    for kind, text in (("out", out_text), ("ref", ref_text)):
        name = f"w4_{kind}_{suffix}"
        made.append(Workload(name, _write(directory, name, text), "run", floor, sample=True,
                             note=f"{size / MIB:g} MiB"))
    return made


# ---------------------------------------------------------------- W5, W6: validation only


def w5(directory: str, n: int) -> Workload:
    """N tasks using four globals; conditions, success tests, jumps to an error handler, timeouts.

    Task i: every 2nd has ``success=``, every 3rd a ``condition=`` on task i-1,
    every 5th ``on_success=i+1`` / ``on_failure=N`` (task N returns 1),
    every 7th otherwise ``timeout=30``; the last one ends with ``next=never``.
    """
    name = f"w5_valid_{n}"
    parts = [f"# W5: {n} tasks for --validate-only\n\n",
             "ENV=production\nSERVICE=nginx\nREGION=eu-west\nVERSION=2.4.1\n\n"]
    for i in range(n):
        extra = []
        if i and i % 3 == 0:
            extra.append(f"condition=@{i - 1}_exit_code@=0")
        if i % 2 == 0:
            extra.append("success=exit_0&stdout~step")
        if i % 5 == 0 and i < n - 1:
            extra += [f"on_success={i + 1}", f"on_failure={n}"]
        elif i and i % 7 == 0:
            extra.append("timeout=30")
        if i == n - 1:
            extra.append("next=never")
        parts.append(_task(i, "echo", f"@SERVICE@ @ENV@ @REGION@ v@VERSION@ step {i}", *extra))
    parts.append(f"task={n}\nreturn=1\n")
    path = _write(directory, name, "".join(parts))
    return Workload(name, path, "validate", [("one-pass parser", _py("parse", path))], tasks=n + 1)


def w6(directory: str) -> Workload:
    name = "w6_startup"
    path = _write(directory, name, "# W6: start-up, one task\n\n" + _task(0, "/bin/true").rstrip("\n") + "\n")
    return Workload(name, path, "validate",
                    [("one-pass parser", _py("parse", path)), ("python -c pass", [sys.executable, "-c", "pass"])])


# ---------------------------------------------------------------- the set


def generate(directory: str, sizes: dict[str, list[int]], w4_lines: bool = True) -> list[Workload]:
    """Write the workloads for ``sizes`` (keys w1..w5; w6 when the key ``w6`` is present)."""
    os.makedirs(directory, exist_ok=True)
    made: list[Workload] = []
    made += [w1(directory, n) for n in sizes.get("w1", [])]
    made += [w2(directory, n) for n in sizes.get("w2", [])]
    for n in sizes.get("w3", []):
        made += [w3_tasks(directory, n), w3_hosts(directory, n)]
    for mib in sizes.get("w4", []):
        made += w4(directory, mib)
        if w4_lines:
            made += w4(directory, mib, lines=True)
    made += [w5(directory, n) for n in sizes.get("w5", [])]
    if "w6" in sizes:
        made.append(w6(directory))
    return made
