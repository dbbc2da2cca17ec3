"""The recovery file is replaced whole: a write that fails or is cut off leaves the previous checkpoint.

A checkpoint is written to a temporary file in the same directory and renamed over
the old one.  These tests break the write at every point of a checkpoint's text
and check that the file on disk still holds the earlier, complete checkpoint.
"""

from __future__ import annotations

import json
import os
import re

import pytest
from fakes import FakeClock, FakeRunner
from support import compile_text, dedent, run_vm

from tasker.ir import instructions as ir
from tasker.ir.lower import LowerOptions, lower
from tasker.numbers import LIMIT
from tasker.report import private
from tasker.report.log import Log
from tasker.report.masking import Masker
from tasker.runners.base import Cancel
from tasker.runners.exectypes import ExecConfig, ExecTypes
from tasker.runners.output import Output
from tasker.vm import checkpoint, shape
from tasker.vm.checkpoint import CheckpointError, CheckpointStore
from tasker.vm.machine import Ending, Env, Machine
from tasker.vm.store import Record

FLOW = """
task=0
hostname=localhost
command=echo
arguments=first

task=1
hostname=localhost
command=echo
arguments=second
"""


class DiskFull(OSError):
    pass


def store_and_machine(tmp_path):
    workflow, _ = compile_text(FLOW)
    vm = run_vm(FLOW)
    path = tmp_path / "recovery" / "flow_0000.recovery.json"
    store = CheckpointStore(str(path), str(tmp_path / "flow.txt"), FLOW.encode(), workflow, environ={})
    return store, vm.machine, path


def cut_after(limit: int):
    """An ``os.fdopen`` for the atomic writer whose file takes ``limit`` bytes and then fails."""
    real_fdopen = os.fdopen

    def fdopen(fd, *args, **kwargs):
        fh = real_fdopen(fd, *args, **kwargs)
        real_write = fh.write

        def write(data):
            real_write(data[:limit])
            fh.flush()
            raise DiskFull(28, "No space left on device")
        fh.write = write
        return fh
    return fdopen


def test_a_checkpoint_is_a_whole_json_document(tmp_path):
    store, machine, path = store_and_machine(tmp_path)
    store.save(machine)
    data = checkpoint.load(str(path))
    assert data["execution_path"] == [0, 1]
    assert os.listdir(path.parent) == [path.name]


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_a_write_that_fails_part_way_leaves_the_previous_checkpoint(tmp_path, monkeypatch, fraction):
    store, machine, path = store_and_machine(tmp_path)
    store.save(machine)
    before = path.read_bytes()
    machine.state.path.append(7)   # the next checkpoint differs from the first
    full = len(json.dumps(store.document(machine), separators=(",", ":")))
    monkeypatch.setattr(private.os, "fdopen", cut_after(int(full * fraction)))
    with pytest.raises(CheckpointError, match="No space left"):
        store.save(machine)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert checkpoint.load(str(path))["execution_path"] == [0, 1]
    assert os.listdir(path.parent) == [path.name]   # no half-written temporary file is left
    # and the next successful write replaces it whole
    store.save(machine)
    assert checkpoint.load(str(path))["execution_path"] == [0, 1, 7]


def test_a_crash_before_the_rename_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    # The process dying between writing the new text and renaming it: the rename never happens.
    store, machine, path = store_and_machine(tmp_path)
    store.save(machine)
    before = path.read_bytes()
    machine.state.path.append(7)

    def killed(*_args):
        raise SystemExit(137)
    monkeypatch.setattr(private.os, "replace", killed)
    with pytest.raises(SystemExit):
        store.save(machine)
    assert path.read_bytes() == before


# ----------------------------------------------------------------- what a checkpoint holds (issue 19)


RUN = """
G=plain
H=$HOME/x
DB_PASSWORD=hunter2

task=0
hostname=localhost
command=c0

task=1
hostname=localhost
command=c1

task=2
hostname=localhost
command=c2

task=3
type=parallel
tasks=100,101
next=always

task=4
hostname=localhost
command=c4
arguments=@G@ @H@ @DB_PASSWORD@

task=100
hostname=localhost
command=c100

task=101
hostname=localhost
command=c101
"""
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def checkpointed(tmp_path, text: str = RUN, script: dict | None = None, *, environ: dict | None = None,
                 masker=None, log_file: str = "/logs/run.log"):
    """A machine for ``text`` that writes its checkpoints to a CheckpointStore (not yet run)."""
    workflow, diags = compile_text(text)
    assert not diags.has_errors()
    program = lower(workflow, LowerOptions())
    clock = FakeClock()
    exec_types = ExecTypes(environ={})
    exec_types.use_config(ExecConfig())
    env = Env(runner=FakeRunner(script, clock), clock=clock, exec_types=exec_types, log=Log("DEBUG"),
              cancel=Cancel())
    machine = Machine(program, env)
    path = tmp_path / "recovery" / "flow_0000.recovery.json"
    store = CheckpointStore(str(path), str(tmp_path / "flow.txt"), dedent(text).encode(), workflow, log_file,
                            environ, Masker.for_globals(workflow.globals) if masker is None else masker)
    env.checkpoint = store.save
    return machine, store, path


def saved_state(tmp_path) -> dict:
    """The recovery state ``failed_run`` leaves, as loaded for a resume."""
    _machine, _store, path, _ending = failed_run(tmp_path)
    return checkpoint.load(str(path))


def failed_run(tmp_path):
    machine, store, path = checkpointed(tmp_path, script={"c101": [(1, "", "no\n")], "c4": [(3, "", "bad\n")]})
    ending = machine.run()
    checkpoint.final_checkpoint(store, machine, ending)
    return machine, store, path, ending


