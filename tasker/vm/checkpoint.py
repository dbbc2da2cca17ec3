"""Checkpoint and resume: the VM state in the recovery file (docs/command-line.md, D15, D17).

After every instruction of a real run with ``--auto-recovery`` the machine's
state (pc, records, loop counters, finished block members, path so far) is
written to ``L/recovery/<stem>_<hash8>.recovery.json``: a temporary file in
the same directory, fsync, rename, so the file on disk is always one whole
checkpoint.  A later run resumes by loading that state into the same VM loop.

The file also carries the keys TASKER 2.2 wrote (``execution_path``,
``intended_next_task``, ``task_results`` ...), so tools that read 2.2 recovery
files keep working, and a 2.2 file (which has no ``vm`` section) can be
resumed too, at the task it names.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time

from tasker.check.model import Workflow
from tasker.ir import instructions as ir
from tasker.report.files import short_name
from tasker.report.json_out import iso
from tasker.report.masking import NO_SECRETS, Masker
from tasker.report.private import private_dir, sweep_temp, write_atomic
from tasker.runners.output import Output
from tasker.vm import shape
from tasker.vm.errors import CheckpointError
from tasker.vm.machine import Ending, Machine, State
from tasker.vm.store import Record, ResultStore

VERSION = "1.0"
FORMAT = "tasker-vm/1"
KILL_HOOK = "TASKER_TEST_KILL_AFTER_CHECKPOINT"   # fault injection for the crash tests


class RecoveryError(Exception):
    """A recovery file that cannot be used (exit 12)."""


def state_path(log_base: str, task_file: str) -> str:
    """``L/recovery/<stem>_<hash8>.recovery.json`` (stem: base name without a trailing .txt, at most
    100 characters, so that the name and its lock and temporary files fit any file system's limit)."""
    name = os.path.basename(task_file)
    stem = short_name(name[:-4] if name.endswith(".txt") else name, 100)
    digest = hashlib.sha256(os.path.abspath(task_file).encode()).hexdigest()[:8]
    return os.path.join(log_base, "recovery", f"{stem}_{digest}.recovery.json")


# ----------------------------------------------------------------- records


def record_to_json(record: Record) -> dict:
    """The record as --output-json writes it, plus what a resume needs to rebuild it."""
    data = record.to_json()
    data.pop("stdout_file", None)   # a spill file goes with its run: what @N_stdout@ gave stays
    data.pop("stderr_file", None)
    if record.hostname:
        data["hostname"] = record.hostname
    if record.start:
        data["start"] = record.start
        data["end"] = record.end
    if record.counts is not None:
        data["counts"] = list(record.counts)
    if record.kind != "task":
        data["kind"] = record.kind
    return data


def record_from_json(data: dict) -> Record:
    counts = data.get("counts")
    return Record(int(data.get("exit_code", 1)), Output(str(data.get("stdout", ""))),
                  Output(str(data.get("stderr", ""))), bool(data.get("success", False)),
                  hostname=str(data.get("hostname", "")), start=float(data.get("start", 0.0)),
                  end=float(data.get("end", 0.0)), counts=tuple(counts) if counts else None,
                  kind=str(data.get("kind", "task")))


# ----------------------------------------------------------------- the store


class CheckpointStore:
    """Writes checkpoints for one run and deletes the file at a defined end."""

    def __init__(self, path: str, task_file: str, content: bytes, workflow: Workflow, log_file: str = "",
                 environ: dict | None = None, masker: Masker = NO_SECRETS) -> None:
        self.path = path
        self.masker = masker
        self.task_file = os.path.abspath(task_file)
        self.task_hash = hashlib.sha256(content).hexdigest()
        # per task and global: a later run refused for an edited file names what changed
        self.fingerprints = fingerprints(workflow, content.decode("utf-8", "replace"))
        self.workflow = workflow
        self.log_file = log_file
        self.created = iso(time.time())
        self.count = 0
        self._record_cache: dict[int, tuple[Record, dict]] = {}
        self.run_id = ""          # names this run's Slurm jobs; a resume cancels the ones left over
        environ = environ if environ is not None else {}
        kill = environ.get(KILL_HOOK, "")
        self.kill_after = int(kill) if kill.isdigit() else None
        directory = os.path.dirname(os.path.abspath(path))
        private_dir(directory)
        sweep_temp(directory)      # temporary files of runs that were killed mid-write

    def save(self, machine: Machine, _instr: ir.Instr | None = None, *, final: dict | None = None) -> None:
        """Write the machine's state atomically (called after every instruction)."""
        data = self.document(machine, final)
        try:
            write_atomic(self.path, json.dumps(data, separators=(",", ":")).encode("utf-8"))
        except OSError as exc:   # write_atomic removed its temporary file: the last good state stands
            raise CheckpointError(f"could not write the recovery state {self.path}: "
                                  f"{exc.strerror or exc}") from None
        self.count += 1
        if self.kill_after is not None and self.count >= self.kill_after:
            os.kill(os.getpid(), 9)   # crash tests: die right after this checkpoint

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def record_json(self, tid: int, record: Record) -> dict:
        """``record_to_json``, converted once per record: every checkpoint writes them all."""
        hit = self._record_cache.get(tid)
        if hit is None or hit[0] is not record:
            hit = self._record_cache[tid] = (record, record_to_json(record))
        return hit[1]

    def records_json(self, store: ResultStore) -> dict:
        return {str(tid): self.record_json(tid, record) for tid, record in list(store.records.items())}

    def document(self, machine: Machine, final: dict | None = None) -> dict:
        state = machine.state
        records = self.records_json(machine.store)
        successful = [tid for tid in state.path if (r := machine.store.get(tid)) is not None and r.success]
        data = {
            "version": VERSION,
            "format": FORMAT,
            "task_file_path": self.task_file,
            "task_file_hash": self.task_hash,
            "task_text_hashes": self.fingerprints["tasks"],
            "global_hashes": self.fingerprints["globals"],
            "recovery_file": os.path.basename(self.path),
            "created": self.created,
            "updated": iso(time.time()),
            "log_file": self.log_file,
            "execution_path": list(state.path),
            "last_successful_task": successful[-1] if successful else None,
            "current_task": state.final_task,
            "intended_next_task": _task_of(machine.program, state.pc),
            "task_results": records,
            "global_vars": self.global_values(),
            "global_vars_metadata": {n: ({"source": "env", "template": v.template} if v.from_env
                                         else {"source": "literal"}) for n, v in self.workflow.globals.items()},
            "loop_state": {},
            "failure_info": None,
            "vm": vm_state(state, self),
        }
        if self.run_id:
            data["run_id"] = self.run_id
        if final:
            data.update(self.masker.data(final))
        return data

    def global_values(self) -> dict:
        """Globals as a resume reads them: a secret is kept only when it came from the environment
        (the resume may need it when the variable is gone); one written in the file is masked."""
        mask = self.masker.text
        return {n: v.value if v.from_env else mask(v.value) for n, v in self.workflow.globals.items()}


def vm_state(state: State, store: CheckpointStore) -> dict:
    def recs(pairs) -> list:
        return [[sid, store.record_json(sid, r)] for sid, r in pairs]

    return {
        "pc": state.pc,
        "steps": state.steps,
        "loops": {str(k): v for k, v in state.loops.items()},
        "final": [state.final_task, state.final_host, state.final_command, state.final_exit, state.final_success],
        "branch": {str(k): v for k, v in state.branch.items()},
        "subtasks": {str(k): v for k, v in state.subtasks.items()},
        "fork_done": {str(k): recs(v.items()) for k, v in state.fork_done.items()},
        "members": {str(k): recs(v) for k, v in state.members.items()},
        "resumed_from": state.resumed_from,
        "in_flight": state.in_flight,
    }


def _task_of(program: ir.Program, pc: str) -> int | None:
    instr = program.instrs.get(pc)
    return instr.task if instr is not None else None


# ----------------------------------------------------------------- endings


def resume_point(machine: Machine, ending: Ending) -> str:
    """Where a later resume starts after ``ending``: the task that failed or was cut short."""
    state = machine.state
    program = machine.program
    if state.interrupted is not None:
        return program.entries.get(state.interrupted, state.pc)
    pc = state.pc
    instr = program.instrs.get(pc)
    if ending.reason == "signal" and instr is not None and instr.kind != ir.STOP:
        return pc     # stopped between instructions: carry on from there
    task = state.path[-1] if state.path else state.final_task
    if task is not None and task in program.entries:
        return program.entries[task]
    return pc


def final_checkpoint(store: CheckpointStore, machine: Machine, ending: Ending) -> None:
    """The checkpoint kept after a failure, timeout or signal: a resume retries from there."""
    state = machine.state
    state.pc = resume_point(machine, ending)
    state.interrupted = None
    failure = {"task_id": state.final_task, "exit_code": ending.exit_code,
               "error": ending.message or "Workflow failed"}
    store.save(machine, final={"failure_info": failure, "ending": ending.reason,
                               "intended_next_task": _task_of(machine.program, state.pc)})


# ----------------------------------------------------------------- loading


def load(path: str) -> dict:
    """The recovery file's content; ``RecoveryError`` when it cannot be used."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (ValueError, RecursionError) as exc:   # bad JSON or UTF-8, a huge number, absurd nesting
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise RecoveryError(f"the recovery file {path} is not valid JSON ({why}); delete it to start over") \
            from None
    except OSError as exc:
        raise RecoveryError(f"cannot read the recovery file {path}: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise RecoveryError(f"the recovery file {path} does not hold a recovery state; delete it to start over")
    missing = [k for k in ("version", "task_file_path", "task_file_hash", "task_results") if k not in data]
    if missing:
        raise RecoveryError(f"the recovery file {path} lacks {', '.join(missing)}; delete it to start over")
    if data.get("version") != VERSION:
        raise RecoveryError(f"the recovery file {path} has version {str(data.get('version'))[:40]!r}, "
                            f"expected {VERSION}")
    try:
        shape.check(data)
    except shape.ShapeError as exc:
        raise RecoveryError(f"the recovery file {path} is damaged: {exc}; delete it to start over") from None
    return data


def check_task_file(data: dict, path: str, task_file: str, content: bytes, workflow: Workflow | None = None) -> None:
    """The state belongs to this task file, unchanged since it was written."""
    if hashlib.sha256(content).hexdigest() != data.get("task_file_hash"):
        changed = describe_changes(data, workflow, content.decode("utf-8", "replace")) if workflow else ""
        raise RecoveryError(f"the task file {task_file} changed since the run that saved the state in {path} "
                            f"({changed or 'its hash differs'}): the saved results do not fit the new file")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def fingerprints(workflow: Workflow, text: str) -> dict:
    """A hash of each task's text as the file defines it (its lines up to the next task, without
    blank lines, comments and global definitions) and of each global's definition as written."""
    lines = text.split("\n")
    global_lines = {var.span.line for var in workflow.globals.values() if var.span is not None}
    starts = sorted((task.span.line, tid) for tid, task in workflow.tasks.items()
                    if task.parent is None and task.span is not None)
    tasks = {}
    for i, (line, tid) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(lines) + 1
        body = [lines[n - 1].strip() for n in range(line, end) if n not in global_lines]
        tasks[str(tid)] = _digest("\n".join(t for t in body if t and not t.startswith("#")))
    return {"tasks": tasks, "globals": {name: _digest(var.template) for name, var in workflow.globals.items()}}


