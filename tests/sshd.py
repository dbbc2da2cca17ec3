"""A private OpenSSH server on the loopback address, for the ssh exec-type tests.

``SSHServer.start`` generates a host key and a client key into a temporary
directory, writes an sshd_config for a free port on 127.0.0.1 that accepts
only that client key, only for the current user, only from 127.0.0.0/8,
starts ``sshd -D -e`` and waits until it accepts connections.

Tests use many host names (127.0.0.2, 127.0.1.1 ... as many "hosts" as they
like): they resolve without any configuration, and the private client
configuration (``ssh_config``: ``Host *`` / ``HostName 127.0.0.1``) sends every
one of them to this one server, which listens on 127.0.0.1 only (sshd takes at
most 16 listen addresses, and nothing but loopback may be a target).  tasker
still sees distinct hosts: one connection, master and result per name.  sshd
logs at VERBOSE, so ``authentications()`` counts the logins.  ``exec_config`` writes an
exec-type YAML whose ``ssh`` type is the shipped one plus the options that
point ssh at this server (port, key, known-hosts file), so the tests run the
shipped defaults (BatchMode, ConnectTimeout, quoting) against a real server.

OpenSSH finds ``~/.ssh`` through the passwd database, not ``$HOME``, so
everything is passed as options and ``-F ssh_config`` keeps the user's own
ssh configuration out of the tests.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

START_TIMEOUT = 15.0


class CannotStart(Exception):
    """sshd is not installed or does not start here (the tests are skipped with this reason)."""


def find_sshd() -> str | None:
    return shutil.which("sshd", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin",
                                                      "/sbin"]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback_hosts(count: int, first: int = 257) -> list[str]:
    """``count`` loopback addresses from 127.0.1.1 on (index 257), skipping .0 and .255."""
    out = []
    n = first
    while len(out) < count:
        if n % 256 not in (0, 255):
            out.append(f"127.0.{n // 256}.{n % 256}")
        n += 1
    return out


class SSHServer:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.host_key = directory / "ssh_host_ed25519_key"
        self.client_key = directory / "id_ed25519"
        self.known_hosts = directory / "known_hosts"
        self.log = directory / "sshd.log"
        self.client_config = directory / "ssh_config"

    # ------------------------------------------------------------ start / stop

    def start(self) -> None:
        sshd = find_sshd()
        if sshd is None:
            raise CannotStart("sshd is not installed (apt-get install openssh-server)")
        for tool in ("ssh", "ssh-keygen"):
            if shutil.which(tool) is None:
                raise CannotStart(f"{tool} is not installed (apt-get install openssh-client)")
        self.make_keys()
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # privilege-separation directory
        last = ""
        for _attempt in range(3):          # the free port can be taken between choosing and binding it
            self.port = free_port()
            config = self.write_config(sshd)
            self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {self.host_pub()}\n")
            self.client_config.write_text("Host *\n    HostName 127.0.0.1\n")
            with open(self.log, "wb") as log:
                self.proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=log, stderr=log,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
            if self.wait_listening():
                return
            last = self.log_tail()
            self.stop()
        raise CannotStart(f"sshd did not start: {last}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def make_keys(self) -> None:
        for key in (self.host_key, self.client_key):
            if not key.exists():
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tasker-test", "-f", str(key)],
                               check=True, stdin=subprocess.DEVNULL, capture_output=True)
        auth = self.dir / "authorized_keys"
        auth.write_text((self.dir / "id_ed25519.pub").read_text())
        os.chmod(auth, 0o600)

    def host_pub(self) -> str:
        return " ".join(Path(f"{self.host_key}.pub").read_text().split()[:2])

    def write_config(self, sshd: str) -> Path:
        lines = [
            f"ListenAddress 127.0.0.1:{self.port}",
            f"AllowUsers {self.user}@127.0.0.0/8",
            f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
            f"PidFile {self.dir / 'sshd.pid'}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "StrictModes no",            # the temp directory's modes are not sshd's business here
            "UsePAM no",
            "UseDNS no",
            "PrintMotd no",
            "MaxStartups 1000",          # host validation and wide blocks open many connections at once
            "MaxSessions 200",
            "LogLevel VERBOSE",          # one "Accepted publickey" line per authentication
            # bash started by sshd reads ~/.bashrc only at shell level 1: this keeps the login
            # user's start-up files (pyenv init ... on a developer machine, ~0.1 s) out of every session
            "SetEnv SHLVL=1",
        ]
        config = self.dir / "sshd_config"
        optional = ["PerSourcePenalties no"]     # OpenSSH >= 9.8 rate-limits failing sources
        for extra in (optional, []):
            config.write_text("\n".join(lines + extra) + "\n")
            check = subprocess.run([sshd, "-t", "-f", str(config)], capture_output=True, text=True,
                                   stdin=subprocess.DEVNULL)
            if check.returncode == 0:
                return config
        raise CannotStart(f"sshd rejects the test configuration: {check.stderr.strip()}")

    def wait_listening(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def authentications(self) -> int:
        """Logins so far (sshd's log at VERBOSE has one "Accepted publickey" line per login)."""
        try:
            return self.log.read_text(errors="replace").count("Accepted publickey for ")
        except OSError:
            return 0

    def log_tail(self) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-5:])
        except OSError:
            return ""

    # ------------------------------------------------------------ clients

    def client_options(self) -> list[str]:
        """ssh options that reach this server with the test key and nothing else."""
        return ["-F", str(self.client_config), "-p", str(self.port), "-l", self.user, "-i", str(self.client_key),
                "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "PasswordAuthentication=no",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes", "-o", "CheckHostIP=no", "-o", "LogLevel=ERROR"]

    def ssh(self, host: str, command: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ssh", *self.client_options(), "-o", "BatchMode=yes", "-T", "-n", host, command],
                              capture_output=True, text=True, timeout=30)

    def exec_config(self, path: Path, connect_timeout: int = 15, port: int | None = None) -> Path:
        """An exec-type YAML: the shipped ``ssh`` type with this server's options inserted.

        ``port`` replaces the server's port (a port nothing listens on makes every host unreachable).
        """
        import yaml

        from tasker.resources import shipped_config_path

        shipped = yaml.safe_load(Path(shipped_config_path()).read_text())
        ssh = dict(shipped["platforms"]["linux"]["ssh"])
        template = list(ssh["command_template"])
        assert template[0] == "{binary}" and "--" in template, template
        options = self.client_options()
        if port is not None:
            options[options.index("-p") + 1] = str(port)
        template[1:1] = options
        template = [f"ConnectTimeout={connect_timeout}" if part.startswith("ConnectTimeout=") else part
                    for part in template]
        ssh["command_template"] = template
        data = {"platforms": {"linux": {"default_timeout": 60, "default_validation_timeout": 20, "ssh": ssh}}}
        path.write_text(yaml.safe_dump(data))
        return path