def test_the_recovery_file_of_a_failed_run(tmp_path):
    machine, _store, path, ending = failed_run(tmp_path)
    assert (ending.reason, ending.exit_code) == ("failure", 3)
    data = checkpoint.load(str(path))
    assert set(data) == {"version", "format", "task_file_path", "task_file_hash", "task_text_hashes",
                         "global_hashes", "recovery_file", "created", "updated", "log_file", "execution_path",
                         "last_successful_task", "current_task", "intended_next_task", "task_results",
                         "global_vars", "global_vars_metadata", "loop_state", "failure_info", "vm", "ending"}
    assert (data["version"], data["format"]) == ("1.0", "tasker-vm/1")
    assert data["task_file_path"] == str(tmp_path / "flow.txt")
    assert data["recovery_file"] == path.name
    assert ISO.match(data["created"]) and ISO.match(data["updated"])
    assert data["log_file"] == "/logs/run.log"
    assert data["execution_path"] == [0, 1, 2, 3, 4]
    assert (data["last_successful_task"], data["current_task"], data["intended_next_task"]) == (2, 4, 4)
    assert data["failure_info"] == {"task_id": 4, "exit_code": 3, "error": ending.message or "Workflow failed"}
    assert (data["ending"], data["loop_state"]) == ("failure", {})
    assert data["global_vars"] == {"G": "plain", "H": "/home/u/x", "DB_PASSWORD": "<masked len=7>"}
    assert data["global_vars_metadata"] == {"G": {"source": "literal"}, "H": {"source": "env", "template": "$HOME/x"},
                                            "DB_PASSWORD": {"source": "literal"}}
    assert set(data["task_text_hashes"]) == {"0", "1", "2", "3", "4", "100", "101"}
    assert set(data["global_hashes"]) == {"G", "H", "DB_PASSWORD"}
    results = data["task_results"]
    assert results["0"] == {"exit_code": 0, "stdout": "", "stderr": "", "success": True, "hostname": "localhost",
                            "start": 1_000_000.0, "end": 1_000_000.0}
    assert results["3"] == {"exit_code": 1, "stdout": "Parallel execution: 1/2 successful, 1 failed",
                            "stderr": "Failed tasks: [101].", "success": False, "hostname": "parallel",
                            "counts": [1, 1, 2], "kind": "block"}
    assert results["101"]["success"] is False and "kind" not in results["101"]
    vm = data["vm"]
    assert set(vm) == {"pc", "steps", "loops", "final", "branch", "subtasks", "fork_done", "members",
                       "resumed_from", "in_flight"}
    assert vm["pc"] == machine.program.entries[4]
    assert vm["final"] == [4, "localhost", "c4 plain /home/u/x hunter2", 3, False]
    assert (vm["steps"], vm["loops"], vm["branch"], vm["fork_done"], vm["members"]) == (5, {}, {}, {}, {})
    assert sorted(vm["subtasks"]["3"]) == [100, 101]
    assert (vm["resumed_from"], vm["in_flight"]) == (None, None)


def test_a_resume_inside_a_block_runs_only_the_members_not_done(tmp_path):
    machine, store, _path = checkpointed(tmp_path, script={"c100": [(0, "A\n", "")]})
    seen = []
    real_save = store.save

    def save(m, instr=None, **kw):
        real_save(m, instr, **kw)
        seen.append(json.loads(json.dumps(store.document(m))))
    machine.env.checkpoint = save
    machine.run()
    mid = next(d for d in seen if d["vm"]["fork_done"])
    assert mid["vm"]["fork_done"] == {"3": [[100, {"exit_code": 0, "stdout": "A\n", "stderr": "", "success": True,
                                                   "hostname": "localhost", "start": 1_000_000.0,
                                                   "end": 1_000_000.0}]]}
    assert "100" not in mid["task_results"]   # a member's result is stored when the block joins
    again, _store2, _path2 = checkpointed(tmp_path / "again")
    pc = checkpoint.restore(mid, again)
    assert again.state.fork_done[3][100].stdout.text() == "A\n"
    assert again.run(pc).exit_code == 0
    assert [c[0] for c in again.env.runner.calls] == ["c101", "c4"]
    assert again.store.get(3).counts == (2, 0, 2)


def test_a_resume_restores_the_state_that_was_saved(tmp_path):
    data = saved_state(tmp_path)
    again, store2, _path2 = checkpointed(tmp_path / "again", script={"c4": [(0, "", "")]})
    pc = checkpoint.restore(data, again)
    assert pc == again.program.entries[4]
    assert again.state.steps == data["vm"]["steps"]
    restored = store2.document(again)
    assert restored["vm"] | {"pc": pc} == data["vm"]
    assert restored["task_results"] == data["task_results"]
    ending = again.run(pc)
    assert ending.exit_code == 0
    assert again.env.runner.calls == [["c4", "plain", "/home/u/x", "hunter2"]]   # only the failed task runs again
    assert again.state.path == [0, 1, 2, 3, 4, 4]


def filled_vm(data: dict) -> dict:
    """``data`` (a saved run of RUN) with every part of the VM state filled in."""
    rec = {"exit_code": 0, "stdout": "A\n", "stderr": "", "success": True, "hostname": "localhost",
           "start": 5.0, "end": 6.0}
    data["vm"].update(steps=7, loops={"1": [3, 2, True]}, final=[2, "h", "c2", 0, True],
                      branch={"4": "TRUE"}, subtasks={"3": [100, 101]}, fork_done={"3": [[100, rec]]},
                      members={"3": [[101, dict(rec, exit_code=1, success=False)]]}, in_flight=None)
    return data


