"""A private single-node Slurm cluster for the slurm exec-type tests.

``SlurmCluster.start`` writes everything into one temporary directory: a
munge key and a ``munged`` with its own socket, a ``slurm.conf`` for this
host (its name from ``socket.gethostname()``, reached on 127.0.0.1, free
ports, state, spool and logs in the directory), then starts ``slurmctld`` and
``slurmd`` and waits until ``sinfo`` reports the node idle.  The node claims
more CPUs than the machine has and the partition oversubscribes, so dozens of
one-task steps run side by side on a 2-core machine.  ``environ`` is what a
client needs to find this cluster: ``SLURM_CONF`` (as ``/etc/slurm/slurm.conf``
does at a real site).  ``stop`` cancels every job and stops the daemons by
their pid files.

Slurm daemons run as root here (``SlurmUser=root``); as another user, or
where a program is missing, ``start`` raises ``CannotStart`` and the tests
are skipped with its reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
CPUS = 64                 # what the node claims: many one-CPU steps at once on a small machine
PROGRAMS = ("munged", "slurmctld", "slurmd", "srun", "sinfo", "squeue", "scancel", "scontrol")


class CannotStart(Exception):
    """Slurm is not installed or does not start here (the tests are skipped with this reason)."""


def find(program: str) -> str | None:
    extra = [os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"]
    return shutil.which(program, path=os.pathsep.join(extra))


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class SlurmCluster:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.node = socket.gethostname().split(".")[0]
        self.conf = directory / "slurm.conf"
        self.munge = directory / "munge"
        self.logs = directory / "log"

    @property
    def environ(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    # ------------------------------------------------------------ start / stop

    def start(self) -> None:
        missing = [p for p in PROGRAMS if find(p) is None]
        if missing:
            raise CannotStart(f"{', '.join(missing)} not installed (apt-get install slurm-wlm munge)")
        if os.geteuid() != 0:
            raise CannotStart("the test cluster runs its daemons as root (SlurmUser=root); not root here")
        for sub in ("munge", "state", "spool", "log"):
            (self.dir / sub).mkdir(mode=0o700, exist_ok=True)
        self.start_munge()
        last = ""
        for _attempt in range(3):          # a free port can be taken between choosing and binding it
            self.write_config(*free_ports(2))
            self.daemon("slurmctld", "-i")
            self.daemon("slurmd")
            if self.wait_idle():
                return
            last = self.log_tail()
            self.stop_slurm()
        raise CannotStart(f"slurm did not start: {last}")

    def start_munge(self) -> None:
        key = self.munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        r = subprocess.run([find("munged"), f"--key-file={key}", f"--socket={self.munge / 'sock'}",
                            f"--pid-file={self.munge / 'pid'}", f"--log-file={self.munge / 'log'}",
                            f"--seed-file={self.munge / 'seed'}", "--force"],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
        if r.returncode != 0:
            raise CannotStart(f"munged did not start: {(r.stderr or r.stdout).strip()}")

    def daemon(self, name: str, *args: str) -> None:
        # the daemons detach themselves; their early complaints go to a file, never to a pipe we would wait on
        with open(self.logs / f"{name}.start", "ab") as out:
            subprocess.run([find(name), *args], env=self.env(), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                           timeout=30)

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.environ}

    def write_config(self, ctld_port: int, slurmd_port: int) -> None:
        d = self.dir
        self.conf.write_text("\n".join([
            "ClusterName=tasker",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CryptoType=crypto/munge",
            f"AuthInfo=socket={self.munge / 'sock'}",
            "MpiDefault=none",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SwitchType=switch/none",
            "ReturnToService=2",
            "SchedulerType=sched/builtin",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "SlurmdParameters=config_overrides",
            f"StateSaveLocation={d / 'state'}",
            f"SlurmdSpoolDir={d / 'spool'}",
            f"SlurmctldPidFile={d / 'slurmctld.pid'}",
            f"SlurmdPidFile={d / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.logs / 'slurmctld.log'}",
            f"SlurmdLogFile={self.logs / 'slurmd.log'}",
            "JobCompType=jobcomp/none",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "MaxJobCount=100000",
            "KillWait=2",                  # SIGTERM -> SIGKILL for a cancelled step
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={CPUS} RealMemory=1000 State=UNKNOWN",
            f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP "
            f"OverSubscribe=FORCE:{CPUS}",
        ]) + "\n")

    def wait_idle(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            state = self.run("sinfo", "-h", "-n", self.node, "-o", "%t").stdout.strip()
            if state == "idle":
                return True
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        self.stop_slurm()
        self.kill_pidfile(self.munge / "pid")

    def stop_slurm(self) -> None:
        if self.conf.exists():
            self.run("scancel", f"--user={os.getuid()}")
        for pidfile in (self.dir / "slurmd.pid", self.dir / "slurmctld.pid"):
            self.kill_pidfile(pidfile)

    def kill_pidfile(self, pidfile: Path) -> None:
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def log_tail(self) -> str:
        lines = []
        for name in ("slurmctld.log", "slurmd.log"):
            with contextlib.suppress(OSError):
                lines += (self.logs / name).read_text(errors="replace").strip().splitlines()[-3:]
        return " | ".join(lines)

    # ------------------------------------------------------------ clients

    def run(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([find(argv[0]) or argv[0], *argv[1:]], env=self.env(), capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=timeout)

    def jobs(self) -> list[tuple[str, str, str]]:
        """(job id, name, state) of every job in the queue, completing ones included."""
        out = self.run("squeue", "-h", "-o", "%i|%j|%T").stdout
        return [tuple(line.split("|", 2)) for line in out.splitlines() if line.strip()]
