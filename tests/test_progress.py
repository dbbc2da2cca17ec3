"""The live progress line: on a terminal only, above which log lines are written."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys

from tasker.report.progress import CLEAR, Progress, wanted


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_wanted_only_on_a_real_terminal():
    assert wanted(TTY(), {"TERM": "xterm"})
    assert not wanted(TTY(), {"TERM": "dumb"})
    assert not wanted(io.StringIO(), {"TERM": "xterm"})


def test_counts_and_text():
    p = Progress(TTY())
    p("block", block=3, members=4)
    p("start", task=100)
    p("start", task=101)
    p("done", task=100, success=True)
    p("done", task=101, success=False)
    assert p.text().startswith("[tasker] block 3: 2/4 · 2 done · 0 running · 1 failed")


def test_log_lines_go_above_the_line():
    from tasker.report.log import Log

    stream = TTY()
    log = Log("INFO", stream)
    log.progress = Progress(stream)
    log.progress("start", task=0)
    log.info("Task 0: Executing [local]: true")
    out = stream.getvalue()
    assert CLEAR + "[" in out and out.rstrip().endswith("0:00")
    log.progress.close()
    assert stream.getvalue().endswith(CLEAR)


def run_on_a_terminal(tasker, flow):
    primary, secondary = pty.openpty()
    env = tasker.env({"TERM": "xterm"})
    proc = subprocess.Popen([sys.executable, "-m", "tasker", str(flow), "-r"], stdout=secondary,
                            stderr=secondary, env=env, cwd=tasker.tmp)
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(primary)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


def test_a_terminal_shows_the_line_and_a_pipe_does_not(tasker):
    flow = tasker.write("task=0\ntype=parallel\ntasks=100,101\nnext=never\n\n"
                        "task=100\nhostname=localhost\ncommand=true\nexec=local\n\n"
                        "task=101\nhostname=localhost\ncommand=true\nexec=local\n")
    code, screen = run_on_a_terminal(tasker, flow)
    assert code == 0
    assert "[tasker] block 0:" in screen and "\x1b[2K" in screen
    piped = tasker.run(flow, "-r")
    assert "[tasker]" not in piped.stdout and "\x1b[2K" not in piped.stdout
    logs = list((tasker.home / "TASKER" / "log").glob("*.log"))
    assert all("[tasker]" not in p.read_text() for p in logs)


def test_after_a_block_the_line_names_the_block_not_its_last_member_d25():
    p = Progress(TTY())
    p("block", block=5, members=2)
    p("start", task=150000)
    p("start", task=150001)
    p("done", task=150000, success=True)
    p("done", task=150001, success=True)
    p("block_end", block=5)
    assert p.text().startswith("[tasker] task 5 · 2 done")