def test_a_resume_restores_every_part_of_the_vm_state(tmp_path):
    data = filled_vm(saved_state(tmp_path))
    again, store2, _path2 = checkpointed(tmp_path / "again")
    pc = checkpoint.restore(data, again)
    assert pc == data["vm"]["pc"] and again.state.rerun is None
    assert store2.document(again)["vm"] | {"pc": pc} == data["vm"]
    s = again.state
    assert (s.final_task, s.final_host, s.final_command, s.final_exit, s.final_success) == (2, "h", "c2", 0, True)
    assert s.loops == {1: [3, 2, True]} and s.branch == {4: "TRUE"} and s.subtasks == {3: [100, 101]}
    assert s.fork_done[3][100].stdout.text() == "A\n" and s.fork_done[3][100].start == 5.0
    assert [(sid, r.exit_code) for sid, r in s.members[3]] == [(101, 1)]


@pytest.mark.parametrize("last_on_path", [True, False])
def test_a_task_cut_short_by_the_crash_starts_again_from_its_entry(tmp_path, last_on_path):
    data = filled_vm(saved_state(tmp_path))
    data["vm"].update(in_flight=1, pc="stop.failure")
    data["execution_path"] = [0, 1] if last_on_path else [0]
    again, _store2, _path2 = checkpointed(tmp_path / "again")
    pc = checkpoint.restore(data, again)
    assert pc == again.program.entries[1]
    assert again.state.rerun == 1
    assert again.state.path == [0]             # task 1 is entered again, and recorded once
    assert again.state.loops == {1: [3, 2, False]}   # the cut round is not counted as done


def test_a_state_of_a_task_that_no_longer_exists_resumes_where_it_stopped(tmp_path):
    data = filled_vm(saved_state(tmp_path))
    data["vm"]["in_flight"] = 77
    again, _store2, _path2 = checkpointed(tmp_path / "again")
    assert checkpoint.restore(data, again) == data["vm"]["pc"]
    assert again.state.rerun is None


def test_parts_missing_from_the_vm_state_are_empty_on_a_resume(tmp_path):
    data = saved_state(tmp_path)
    data["vm"] = {"pc": data["vm"]["pc"]}
    again, _store2, _path2 = checkpointed(tmp_path / "again")
    assert checkpoint.restore(data, again) == again.program.entries[4]
    s = again.state
    assert (s.steps, s.loops, s.branch, s.subtasks, s.fork_done, s.members) == (0, {}, {}, {}, {}, {})
    assert (s.final_task, s.final_host, s.final_command, s.final_exit, s.final_success) == (None, "", "", None,
                                                                                            False)
    del data["vm"]["pc"]
    with pytest.raises(checkpoint.RecoveryError, match="points at instruction '', which"):
        checkpoint.restore(data, checkpointed(tmp_path / "third")[0])


def test_a_state_pointing_at_an_instruction_the_program_lacks_is_refused(tmp_path):
    data = saved_state(tmp_path)
    data["vm"]["pc"] = "9.nowhere"
    again, _store2, _path2 = checkpointed(tmp_path / "again")
    with pytest.raises(checkpoint.RecoveryError) as err:
        checkpoint.restore(data, again)
    assert str(err.value) == "the recovery state points at instruction '9.nowhere', which this program does not have"


def test_a_record_replaced_under_the_same_id_is_written_anew(tmp_path):
    machine, store, path = checkpointed(tmp_path)
    machine.store.put(0, Record(0, "one", "", True))
    store.save(machine)
    machine.store.put(0, Record(2, "two", "", False, kind="skipped"))
    store.save(machine)
    assert checkpoint.load(str(path))["task_results"]["0"] == {
        "exit_code": 2, "stdout": "two", "stderr": "", "success": False, "hostname": "", "kind": "skipped"}


def test_spill_files_are_not_kept_but_the_text_given_to_placeholders_is(tmp_path):
    machine, store, path = checkpointed(tmp_path)
    (tmp_path / "o").write_text("head")
    (tmp_path / "e").write_text("e")
    machine.store.put(0, Record(0, Output("head", str(tmp_path / "o"), 9000), Output("e", str(tmp_path / "e"), 9),
                                True))
    store.save(machine)
    saved = checkpoint.load(str(path))["task_results"]["0"]
    assert "stdout_file" not in saved and "stderr_file" not in saved
    assert (saved["stdout"], saved["stdout_size"], saved["stderr"], saved["stderr_size"]) == ("head", 9000, "e", 9)


def test_the_run_id_is_saved_only_when_there_is_one(tmp_path):
    machine, store, path = checkpointed(tmp_path)
    store.save(machine)
    assert "run_id" not in checkpoint.load(str(path))
    store.run_id = "tasker-1234"
    store.save(machine)
    assert checkpoint.load(str(path))["run_id"] == "tasker-1234"


@pytest.mark.parametrize("environ,kills", [
    (None, []), ({}, []), ({checkpoint.KILL_HOOK: "x"}, []),
    ({checkpoint.KILL_HOOK: "2"}, [(os.getpid(), 9), (os.getpid(), 9)]),
])
def test_the_crash_test_hook_kills_the_process_after_the_nth_checkpoint(tmp_path, monkeypatch, environ, kills):
    calls = []
    monkeypatch.setattr(checkpoint.os, "kill", lambda pid, sig: calls.append((pid, sig)))
    machine, store, _path = checkpointed(tmp_path, environ=environ)
    store.save(machine)
    assert calls == []
    store.save(machine)
    store.save(machine)
    assert calls == kills


