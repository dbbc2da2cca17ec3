"""Test helpers: run the real CLI, compile text, run the VM with fakes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import attrs

from tasker.check.checker import CheckOptions, compile_workflow
from tasker.syntax.taskfile import parse_taskfile

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def compile_text(text: str, *, validate: bool = True, security: bool = True, environ: dict | None = None,
                 strict_env: bool = False, path: str = "t.txt"):
    """(workflow, diagnostics) for a task file given as text."""
    tree = parse_taskfile(dedent(text), path)
    opts = CheckOptions(validate=validate, security=security, strict_env=strict_env,
                        environ=environ if environ is not None else {"HOME": "/home/u", "USER": "u"})
    return compile_workflow(tree, opts)


class Tasker:
    """Runs ``python -m tasker`` in a private HOME; returns CompletedProcess objects."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.home = tmp / "home"
        self.home.mkdir(exist_ok=True)

    def env(self, extra: dict | None = None) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TASK_EXECUTOR", "TASKER_"))}
        env["HOME"] = str(self.home)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env["TASKER_DEBUG"] = "1"      # a bug stays a traceback, which the tests look for
        env.update(extra or {})
        return env

    def write(self, text: str, name: str = "flow.txt") -> Path:
        path = self.tmp / name
        path.write_text(dedent(text))
        return path

    def run(self, *args: str, env: dict | None = None, input: str | None = None, timeout: float = 60,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tasker", *map(str, args)], capture_output=True, text=True,
                              env=self.env(env), input=input, timeout=timeout, cwd=cwd or self.tmp)


class VMRun:
    """A compiled workflow run by the VM with fakes; see ``run_vm``."""

    def __init__(self, ending, machine, runner, clock, log_text):
        self.ending = ending
        self.machine = machine
        self.runner = runner
        self.clock = clock
        self.log = log_text

    @property
    def path(self) -> list[int]:
        return self.machine.state.path

    @property
    def code(self) -> int:
        return self.ending.exit_code

    def record(self, task: int):
        return self.machine.store.get(task)

    def programs(self) -> list[str]:
        """The argument strings of every command run, in order (``echo a b`` -> ``a b``)."""
        return [" ".join(argv[1:]) for argv in self.runner.calls]


def run_vm(text: str, script: dict | None = None, *, dry_run: bool = False, fire_and_forget: bool = False,
           start: int | None = None, validate: bool = True, events=None, exec_types: dict | None = None,
           progress=None, steps=None, hosts: dict | None = None) -> VMRun:
    """Compile ``text`` and run it on the VM with a FakeRunner and FakeClock.

    ``exec_types`` maps exec type names to their specs (as in the config file's platform
    section); without it only ``local`` exists."""
    import io

    from fakes import FakeClock, FakeRunner

    from tasker.ir.lower import LowerOptions, lower
    from tasker.report.log import Log
    from tasker.runners.base import Cancel
    from tasker.runners.exectypes import ExecConfig, ExecTypes, platform_key
    from tasker.vm.machine import Env, Machine

    workflow, diags = compile_text(text, validate=validate)
    assert not diags.has_errors(), [d.message for d in diags.errors]
    program = lower(workflow, LowerOptions(fire_and_forget=fire_and_forget))
    clock = FakeClock()
    runner = FakeRunner(script, clock)
    types, exec_types = exec_types, ExecTypes(environ={})
    exec_types.use_config(ExecConfig(data={"platforms": {platform_key(): types}}) if types else ExecConfig())
    stream = io.StringIO()
    env = Env(runner=runner, clock=clock, exec_types=exec_types, log=Log("DEBUG", stream), cancel=Cancel(),
              dry_run=dry_run, events=events, progress=progress, steps=steps, hosts=hosts)
    machine = Machine(program, env)
    ending = machine.run(program.entries[start] if start is not None else None)
    return VMRun(ending, machine, runner, clock, stream.getvalue())


def pretty(obj: object, indent: int = 0, *, spans: bool = True) -> str:
    """A readable, stable multi-line dump of a node tree for the golden files.

    With ``spans=False`` only the fields that take part in equality are shown.
    """
    pad = "  " * indent
    if attrs.has(type(obj)):
        names = [f.name for f in attrs.fields(type(obj)) if spans or f.eq]
        inner = [f"{pad}  {name}={pretty(getattr(obj, name), indent + 1, spans=spans).lstrip()}" for name in names]
        return f"{pad}{type(obj).__name__}(\n" + ",\n".join(inner) + f"\n{pad})"
    if isinstance(obj, (tuple, list)) and obj and any(attrs.has(type(x)) for x in obj):
        items = ",\n".join(pretty(x, indent + 1, spans=spans) for x in obj)
        return f"{pad}[\n{items}\n{pad}]"
    if isinstance(obj, dict) and obj:
        items = ",\n".join(f"{pad}  {k!r}: {pretty(v, indent + 1, spans=spans).lstrip()}" for k, v in obj.items())
        return f"{pad}{{\n{items}\n{pad}}}"
    return f"{pad}{obj!r}"
