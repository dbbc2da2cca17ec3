"""One run must not corrupt another; files tasker writes are private and created safely.

Each test runs the real CLI in a private HOME.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import dedent

KILL = "TASKER_TEST_KILL_AFTER_CHECKPOINT"


def recovery_dir(tasker):
    return tasker.home / "TASKER" / "recovery"


def wait_for(path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def py_task(tid: int, code: str) -> str:
    return f"task={tid}\nhostname=localhost\ncommand={sys.executable}\narguments=-c \"{code}\"\nexec=local\n\n"


# ----------------------------------------------------------------- one live run per recovery state


def test_a_second_recovery_run_of_a_live_run_is_refused_with_25(tasker):
    marks = tasker.tmp / "marks"
    marks.mkdir()
    go = tasker.tmp / "go"
    started = tasker.tmp / "started"
    text = py_task(0, f"import os,time; open('{started}','w').close(); "
                      f"[time.sleep(0.02) for _ in range(3000) if not os.path.exists('{go}')]")
    text += "".join(py_task(i, f"open('{marks}/{i}','a').write('x')") for i in range(1, 6))
    flow = tasker.write(text)
    first = subprocess.Popen([sys.executable, "-m", "tasker", str(flow), "-r", "--auto-recovery"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=tasker.env(),
                             cwd=tasker.tmp)
    try:
        wait_for(started)
        second = tasker.run(flow, "-r", "--auto-recovery")
        assert second.returncode == 25, second.stdout + second.stderr
        assert "another run of this task file is running" in second.stderr
        assert f"pid {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr + second.stdout
    finally:
        go.touch()
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    assert sorted(os.listdir(marks)) == [str(i) for i in range(1, 6)]
    assert all((marks / str(i)).read_text() == "x" for i in range(1, 6))
    assert os.listdir(recovery_dir(tasker)) == []   # state and lock gone after the defined end


def test_a_killed_run_does_not_block_its_resume(tasker):
    out = tasker.tmp / "out"
    flow = tasker.write("".join(py_task(i, f"open('{out}','a').write('{i} ')") for i in range(3)))
    first = tasker.run(flow, "-r", "--auto-recovery", env={KILL: "2"})
    assert first.returncode == -9
    second = tasker.run(flow, "-r", "--auto-recovery")
    assert second.returncode == 0, second.stdout + second.stderr
    assert out.read_text().split() == ["0", "1", "2"]


# ----------------------------------------------------------------- private files, whatever the umask


def _with_umask(mask: int):
    def set_mask() -> None:
        os.umask(mask)
    return set_mask


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_every_file_tasker_writes_is_600_in_700_directories(tasker, umask):
    flow = tasker.write(py_task(0, "print(42)") + py_task(1, "import sys; sys.exit(3)"))
    json_path = tasker.tmp / "results" / "out.json"
    r = subprocess.run([sys.executable, "-m", "tasker", str(flow), "-r", f"--output-json={json_path}",
                        "-p", "proj"], capture_output=True, text=True, env=tasker.env(), cwd=tasker.tmp,
                       timeout=60, preexec_fn=_with_umask(umask))
    assert r.returncode == 3, r.stdout + r.stderr
    base = tasker.home / "TASKER"
    files = [json_path]
    dirs = [json_path.parent, base]
    for root, dnames, fnames in os.walk(base):
        dirs += [os.path.join(root, d) for d in dnames]
        files += [os.path.join(root, f) for f in fnames]
    kinds = {os.path.basename(os.path.dirname(f)) for f in files}
    assert {"log", "recovery", "backup", "project", "results"} <= kinds, files
    for f in files:
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f
    for d in dirs:
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700, d


# ----------------------------------------------------------------- temporary files: safe, and swept


def test_planted_symlinks_at_temporary_names_are_never_followed(tasker):
    from tasker.vm.checkpoint import state_path

    victim = tasker.tmp / "victim"
    victim.write_text("precious")
    out_dir = tasker.tmp / "o"
    out_dir.mkdir()
    rec = recovery_dir(tasker)
    rec.mkdir(parents=True)
    flow = tasker.write(py_task(0, "print(1)"))
    state = os.path.basename(state_path(str(tasker.home / "TASKER"), str(flow)))
    # The wrapper plants symlinks to the victim at every temporary name a run with its pid could
    # pick (the names earlier versions opened with open("w")), then becomes tasker: same pid.
    plant = (f"import os,sys; p=os.getpid(); v={str(victim)!r}; "
             f"[os.symlink(v, n) for n in ({str(out_dir)!r}+f'/.out.json.{{p}}.tmp', "
             f"{str(rec)!r}+f'/{state}.{{p}}.tmp', {str(rec)!r}+f'/{state}.{{p}}.probe')]; "
             f"os.execv(sys.executable, [sys.executable, '-m', 'tasker'] + sys.argv[1:])")
    r = subprocess.run([sys.executable, "-c", plant, str(flow), "-r", f"--output-json={out_dir / 'out.json'}"],
                       capture_output=True, text=True, env=tasker.env(), cwd=tasker.tmp, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert victim.read_text() == "precious"
    assert json.loads((out_dir / "out.json").read_text())["workflow_metadata"]["status"] == "success"


def test_stale_temporary_files_of_dead_runs_are_removed(tasker):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    rec = recovery_dir(tasker)
    rec.mkdir(parents=True)
    out_dir = tasker.tmp / "o"
    out_dir.mkdir()
    stale = [rec / f"x_1234abcd.recovery.json.{dead}.tmp", rec / f"x_1234abcd.recovery.json.{dead}.probe",
             rec / f".tasker.{dead}.abc_12xy.tmp", out_dir / f".out.json.{dead}.tmp",
             out_dir / f".tasker.{dead}.k2j3h4g5.tmp"]
    for f in stale:
        f.write_text("partial")
    mine = out_dir / "notes.1.tmp"   # not a name tasker uses: left alone
    mine.write_text("user file")
    live = rec / f".tasker.{os.getpid()}.abcdefgh.tmp"   # a live writer's file: left alone
    live.write_text("in progress")
    flow = tasker.write(py_task(0, "print(1)"))
    r = tasker.run(flow, "-r", f"--output-json={out_dir / 'out.json'}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert [f for f in stale if f.exists()] == []
    assert mine.exists() and live.exists()


# ----------------------------------------------------------------- names


def test_a_250_character_task_file_name_runs_with_recovery(tasker):
    name = "n" * 246 + ".txt"
    flow = tasker.write(py_task(0, "print(1)") + py_task(1, "import sys; sys.exit(2)"), name)
    r = tasker.run(flow, "-r", "--auto-recovery")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "File name too long" not in r.stdout + r.stderr
    kept = [n for n in os.listdir(recovery_dir(tasker)) if n.endswith(".recovery.json")]
    assert len(kept) == 1 and len(kept[0]) < 150
    assert len(os.listdir(tasker.home / "TASKER" / "backup")) == 1
    r = tasker.run(flow, "-r", "--auto-recovery")
    assert r.returncode == 2 and "Resuming from" in r.stdout


def test_a_byte_order_mark_is_not_part_of_the_first_name(tasker):
    flow = tasker.tmp / "bom.txt"
    flow.write_bytes(b"\xef\xbb\xbf" + dedent("""
        task=0
        hostname=localhost
        command=echo
        arguments=fine
        exec=local
        """).encode())
    r = tasker.run(flow, "-r")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "\ufeff" not in r.stdout + r.stderr
    assert "fine" in r.stdout


# ----------------------------------------------------------------- secrets are masked in every file


SECRET = "s3cretvalue-Zq9"


def secret_flow(tasker, global_line: str, last_exit: int):
    return tasker.write(f"""
        {global_line}
        URL=db://app:@DB_PASSWORD@@localhost

        task=0
        hostname=localhost
        command=echo
        arguments=connecting with @DB_PASSWORD@ to @URL@
        exec=local

        task=1
        hostname=localhost
        command={sys.executable}
        arguments=-c "import sys; sys.stderr.write(sys.argv[1]); sys.exit({last_exit})" @0_stdout@
        exec=local
        """)


def files_written(tasker, *extra) -> list[str]:
    found = [str(p) for p in extra]
    for root, _dirs, names in os.walk(tasker.home / "TASKER"):
        found += [os.path.join(root, n) for n in names]
    return found


def test_a_secret_from_the_environment_is_in_no_file_a_run_writes(tasker):
    flow = secret_flow(tasker, "DB_PASSWORD=$DB_PASS_ENV", 0)
    out = tasker.tmp / "run.json"
    r = tasker.run(flow, "-r", f"--output-json={out}", "-p", "proj", env={"DB_PASS_ENV": SECRET})
    assert r.returncode == 0, r.stdout + r.stderr
    assert SECRET not in r.stdout + r.stderr
    assert "STDOUT: connecting with <masked len=15> to db://app:<masked len=15>@localhost" in r.stdout
    written = files_written(tasker, out)
    assert any("/log/" in f for f in written) and any("/project/" in f for f in written)
    for f in written:
        assert SECRET.encode() not in Path(f).read_bytes(), f
    doc = json.loads(out.read_text())
    assert doc["variables"]["DB_PASSWORD"] == "<masked len=15>"


def test_a_kept_recovery_state_masks_all_but_what_a_resume_needs(tasker):
    flow = secret_flow(tasker, f"DB_PASSWORD={SECRET}", 4)
    r = tasker.run(flow, "-r", "--auto-recovery", "-p", "proj")
    assert r.returncode == 4
    assert SECRET not in r.stdout + r.stderr
    (state,) = [p for p in recovery_dir(tasker).iterdir() if p.name.endswith(".recovery.json")]
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    data = json.loads(state.read_text())
    results = data.pop("task_results")
    data["vm"].pop("fork_done"), data["vm"].pop("members")
    assert SECRET not in json.dumps(data)                    # globals, failure, paths ...
    assert SECRET in results["0"]["stdout"]                  # the output task 1's resume substitutes
    for f in files_written(tasker):
        if "/backup/" not in f and f != str(state):          # the backup is the task file itself
            assert SECRET.encode() not in Path(f).read_bytes(), f
    r = tasker.run(flow, "-r", "--auto-recovery")
    assert r.returncode == 4 and "Resuming from" in r.stdout
    assert SECRET not in r.stdout + r.stderr


# ----------------------------------------------------------------- children die with tasker


def processes_with(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line holds ``marker``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            state = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker.encode() in cmdline and state != b"Z":
            found.append(int(name))
    return found


def wait_gone(marker: str, timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def sleeper_flow(tasker):
    """Task 0 starts a child and a grandchild that sleep, unless the file ``go`` exists."""
    marker = f"tasker-test-sleeper-{os.getpid()}-{tasker.tmp.name}"
    nap = f"{sys.executable} -c 'import time; time.sleep(300)' {marker}"
    go, started = tasker.tmp / "go", tasker.tmp / "started"
    flow = tasker.write(f"""
        task=0
        hostname=localhost
        command=sh
        arguments=-c "test -e {go} && exit 0; touch {started}; {nap} & {nap}; wait"
        exec=local
        """)
    return flow, marker, go, started


def start_tasker(tasker, flow):
    return subprocess.Popen([sys.executable, "-m", "tasker", str(flow), "-r", "--auto-recovery"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=tasker.env(), cwd=tasker.tmp)


@pytest.mark.skipif(sys.platform != "linux", reason="needs /proc")
def test_kill_9_of_tasker_takes_its_running_commands_with_it(tasker):
    flow, marker, _go, started = sleeper_flow(tasker)
    proc = start_tasker(tasker, flow)
    try:
        wait_for(started)
        deadline = time.monotonic() + 30
        while len(processes_with(marker)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(processes_with(marker)) == 3   # sh and its two sleepers
    finally:
        proc.kill()
        proc.wait()
    left = wait_gone(marker)
    for pid in left:
        os.kill(pid, 9)
    assert left == []


def watchdog_of(pid: int) -> list[int]:
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat_ = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()
                cmd = Path(f"/proc/{name}/cmdline").read_bytes()
            except (OSError, IndexError):
                continue
            if int(stat_[1]) == pid and b"-m\x00tasker" in cmd:
                kids.append(int(name))
    return kids


@pytest.mark.skipif(sys.platform != "linux", reason="needs /proc")
def test_a_resume_first_kills_what_a_killed_run_left_running(tasker):
    flow, marker, go, started = sleeper_flow(tasker)
    proc = start_tasker(tasker, flow)
    try:
        wait_for(started)
        deadline = time.monotonic() + 30
        while len(processes_with(marker)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in watchdog_of(proc.pid):   # as a kill of tasker's whole process group would
            os.kill(pid, 9)
    finally:
        proc.kill()
        proc.wait()
    try:
        time.sleep(0.3)
        assert len(processes_with(marker)) == 3   # nothing took them down this time
        go.touch()
        r = tasker.run(flow, "-r", "--auto-recovery")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Stopped 1 process group(s) that a killed earlier run left running" in r.stdout
        assert processes_with(marker) == []
    finally:
        for pid in processes_with(marker):
            os.kill(pid, 9)
    assert sorted(os.listdir(recovery_dir(tasker))) == []


def test_the_masker_hides_the_longest_secret_whole_and_masking_twice_changes_nothing():
    from tasker.report.masking import Masker

    m = Masker(["a", "pw", "pw-long"])
    once = m.text("a pw-long pw")
    assert once == "<masked len=1> <masked len=7> <masked len=2>"
    assert m.text(once) == once
    assert m.data({"x": ["pw", 3, {"y": "a"}]}) == {"x": ["<masked len=2>", 3, {"y": "<masked len=1>"}]}