def test_opening_the_store_sweeps_temporary_files_of_dead_runs(tmp_path):
    (tmp_path / "recovery").mkdir(mode=0o700)
    left = tmp_path / "recovery" / "flow_0000.recovery.json.99999999.tmp"
    left.write_text("{")
    checkpointed(tmp_path)
    assert not left.exists()


def test_a_task_file_that_is_not_utf8_still_gets_fingerprints(tmp_path):
    workflow, _ = compile_text(FLOW)
    store = CheckpointStore(str(tmp_path / "r.recovery.json"), "flow.txt", FLOW.encode() + b"# \xff\n", workflow)
    assert set(store.fingerprints["tasks"]) == {"0", "1"}


@pytest.mark.parametrize("error,message", [
    (DiskFull(28, "No space left on device"), "No space left on device"),
    (OSError("the disk went away"), "the disk went away"),
])
def test_a_failed_write_names_the_file_and_the_reason(tmp_path, monkeypatch, error, message):
    machine, store, path = checkpointed(tmp_path)

    def fail(*_args):
        raise error
    monkeypatch.setattr(checkpoint, "write_atomic", fail)
    with pytest.raises(CheckpointError) as info:
        store.save(machine)
    assert str(info.value) == f"could not write the recovery state {path}: {message}"


def test_delete_removes_the_file_and_a_second_delete_is_harmless(tmp_path):
    machine, store, path = checkpointed(tmp_path)
    store.save(machine)
    store.delete()
    assert not path.exists()
    store.delete()


# ----------------------------------------------------------------- where a resume starts


def stop_pc(machine) -> str:
    return next(pc for pc, instr in machine.program.instrs.items() if instr.kind == ir.STOP)


@pytest.mark.parametrize("reason,interrupted,pc,path,final_task,expected", [
    ("failure", 2, 3, [0, 1], None, 2),              # a command a signal cut short runs again
    ("signal", 77, 3, [0, 1], None, 3),              # ... unless that task has no entry
    ("signal", None, 3, [0, 1, 2], None, 3),         # stopped between instructions: carry on there
    ("signal", None, "stop", [0, 1, 2], None, 2),    # stopped at the end: the last task entered
    ("failure", None, 3, [0, 1, 2], None, 2),        # the task that failed
    ("failure", None, 3, [], 4, 4),                  # nothing entered yet: the task last run
    ("failure", None, 1, [], None, 1),
    ("failure", None, 1, [], 77, 1),
])
def test_resume_point(tmp_path, reason, interrupted, pc, path, final_task, expected):
    machine, _store, _path = checkpointed(tmp_path)
    entries = machine.program.entries
    state = machine.state
    state.interrupted, state.path, state.final_task = interrupted, path, final_task
    state.pc = stop_pc(machine) if pc == "stop" else entries[pc]
    assert checkpoint.resume_point(machine, Ending(reason, 10)) == entries[expected]


@pytest.mark.parametrize("message,error", [("", "Workflow failed"), ("Task 2 failed", "Task 2 failed")])
def test_the_final_checkpoint_says_why_and_where_the_run_ended(tmp_path, message, error):
    machine, store, path = checkpointed(tmp_path)
    state = machine.state
    state.path, state.final_task, state.interrupted, state.pc = [0, 1, 2], 2, 1, stop_pc(machine)
    checkpoint.final_checkpoint(store, machine, Ending("signal", 143, message))
    data = checkpoint.load(str(path))
    assert data["failure_info"] == {"task_id": 2, "exit_code": 143, "error": error}
    assert (data["ending"], data["intended_next_task"], data["vm"]["pc"]) == ("signal", 1, machine.program.entries[1])
    assert state.interrupted is None


# ----------------------------------------------------------------- a changed task file

BASE = """
G=1
H=2

task=0
hostname=localhost
command=echo
arguments=zero

task=1
hostname=localhost
command=echo
# a comment
arguments=one @G@ @H@

task=2
hostname=localhost
command=echo
arguments=two
"""


def changes(old: str, new: str) -> str:
    old_wf, _ = compile_text(old)
    new_wf, diags = compile_text(new)
    assert not diags.has_errors(), [d.message for d in diags.errors]
    saved = checkpoint.fingerprints(old_wf, dedent(old))
    data = {"task_file_hash": "0" * 64, "task_text_hashes": saved["tasks"], "global_hashes": saved["globals"]}
    return checkpoint.describe_changes(data, new_wf, dedent(new))


@pytest.mark.parametrize("new,said", [
    (BASE.replace("zero", "nil"), "task 0 changed"),
    (BASE.replace("arguments=two", "arguments=2"), "task 2 changed"),
    (BASE.replace("one", "uno").replace("two", "dos"), "tasks 1, 2 changed"),
    (BASE + "\ntask=3\nhostname=localhost\ncommand=echo\n", "task 3 added"),
    (BASE + "\ntask=3\nhostname=localhost\ncommand=echo\n\ntask=4\nreturn=0\n", "tasks 3, 4 added"),
    (BASE.split("task=2")[0], "task 2 removed"),
    (BASE.replace("G=1", "G=5"), "global G changed"),
    (BASE.replace("G=1", "G=5").replace("H=2", "H=6"), "globals G, H changed"),
    ("K=3\n" + BASE, "global K added"),
    (BASE.replace("zero", "nil").replace("H=2\n", "").replace(" @H@", ""), "tasks 0, 1 changed; global H removed"),
    (BASE.replace("# a comment", "# another comment\n\n"), "only blank lines, comments or the order of lines changed"),
    (BASE.replace("command=echo\n# a", "# a").replace("# a comment\n", "# a comment\ncommand=echo\n"),
     "only blank lines, comments or the order of lines changed"),
])
def test_a_refused_resume_names_what_changed(new, said):
    assert changes(BASE, new) == said