# ---------------------------------------------------------------- the process table


def _process_table() -> dict[int, tuple[int, list[str]]]:
    """pid -> (parent pid, argv) of every process that can be read now."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = [a.decode(errors="replace") for a in fh.read().split(b"\0")[:-1]]
            table[int(entry)] = (int(stat[stat.rindex(b")") + 2:].split()[1]), argv)
        except (OSError, ValueError, IndexError):
            continue
    return table


def processes_under(root: int) -> list[tuple[int, list[str]]]:
    """(pid, argv) of every live descendant of ``root``."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _argv) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, pending = [], [root]
    while pending:
        for child in children.get(pending.pop(), []):
            out.append((child, table[child][1]))
            pending.append(child)
    return out


def sessions_of(port: int, argv: list[str]) -> list[int]:
    """Pids of processes running exactly ``argv`` that a login to the sshd on ``port`` started.

    Found by their environment (``SSH_CONNECTION`` names the server port), not by
    ancestry: a command that outlives its session is re-parented away from sshd.
    """
    found = []
    for pid, (_ppid, got) in _process_table().items():
        if got != argv:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                environ = fh.read().split(b"\0")
        except OSError:
            continue
        for item in environ:
            if item.startswith(b"SSH_CONNECTION=") and item.split()[-1] == str(port).encode():
                found.append(pid)
    return found


def processes_matching(predicate) -> list[tuple[int, list[str]]]:
    """(pid, argv) of every live process whose argv satisfies ``predicate``."""
    return [(pid, argv) for pid, (_ppid, argv) in _process_table().items() if argv and predicate(argv)]
