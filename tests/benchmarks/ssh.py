"""W7 and W8: tasker over ssh against plain OpenSSH and Ansible, on the project's own test sshd.

    python tests/benchmarks/ssh.py                    # W7 500 hosts, W8 30 tasks, 3 runs + 1 warm-up
    python tests/benchmarks/ssh.py --w7 200 --runs 5 --only w7
    python tests/benchmarks/ssh.py --no-ansible       # only the OpenSSH floors

One sshd (tests/sshd.py) on 127.0.0.1; the hosts are loopback addresses
(127.0.1.1, 127.0.1.2 ...) that the private ssh_config sends to it, so every
client below makes real, distinct connections, and client and server share the
same cores, as they would on a loaded jump host.

* W7 fan-out: ``true`` on N hosts, 50 in flight: a ``hostnames=`` block with
  max_parallel=50, against ``xargs -P 50 ssh HOST true`` (the floor) and
  ``ansible all -f 50 -m raw -a true``.
* W8 sequence: N tasks in sequence on one host, against a shell loop of ``ssh
  HOST true`` over one ControlMaster connection (the floor) and
  ``ansible-playbook`` running N ``raw`` tasks (Ansible's default ssh arguments
  use ControlPersist, so it also shares one connection).

tasker runs with ``-r --skip-host-validation`` (the floors validate nothing
either).  Ansible is a benchmark tool, not a dependency: ansible-core is
installed with pip into a venv of this benchmark's own (``--ansible-venv``,
created on first use).  Runs alternate A B C A B C; the table is run.py's:
medians, min-max, and the median of the paired ratios.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import run  # noqa: E402  (the sibling benchmark harness)
import workloads  # noqa: E402
from sshd import SSHServer, loopback_hosts  # noqa: E402

PARALLEL = 50


def ansible_venv(path: Path) -> Path | None:
    """The venv with ansible-core (created with pip on first use); None when it cannot be made."""
    tool = path / "bin" / "ansible"
    if not tool.exists():
        print(f"installing ansible-core into {path} ...", file=sys.stderr)
        made = subprocess.run([sys.executable, "-m", "venv", str(path)]).returncode == 0 and subprocess.run(
            [str(path / "bin" / "pip"), "install", "-q", "ansible-core"]).returncode == 0
        if not made:
            return None
    return path / "bin"


def ssh_options(server: SSHServer) -> list[str]:
    return [*server.client_options(), "-o", "BatchMode=yes", "-T"]


def w7(directory: Path, server: SSHServer, n: int, ansible: Path | None) -> workloads.Workload:
    hosts = loopback_hosts(n)
    path = directory / f"w7_fanout_{n}.txt"
    path.write_text(f"task=0\ntype=parallel\nhostnames={','.join(hosts)}\nmax_parallel={PARALLEL}\n"
                    "command=true\nexec=ssh\n")
    listing = directory / f"hosts_{n}.txt"
    listing.write_text("\n".join(hosts) + "\n")
    opts = shlex.join(ssh_options(server))
    floors = [(f"xargs -P {PARALLEL} ssh", ["sh", "-c", f"xargs -P {PARALLEL} -I@ ssh {opts} -n @ true < {listing}"]),
              # tasker starts every command in a session of its own (setsid), as this floor does: with
              # the kernel's autogroup scheduling each session is a scheduling group of its own, which
              # changes how the cores are shared between the clients and the sshd on the same machine
              (f"xargs -P {PARALLEL} setsid ssh",
               ["sh", "-c", f"xargs -P {PARALLEL} -I@ setsid -w ssh {opts} -n @ true < {listing}"])]
    if ansible:
        inventory = write_inventory(directory / f"inventory_{n}.ini", server, hosts)
        floors.append((f"ansible -f {PARALLEL} -m raw", [str(ansible / "ansible"), "all", "-i", str(inventory),
                                                          "-f", str(PARALLEL), "-m", "raw", "-a", "true"]))
    return workloads.Workload(f"w7_fanout_{n}", str(path), "run", floors, note=f"{n} hosts, {PARALLEL} in flight")


def w8(directory: Path, server: SSHServer, n: int, ansible: Path | None) -> workloads.Workload:
    host = "127.0.0.2"
    path = directory / f"w8_sequence_{n}.txt"
    path.write_text("".join(f"task={i}\nhostname={host}\ncommand=true\nexec=ssh\n\n" for i in range(n)))
    opts = shlex.join(ssh_options(server))
    socket = directory / "floor_cm"
    loop = (f"ssh {opts} -o ControlMaster=yes -o ControlPath={socket} -N -f {host} && "
            f"i=0; while [ $i -lt {n} ]; do ssh {opts} -o ControlPath={socket} {host} true || exit 1; "
            f"i=$((i+1)); done; ssh {opts} -o ControlPath={socket} -O exit {host} 2>/dev/null")
    floors = [("ssh loop over one ControlMaster", ["sh", "-c", loop])]
    if ansible:
        inventory = write_inventory(directory / "inventory_w8.ini", server, [host])
        playbook = directory / f"playbook_{n}.yml"
        playbook.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n" + "".join(
            f"    - name: step {i}\n      raw: 'true'\n" for i in range(n)))
        floors.append((f"ansible-playbook, {n} raw tasks", [str(ansible / "ansible-playbook"), "-i", str(inventory),
                                                            str(playbook)]))
    return workloads.Workload(f"w8_sequence_{n}", str(path), "run", floors, note=f"{n} tasks on one host")


def write_inventory(path: Path, server: SSHServer, hosts: list[str]) -> Path:
    common = shlex.join(server.client_options())
    path.write_text("[all]\n" + "\n".join(hosts) + "\n\n[all:vars]\n"
                    f"ansible_ssh_common_args={common}\nansible_python_interpreter=/usr/bin/python3\n")
    return path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tests/benchmarks/ssh.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--w7", type=int, default=500, help="W7 host count (default 500)")
    p.add_argument("--w8", type=int, default=30, help="W8 task count (default 30)")
    p.add_argument("--only", default="", help="w7 or w8")
    p.add_argument("--runs", "-n", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--tasker", metavar="CMD", help="command that runs tasker (default: `tasker` on PATH)")
    p.add_argument("--ansible-venv", default=str(HERE / ".ansible-venv"), help="venv holding ansible-core")
    p.add_argument("--no-ansible", action="store_true", help="leave Ansible out")
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--json", metavar="FILE", help="also write every run's raw numbers here")
    p.add_argument("--keep-output", metavar="DIR", help="append each tasker run's output to DIR/<workload>.out")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.sample_ms = 0
    args.against_flags = None    # run.bench compares with the floors, not with other tasker flags
    ansible = None if args.no_ansible else ansible_venv(Path(args.ansible_venv))
    cmd = run.tasker_command(args.tasker)
    if args.keep_output:
        os.makedirs(args.keep_output, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tasker-bench-ssh-") as tmp:
        directory = Path(tmp)
        server = SSHServer(directory / "sshd")
        (directory / "sshd").mkdir()
        server.start()
        try:
            config = server.exec_config(directory / "types.yaml", connect_timeout=60)
            made = [w for w in (w7(directory, server, args.w7, ansible), w8(directory, server, args.w8, ansible))
                    if not args.only or w.name.startswith(args.only)]
            print(f"tasker: {run.describe_tasker(cmd)}; sshd on 127.0.0.1:{server.port}; "
                  f"ansible: {ansible or 'left out'}", file=sys.stderr)
            raw: dict = {}
            lines = [run.HEADER, run.RULE]
            for load in made:
                lines.extend(run.bench(load, [*cmd, "--exec-config", str(config)], args, raw))
        finally:
            server.stop()
    print("\n".join(lines))
    if args.json:
        import json

        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(raw, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