@pytest.mark.parametrize("count,tail", [(10, ""), (11, " and 1 more"), (12, " and 2 more")])
def test_a_long_list_of_changes_is_cut_after_ten_in_numeric_order(count, tail):
    old = "".join(f"task={i}\nhostname=localhost\ncommand=echo\narguments=a\n\n" for i in range(count))
    assert changes(old, old.replace("arguments=a", "arguments=b")) == \
        f"tasks 0, 1, 2, 3, 4, 5, 6, 7, 8, 9{tail} changed"


def test_tasks_without_blank_lines_between_them_are_told_apart():
    old = "".join(f"task={i}\nhostname=localhost\ncommand=echo\narguments=a{i}\n" for i in range(3))
    assert changes(old, old.replace("arguments=a0", "arguments=b0")) == "task 0 changed"
    assert changes(old, old.replace("arguments=a2", "arguments=b2")) == "task 2 changed"


def test_the_subtasks_of_a_hostnames_block_are_part_of_the_block():
    text = "task=0\ntype=parallel\nhostnames=web1,web2\ncommand=chk\nexec=local\n"
    workflow, _ = compile_text(text)
    prints = checkpoint.fingerprints(workflow, dedent(text))
    assert set(prints["tasks"]) == {"0"}
    assert all(re.fullmatch(r"[0-9a-f]{16}", h) for h in [*prints["tasks"].values(), *prints["globals"].values()])
    assert changes(text, text.replace("web2", "web3")) == "task 0 changed"


def test_a_state_without_fingerprints_only_knows_the_whole_file_changed(tmp_path):
    workflow, _ = compile_text(BASE)
    for data in ({"task_file_hash": "0"}, {"task_file_hash": "0", "task_text_hashes": {}},
                 {"task_file_hash": "0", "global_hashes": {}}):
        assert checkpoint.describe_changes(data, workflow, dedent(BASE)) == ""
        with pytest.raises(checkpoint.RecoveryError, match=r"\(its hash differs\)"):
            checkpoint.check_task_file(data, "r.json", "flow.txt", dedent(BASE).encode(), workflow)


# ----------------------------------------------------------------- a TASKER 2.2 recovery file

OLD = "".join(f"task={i}\nhostname=localhost\ncommand=c{i}\n\n" for i in (0, 1, 2, 5))


@pytest.mark.parametrize("data,task", [
    ({"intended_next_task": 2, "last_successful_task": 1, "execution_path": [0, 1]}, 2),
    ({"last_successful_task": 1, "execution_path": [0, 1]}, 2),
    ({"last_successful_task": 2, "execution_path": [0, 1, 2]}, 5),     # 3 is no task: the next one after 2
    ({}, 0),
    ({"execution_path": [0]}, 1),                                      # the first task not run yet
    ({"intended_next_task": 1, "last_successful_task": 0, "execution_path": [0, 1]}, 2),
    ({"intended_next_task": 3, "last_successful_task": 1, "execution_path": [0]}, 2),
    ({"intended_next_task": 0, "execution_path": [0, 2]}, 1),
    ({"intended_next_task": 5, "last_successful_task": 1, "execution_path": [0, 1]}, 5),  # a jump: not 2
    ({"intended_next_task": 2, "execution_path": [0]}, 2),
    ({"last_successful_task": 1, "execution_path": []}, 2),           # the task after it, not the first
    ({"last_successful_task": 0, "execution_path": []}, 1),
])
def test_a_tasker_2_2_state_resumes_at_the_task_it_names(data, task):
    vm = run_vm(OLD, validate=False)
    vm.machine.state.path = []
    data = {"task_results": {}, **data}
    assert checkpoint.restore(data, vm.machine) == vm.machine.program.entries[task]


def test_a_tasker_2_2_state_with_nothing_left_to_run_is_refused():
    vm = run_vm(OLD, validate=False)
    with pytest.raises(checkpoint.RecoveryError, match=r"^the recovery state names no task left to run$"):
        checkpoint.restore({"last_successful_task": 5, "execution_path": [0, 1, 2, 5]}, vm.machine)


# ----------------------------------------------------------------- blocks and a failing or stopped run

BLOCKS = {
    "parallel": "task=0\ntype=parallel\ntasks=100,101,102\nmax_parallel=1\nnext=always\n\n",
    "conditional": "task=0\ntype=conditional\ncondition=true\nif_true_tasks=100,101,102\nif_false_tasks=103\n"
                   "next=always\n\n",
}
MEMBERS = "".join(f"task={i}\nhostname=localhost\ncommand=c{i}\n\n" for i in (100, 101, 102, 103))
AFTER = "task=1\nhostname=localhost\ncommand=c1\n\n"


@pytest.mark.parametrize("kind", list(BLOCKS))
def test_a_checkpoint_failure_inside_a_block_starts_no_further_member(tmp_path, capsys, kind):
    machine, store, _path = checkpointed(tmp_path, BLOCKS[kind] + AFTER + MEMBERS)

    def save(m, instr=None, **kw):
        if any(m.state.fork_done.values()):
            raise CheckpointError("could not write the recovery state: disk full")
        store.save(m, instr, **kw)
    machine.env.checkpoint = save
    ending = machine.run()
    assert (ending.reason, ending.exit_code) == ("checkpoint", 1)
    assert [c[0] for c in machine.env.runner.calls] == ["c100"]
    said = capsys.readouterr()
    assert (said.out + said.err).count(
        "ERROR: could not write the recovery state: disk full: stopping the run; the recovery state keeps the "
        "last checkpoint written whole, and --auto-recovery resumes from it once there is space\n") == 1


