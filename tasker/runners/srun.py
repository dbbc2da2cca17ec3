"""The srun command line of a Slurm task: what ``runner: slurm`` exec types run.

Kept apart from ``slurm.py`` (which runs and cancels the steps) so that the exec
types can build a task's argv without importing the step runner, which imports
them.
"""

from __future__ import annotations

import os

from tasker.runners.errors import ExecTypeError

RUNNER = "slurm"
ANY_HOST = "any"          # hostname=any: Slurm chooses the node


def is_slurm(spec) -> bool:
    return spec is not None and spec.runner == RUNNER


class SlurmSettings:
    """The ``slurm:`` section of an exec type: partition, account, extra srun options."""

    def __init__(self, spec) -> None:
        raw = spec.slurm if isinstance(spec.slurm, dict) else {}
        if spec.slurm is not None and not isinstance(spec.slurm, dict):
            raise ExecTypeError(f"exec type '{spec.name}': 'slurm' must be a mapping (partition, account, options)")
        self.partition = str(raw.get("partition") or "").strip()
        self.account = str(raw.get("account") or "").strip()
        options = raw.get("options") or []
        if not isinstance(options, list):
            raise ExecTypeError(f"exec type '{spec.name}': slurm options must be a list of srun arguments")
        self.options = [str(option) for option in options]
        self.srun = spec.binary or "srun"

    def tool(self, name: str) -> str:
        """``scancel``/``squeue``/``sinfo``: next to the configured srun when it is a path."""
        return os.path.join(os.path.dirname(self.srun), name)    # a bare srun gives a bare name


def step_argv(spec, hostname: str, command: str, words: list[str]) -> list[str]:
    """The srun command line of a task (without the per-step job name and time limit); ``words``:
    the arguments split exactly as ``exec=local`` splits them."""
    settings = SlurmSettings(spec)
    argv = [settings.srun, "--quiet", "--nodes=1", "--ntasks=1", "--input=none"]
    host = hostname.strip()
    if host and host.lower() != ANY_HOST:
        argv.append(f"--nodelist={host}")
    if settings.partition:
        argv.append(f"--partition={settings.partition}")
    if settings.account:
        argv.append(f"--account={settings.account}")
    argv.extend(settings.options)
    return [*argv, "--", command, *words]