def _ids(keys) -> str:
    ids = sorted(keys, key=lambda k: (len(k), k))
    return ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


def describe_changes(data: dict, workflow: Workflow, text: str) -> str:
    """What differs between the saved fingerprints and the file now; "" for a state without them."""
    saved_tasks, saved_globals = data.get("task_text_hashes"), data.get("global_hashes")
    if not isinstance(saved_tasks, dict) or not isinstance(saved_globals, dict):
        return ""    # written before fingerprints were saved: only the whole file's hash is known
    now = fingerprints(workflow, text)
    parts = []
    for what, saved, current in (("task", saved_tasks, now["tasks"]), ("global", saved_globals, now["globals"])):
        changed = [k for k in current if k in saved and saved[k] != current[k]]
        added = [k for k in current if k not in saved]
        removed = [k for k in saved if k not in current]
        for verb, keys in (("changed", changed), ("added", added), ("removed", removed)):
            if keys:
                parts.append(f"{what}{'s' if len(keys) != 1 else ''} {_ids(keys)} {verb}")
    return "; ".join(parts) or "only blank lines, comments or the order of lines changed"


def restore(data: dict, machine: Machine) -> str:
    """Load ``data`` into the machine; returns the address to resume at."""
    state = machine.state
    store = machine.store
    for tid, rec in data.get("task_results", {}).items():
        store.put(int(tid), record_from_json(rec))
    state.path = [int(t) for t in data.get("execution_path", [])]
    vm = data.get("vm")
    if isinstance(vm, dict) and data.get("format") == FORMAT:
        return _restore_vm(vm, machine)
    return _restore_2_2(data, machine)