@pytest.mark.parametrize("kind", list(BLOCKS))
def test_a_signal_inside_a_block_keeps_the_cut_member_out_of_the_results(tmp_path, monkeypatch, kind):
    machine, store, path = checkpointed(tmp_path, BLOCKS[kind] + AFTER + MEMBERS)
    real = FakeRunner.run

    def run(self, argv, timeout, cancel):
        result = real(self, argv, timeout, cancel)
        if argv[0] == "c101":
            cancel.set(15)
        return result
    monkeypatch.setattr(FakeRunner, "run", run)
    ending = machine.run()
    assert ending.reason == "signal"
    assert [c[0] for c in machine.env.runner.calls] == ["c100", "c101"]
    checkpoint.final_checkpoint(store, machine, ending)
    data = checkpoint.load(str(path))
    assert [sid for sid, _rec in data["vm"]["fork_done"]["0"]] == [100]    # 101 runs again on a resume

# ----------------------------------------------------------------- the shape check of a loaded file


def full_state() -> dict:
    """A recovery document with every part the writer produces filled in."""
    rec = {"exit_code": 0, "stdout": "out", "stderr": "", "hostname": "localhost", "kind": "exec",
           "success": True, "start": 1.5, "end": 2, "counts": [1, 2]}
    return {
        "version": checkpoint.VERSION, "task_file_path": "/w/flow.txt", "task_file_hash": "ab12",
        "task_results": {"0": rec, "-1": {"exit_code": -9, "counts": None}, "12": {}},
        "execution_path": [0, 12],
        "last_successful_task": 0, "intended_next_task": None, "current_task": 12,
        "created": "2026-01-01", "updated": None, "ending": None, "log_file": "/w/flow.log",
        "global_vars": {"S": "x", "I": 1, "F": 1.5, "B": False, "N": None},
        "global_vars_metadata": {"S": {"source": "file"}},
        "failure_info": {"task_id": 12, "exit_code": 1, "error": "e"},
        "extra_key_of_2_2": [1, "anything"],
        "vm": {"pc": "t12", "steps": 7, "loops": {"3": [1, 3, False]}, "final": [12, "h", "c", 0, True],
               "branch": {"4": "success"}, "subtasks": {"5": [50, 51]},
               "fork_done": {"6": [[60, rec]]}, "members": {"6": [[61, {"exit_code": 1}]]},
               "resumed_from": "t3", "in_flight": 2},
    }


def damaged(path: str, value) -> dict:
    """``full_state`` with the dotted ``path`` (list items by number) set to ``value``, or removed."""
    doc = full_state()
    *parents, last = path.split(".")
    node = doc
    for name in parents:
        node = node[int(name)] if isinstance(node, list) else node[name]
    if isinstance(node, list):
        node[int(last)] = value
    elif value is REMOVE:
        del node[last]
    else:
        node[last] = value
    return doc


REMOVE = object()


def test_a_state_as_the_writer_makes_it_passes_the_shape_check():
    shape.check(full_state())


@pytest.mark.parametrize("path,value", [
    ("vm", REMOVE), ("vm.pc", REMOVE), ("vm.steps", REMOVE), ("vm.loops", REMOVE), ("vm.final", REMOVE),
    ("vm.branch", REMOVE), ("vm.subtasks", REMOVE), ("vm.fork_done", REMOVE), ("vm.members", REMOVE),
    ("vm.resumed_from", None), ("vm.in_flight", None), ("vm.final.0", None), ("vm.final.3", None),
    ("vm.final.3", "timeout"), ("vm.final.3", -LIMIT + 1), ("vm.steps", LIMIT - 1), ("vm.loops", None),
    ("execution_path", REMOVE), ("execution_path", []), ("global_vars", REMOVE), ("global_vars_metadata", None),
    ("failure_info", None), ("failure_info", {}), ("failure_info.task_id", None), ("current_task", REMOVE),
    ("log_file", REMOVE), ("task_results.0", {}), ("task_results.0.counts", []),
    ("task_results.0.start", -(LIMIT - 10 ** 3)), ("task_results.0.end", 9.9e17),
    ("task_results.0.exit_code", LIMIT - 1), ("task_results.0.exit_code", -LIMIT + 1),
    ("task_results.123456789012345678", {}), ("task_results.-5", {}),
])
def test_what_the_shape_check_lets_through(path, value):
    shape.check(damaged(path, value))


