"""The benchmark harness's workloads are valid task files that do what they claim (no timing here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT

BENCH = ROOT / "tests" / "benchmarks"
sys.path.insert(0, str(BENCH))
import floors  # noqa: E402
import workloads  # noqa: E402

SMALL = {"w1": [3], "w2": [4], "w3": [3], "w4": [1], "w5": [12, 40], "w6": []}


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> list:
    return workloads.generate(str(tmp_path_factory.mktemp("workloads")), SMALL)


def test_every_workload_kind_is_generated(made):
    names = sorted(w.name for w in made)
    assert names == sorted(["w1_seq_3", "w2_flow_4", "w3_par_3", "w3_hosts_3", "w4_out_1", "w4_ref_1",
                            "w4_out_1_lines", "w4_ref_1_lines", "w5_valid_12", "w5_valid_40", "w6_startup"])
    assert {w.mode for w in made if w.name.startswith(("w5", "w6"))} == {"validate"}
    assert all(w.floors for w in made)


def test_every_generated_file_validates(tasker, made):
    for load in made:
        r = tasker.run(load.path, "--validate-only")
        assert r.returncode == 0, (load.name, r.stdout, r.stderr)
        assert "error" not in r.stderr, load.name


@pytest.mark.parametrize("name", ["w2_flow_4", "w3_hosts_3", "w4_ref_2", "w4_ref_2_lines"])
def test_workloads_run_to_success(tasker, tmp_path, name):
    # 2 MiB: above tasker's 1 MiB spill threshold, so @0_stdout_file@ names a file as in the real sizes
    small = workloads.generate(str(tmp_path), {"w2": [4], "w3": [3], "w4": [2]})
    load = next(w for w in small if w.name == name)
    r = tasker.run(load.path, "-r", "--skip-host-validation", "--no-task-backup")
    assert r.returncode == 0, r.stdout[-2000:]


def test_w5_uses_globals_conditions_and_routing(made):
    text = Path(next(w.path for w in made if w.name == "w5_valid_40")).read_text()
    assert "SERVICE=nginx" in text and "@SERVICE@" in text
    assert "condition=@2_exit_code@=0" in text and "on_failure=40" in text and "task=40\nreturn=1" in text
    assert text.count("task=") == 41


def test_the_floors_succeed_on_the_workloads(made):
    for load in made:
        for _label, argv in load.floors:
            if "sleep" in " ".join(argv) or "produce.sh" in " ".join(argv):
                continue   # W3/W4 floors are shell one-liners: checked below at a small size
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, (load.name, argv, done.stdout, done.stderr)


def test_the_parse_floor_finds_broken_references(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("task=0\ncommand=echo\narguments=@7_stdout@ @NOPE@\non_success=9\n")
    assert floors.parse(str(bad)) == 1


@pytest.mark.parametrize("lines", [False, True])
def test_the_producer_writes_exactly_the_bytes_asked_for(tmp_path, lines):
    prog = workloads.producer(str(tmp_path))
    out = subprocess.run([prog, "250", *(["lines"] if lines else [])], capture_output=True, timeout=30).stdout
    assert len(out) == 250 and set(out) <= {ord("x"), ord("\n")}
    assert out.count(b"\n") == (2 if lines else 0)
    if lines:
        assert out.index(b"\n") == 99


def test_w3_and_w4_floors_run(tmp_path):
    for load in [workloads.w3_tasks(str(tmp_path), 3), *workloads.w4(str(tmp_path), 1, nbytes=1000)]:
        for _label, argv in load.floors:
            assert subprocess.run(argv, timeout=60).returncode == 0, argv


def test_generate_only_lists_the_selected_workloads(tmp_path):
    done = subprocess.run([sys.executable, str(BENCH / "run.py"), "--generate-only", "--dir", str(tmp_path),
                           "--only", "w6,w3_par"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    listed = [Path(line.split("\t")[0]).name for line in done.stdout.splitlines()]
    assert listed == ["w3_par_200.txt", "w3_par_1000.txt", "w6_startup.txt"]