def _restore_vm(vm: dict, machine: Machine) -> str:
    state = machine.state
    state.steps = int(vm.get("steps", 0))
    state.loops = {int(k): list(v) for k, v in vm.get("loops", {}).items()}
    final = vm.get("final") or [None, "", "", None, False]
    state.final_task, state.final_host, state.final_command, state.final_exit, state.final_success = final
    state.branch = {int(k): v for k, v in vm.get("branch", {}).items()}
    state.subtasks = {int(k): list(v) for k, v in vm.get("subtasks", {}).items()}
    state.fork_done = {int(k): {int(s): record_from_json(r) for s, r in v}
                       for k, v in vm.get("fork_done", {}).items()}
    state.members = {int(k): [(int(s), record_from_json(r)) for s, r in v]
                     for k, v in vm.get("members", {}).items()}
    pc = str(vm.get("pc", ""))
    in_flight = vm.get("in_flight")
    if in_flight is not None and int(in_flight) in machine.program.entries:
        # the run died while this task's command ran: start the task again, from its entry
        pc = machine.program.entries[int(in_flight)]
        state.rerun = int(in_flight)
        if state.path and state.path[-1] == int(in_flight):
            state.path.pop()   # it is entered again below
        loop = state.loops.get(int(in_flight))
        if loop is not None:
            loop[2] = False
    if pc not in machine.program.instrs:
        raise RecoveryError(f"the recovery state points at instruction {pc!r}, which this program does not have")
    return pc


def _restore_2_2(data: dict, machine: Machine) -> str:
    """A TASKER 2.2 recovery file: resume at the task it names (docs/command-line.md)."""
    entries = machine.program.entries
    ids = sorted(entries)
    path = machine.state.path
    last_ok = data.get("last_successful_task")
    want = data.get("intended_next_task")
    # none named, or no task by that id: the first task after the last success not run yet
    if want not in entries or want in path:
        later = [t for t in ids if (last_ok is None or t > int(last_ok)) and t not in path]
        want = later[0] if later else None
    if want is None:
        raise RecoveryError("the recovery state names no task left to run")
    return entries[want]