@pytest.mark.parametrize("path,value,message", [
    ("version", None, "version should be text"),
    ("task_file_path", 1, "task_file_path should be text"),
    ("task_file_hash", REMOVE, "task_file_hash should be text"),
    ("task_results", None, "task_results should be an object"),
    ("task_results", [], "task_results should be an object"),
    ("task_results.abc", {}, "task_results key 'abc' should be a task id"),
    ("task_results.1x", {}, "task_results key '1x' should be a task id"),
    ("task_results.1\n", {}, "task_results key '1\\n' should be a task id"),
    ("task_results.", {}, "task_results key '' should be a task id"),
    ("task_results.1234567890123456789", {}, "task_results key '1234567890123456789' should be a task id"),
    ("task_results." + "k" * 40, {}, f"task_results key {'k' * 30!r} should be a task id"),
    ("task_results.0", [], "task_results.0 should be an object"),
    ("task_results.0", None, "task_results.0 should be an object"),
    ("task_results.0.exit_code", None, "task_results.0.exit_code should be a whole number"),
    ("task_results.0.exit_code", True, "task_results.0.exit_code should be a whole number"),
    ("task_results.0.exit_code", 1.0, "task_results.0.exit_code should be a whole number"),
    ("task_results.0.exit_code", LIMIT, "task_results.0.exit_code should be a whole number"),
    ("task_results.0.exit_code", -LIMIT, "task_results.0.exit_code should be a whole number"),
    ("task_results.0.stdout", 5, "task_results.0.stdout should be text"),
    ("task_results.0.stderr", None, "task_results.0.stderr should be text"),
    ("task_results.0.hostname", [], "task_results.0.hostname should be text"),
    ("task_results.0.kind", 0, "task_results.0.kind should be text"),
    ("task_results.0.success", 1, "task_results.0.success should be true or false"),
    ("task_results.0.success", None, "task_results.0.success should be true or false"),
    ("task_results.0.start", "noon", "task_results.0.start should be a finite number"),
    ("task_results.0.start", True, "task_results.0.start should be a finite number"),
    ("task_results.0.start", float("inf"), "task_results.0.start should be a finite number"),
    ("task_results.0.start", float("nan"), "task_results.0.start should be a finite number"),
    ("task_results.0.end", float(LIMIT), "task_results.0.end should be a finite number"),
    ("task_results.0.end", -LIMIT, "task_results.0.end should be a finite number"),
    ("task_results.0.counts", "ab", "task_results.0.counts should be a list"),
    ("task_results.0.counts", [1, 2, "x"], "task_results.0.counts[2] should be a whole number"),
    ("execution_path", None, "execution_path should be a list"),
    ("execution_path", [0, 1, None], "execution_path[2] should be a whole number"),
    ("last_successful_task", "0", "last_successful_task should be a whole number or null"),
    ("intended_next_task", 1.5, "intended_next_task should be a whole number or null"),
    ("current_task", [], "current_task should be a whole number or null"),
    ("created", 5, "created should be text or null"),
    ("updated", 5, "updated should be text or null"),
    ("ending", {}, "ending should be text or null"),
    ("log_file", False, "log_file should be text or null"),
    ("global_vars", [], "global_vars should be an object or null"),
    ("global_vars.V" + "v" * 40, {"a": 1}, f"global_vars.V{'v' * 29} should be text"),
    ("global_vars.L", [], "global_vars.L should be text"),
    ("global_vars_metadata", "x", "global_vars_metadata should be an object or null"),
    ("global_vars_metadata.M" + "m" * 40, "env", f"global_vars_metadata.M{'m' * 29} should be an object"),
    ("failure_info", "boom", "failure_info should be an object or null"),
    ("failure_info.task_id", "x", "failure_info.task_id should be a whole number or null"),
    ("vm", None, "vm should be an object"),
    ("vm", [], "vm should be an object"),
    ("vm.pc", None, "vm.pc should be text"),
    ("vm.steps", None, "vm.steps should be a whole number"),
    ("vm.steps", LIMIT, "vm.steps should be a whole number"),
    ("vm.loops", [], "vm.loops should be an object or null"),
    ("vm.loops", {"x": [1, 1, False]}, "vm.loops key 'x' should be a task id"),
    ("vm.loops", {"3": 5}, "vm.loops.3 should be a list of 3 items"),
    ("vm.loops", {"3": [1, 3]}, "vm.loops.3 should be a list of 3 items"),
    ("vm.loops", {"3": [1, 3, False, 0]}, "vm.loops.3 should be a list of 3 items"),
    ("vm.loops", {"3": ["1", 3, False]}, "vm.loops.3[0] should be a whole number"),
    ("vm.loops", {"3": [1, None, False]}, "vm.loops.3[1] should be a whole number"),
    ("vm.final", None, "vm.final should be a list of 5 items"),
    ("vm.final", [1, "h", "c", 0], "vm.final should be a list of 5 items"),
    ("vm.final.0", "12", "vm.final[0] should be a whole number or null"),
    ("vm.final.1", None, "vm.final[1] should be text"),
    ("vm.final.2", 3, "vm.final[2] should be text"),
    ("vm.final.3", 1.5, "vm.final[3] should be a whole number"),
    ("vm.final.3", LIMIT, "vm.final[3] should be a whole number"),
    ("vm.branch", [], "vm.branch should be an object or null"),
    ("vm.branch", {"4": 5}, "vm.branch.4 should be text"),
    ("vm.branch", {"z": "x"}, "vm.branch key 'z' should be a task id"),
    ("vm.subtasks", {"5": "abc"}, "vm.subtasks.5 should be a list"),
    ("vm.subtasks", {"5": [50, None]}, "vm.subtasks.5[1] should be a whole number"),
    ("vm.subtasks", {"y": []}, "vm.subtasks key 'y' should be a task id"),
    ("vm.fork_done", {"6": [[60]]}, "vm.fork_done.6[0] should be a list of 2 items"),
    ("vm.fork_done", {"6": [[60, {}], "x"]}, "vm.fork_done.6[1] should be a list of 2 items"),
    ("vm.fork_done", {"6": [["x", {}]]}, "vm.fork_done.6[0][0] should be a whole number"),
    ("vm.fork_done", {"6": [[60, {"stdout": 1}]]}, "vm.fork_done.6[0][1].stdout should be text"),
    ("vm.fork_done", {"6": {}}, "vm.fork_done.6 should be a list"),
    ("vm.fork_done", {"w": []}, "vm.fork_done key 'w' should be a task id"),
    ("vm.fork_done", 3, "vm.fork_done should be an object or null"),
    ("vm.members", {"6": [[61, "rec"]]}, "vm.members.6[0][1] should be an object"),
    ("vm.members", {"6": [[61, {}], [1.5, {}]]}, "vm.members.6[1][0] should be a whole number"),
    ("vm.members", {"v": []}, "vm.members key 'v' should be a task id"),
    ("vm.resumed_from", 5, "vm.resumed_from should be text or null"),
    ("vm.in_flight", "0", "vm.in_flight should be a whole number or null"),
    ("vm.in_flight", 10 ** 20, "vm.in_flight should be a whole number or null"),
])
def test_the_shape_check_names_the_first_part_that_does_not_fit(path, value, message):
    with pytest.raises(shape.ShapeError) as caught:
        shape.check(damaged(path, value))
    assert str(caught.value) == message


