"""A private OpenSSH server on the loopback addresses, for the ssh exec-type tests.

``SSHServer.start`` generates a host key and a client key into a temporary
directory, writes an sshd_config for a free port that accepts only that
client key, only for the current user, only from 127.0.0.0/8, starts
``sshd -D -e`` and waits until 127.0.0.1 ... 127.0.0.21 accept connections.
It listens on 0.0.0.0 because sshd takes at most 16 listen addresses and the
tests need 21 loopback addresses; ``AllowUsers user@127.0.0.0/8`` refuses
every login from elsewhere.  ``exec_config`` writes an
exec-type YAML whose ``ssh`` type is the shipped one plus the options that
point ssh at this server (port, key, known-hosts file), so the tests run the
shipped defaults (BatchMode, ConnectTimeout, quoting) against a real server.

OpenSSH finds ``~/.ssh`` through the passwd database, not ``$HOME``, so
everything is passed as options and ``-F /dev/null`` keeps the user's own
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

ADDRESSES = 21                    # 127.0.0.1 ... 127.0.0.21
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


def addresses(count: int = ADDRESSES) -> list[str]:
    return [f"127.0.0.{i}" for i in range(1, count + 1)]


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
            self.known_hosts.write_text(
                ",".join(f"[{a}]:{self.port}" for a in addresses()) + " " + self.host_pub() + "\n")
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
            f"ListenAddress 0.0.0.0:{self.port}",
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
            "MaxStartups 200",           # host validation opens many connections at once
            "MaxSessions 200",
            "LogLevel ERROR",
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
        pending = addresses()
        deadline = time.monotonic() + START_TIMEOUT
        while pending and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection((pending[0], self.port), timeout=1):
                    pending.pop(0)
            except OSError:
                time.sleep(0.05)
        return not pending

    def log_tail(self) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-5:])
        except OSError:
            return ""

    # ------------------------------------------------------------ clients

    def client_options(self) -> list[str]:
        """ssh options that reach this server with the test key and nothing else."""
        return ["-F", "/dev/null", "-p", str(self.port), "-l", self.user, "-i", str(self.client_key),
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
