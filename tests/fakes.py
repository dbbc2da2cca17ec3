"""Fakes for the VM's interfaces: a scripted runner and a clock that never waits."""

from __future__ import annotations

from tasker.runners.base import Cancel, RunResult
from tasker.runners.output import Output


class FakeRunner:
    """Answers each command from a script: ``{program: [(exit, stdout, stderr), ...]}``.

    A program's answers are used in turn (the last one repeats); unknown programs
    succeed with no output.  Every call is recorded in ``calls`` (the argv).
    """

    def __init__(self, script: dict | None = None, clock=None) -> None:
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.calls: list[list[str]] = []
        self.timeouts: list = []      # what each call was given for its timeout (seconds, or a function)
        self.clock = clock

    def run(self, argv, timeout, cancel: Cancel) -> RunResult:
        self.calls.append(list(argv))
        self.timeouts.append(timeout)
        answers = self.script.get(argv[0])
        exit_code, out, err = (0, "", "")
        if answers:
            exit_code, out, err = answers.pop(0) if len(answers) > 1 else answers[0]
        if argv[0] == "__missing__":
            return RunResult(1, Output(""), Output("not found"), error="not found", not_found=True)
        timed_out = exit_code == 124
        if timed_out:
            err += "\nProcess killed after timeout of 5 seconds"
        now = self.clock.now() if self.clock else 0.0
        return RunResult(exit_code, Output(out), Output(err), timed_out=timed_out, timeout=5.0,
                         start=now, end=now)


class FakeClock:
    """Time that moves only when someone sleeps; every sleep is recorded."""

    def __init__(self) -> None:
        self.t = 1_000_000.0
        self.sleeps: list[float] = []
        self.cancels: list = []   # what each sleep could be cut short by

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float, cancel=None) -> bool:
        self.sleeps.append(seconds)
        self.cancels.append(cancel)
        self.t += max(0.0, seconds)
        return True

    def wait_on(self, condition, timeout: float | None) -> None:
        """A timed wait passes in no real time; an open-ended one waits for real."""
        if timeout is None:
            condition.wait()
        else:
            self.sleeps.append(timeout)
            self.t += timeout