def test_a_damaged_part_is_named_in_the_refusal_to_load(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps(damaged("vm.final.1", None)))
    with pytest.raises(checkpoint.RecoveryError) as caught:
        checkpoint.load(str(path))
    assert str(caught.value) == (f"the recovery file {path} is damaged: vm.final[1] should be text; "
                                 "delete it to start over")


def test_after_a_failed_checkpoint_every_later_one_is_refused_without_writing(tmp_path):
    machine, _store, _path = checkpointed(tmp_path)
    tries = []

    def save(m, instr=None, **kw):
        tries.append(instr)
        raise CheckpointError("could not write the recovery state: disk full")
    machine.env.checkpoint = save
    assert [machine.save_checkpoint(None) for _ in range(3)] == [False, False, False]
    assert (tries, machine.env.halt) == ([None], "could not write the recovery state: disk full")


# ----------------------------------------------------------------- file name, loading, records


def test_the_state_file_is_named_after_the_task_file_and_the_hash_of_its_absolute_path(tmp_path):
    import hashlib

    task_file = str(tmp_path / "deploy.txt")
    digest = hashlib.sha256(task_file.encode()).hexdigest()[:8]
    assert checkpoint.state_path("/logs", task_file) == f"/logs/recovery/deploy_{digest}.recovery.json"
    other = str(tmp_path / "deploy.flow")
    other_digest = hashlib.sha256(other.encode()).hexdigest()[:8]
    assert checkpoint.state_path("/logs", other) == f"/logs/recovery/deploy.flow_{other_digest}.recovery.json"
    long_name = checkpoint.state_path("/logs", str(tmp_path / ("x" * 300 + ".txt")))
    stem = os.path.basename(long_name).rsplit("_", 1)[0]
    assert len(stem) == 100


def test_a_record_missing_its_parts_is_rebuilt_with_failure_defaults():
    rec = checkpoint.record_from_json({})
    assert (rec.exit_code, rec.stdout.text(), rec.stderr.text(), rec.success) == (1, "", "", False)
    assert (rec.hostname, rec.start, rec.end, rec.counts, rec.kind) == ("", 0.0, 0.0, None, "task")


@pytest.mark.parametrize("text,message", [
    ('{"version": "1.0"}', "lacks task_file_path, task_file_hash, task_results; delete it to start over"),
    ('{"version": "0.9", "task_file_path": "f", "task_file_hash": "h", "task_results": {}}',
     "has version '0.9', expected 1.0"),
    ("[" * 100_000 + "]" * 100_000, "is not valid JSON (nested too deeply); delete it to start over"),
    ("{", "is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); "
          "delete it to start over"),
    ("[]", "does not hold a recovery state; delete it to start over"),
    ('{"version": "' + "9" * 60 + '", "task_file_path": "f", "task_file_hash": "h", "task_results": {}}',
     f"has version '{'9' * 40}', expected 1.0"),
])
def test_a_recovery_file_that_cannot_be_used_is_refused_with_the_reason(tmp_path, text, message):
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(checkpoint.RecoveryError) as err:
        checkpoint.load(str(path))
    assert str(err.value) == f"the recovery file {path} {message}"


def test_a_changed_task_file_is_refused_naming_what_changed(tmp_path):
    data = saved_state(tmp_path)
    workflow, _ = compile_text(RUN)
    new = dedent(RUN).replace("command=c2", "command=c2b")
    with pytest.raises(checkpoint.RecoveryError) as err:
        checkpoint.check_task_file(data, "state.json", "flow.txt", new.encode(), workflow)
    assert str(err.value).startswith("the task file flow.txt changed since the run that saved the state in "
                                     "state.json (task 2 changed)")
    with pytest.raises(checkpoint.RecoveryError, match=r"\(its hash differs\)"):
        checkpoint.check_task_file(data, "state.json", "flow.txt", new.encode())


def test_a_recovery_file_that_cannot_be_read_is_refused_with_the_reason(tmp_path):
    with pytest.raises(checkpoint.RecoveryError) as err:
        checkpoint.load(str(tmp_path))
    assert str(err.value) == f"cannot read the recovery file {tmp_path}: Is a directory"


def test_a_changed_task_file_that_is_not_utf8_is_still_compared(tmp_path):
    data = saved_state(tmp_path)
    workflow, _ = compile_text(RUN)
    new = dedent(RUN).replace("command=c2", "command=c\udcff").encode("utf-8", "surrogateescape")
    with pytest.raises(checkpoint.RecoveryError, match=r"\(task 2 changed\)"):
        checkpoint.check_task_file(data, "state.json", "flow.txt", new, workflow)


def test_a_state_with_a_vm_section_but_no_format_is_read_as_a_tasker_2_2_state(tmp_path):
    data = saved_state(tmp_path)
    del data["format"]
    data["vm"]["pc"] = "stop.failure"
    data["execution_path"] = [0, 1, 2, 3]
    again, _store2, _path2 = checkpointed(tmp_path / "again")
    assert checkpoint.restore(data, again) == again.program.entries[4]    # the 2.2 fields name task 4
